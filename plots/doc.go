// Package plots draws the figures of a kvcascade study from plain data:
// passkey heat-map tables, streaming perplexity, latency and memory scaling,
// LongBench grouped bars, retention maps, the key maps of passkey
// diagnostics (KeyMaps, RetentionSpans) and budget sweeps (a metric
// against the cache budget, one line per policy).
//
// Every builder is a pure function from slices of plain structs to a
// *Figure; nothing here reads a database or a file. Save writes any
// Figure (or *plot.Plot) as PNG, SVG, PDF or EPS, chosen by the file
// extension:
//
//	fig, err := plots.PasskeyPanels(cells, 5)
//	if err != nil {
//		return err
//	}
//	if err := plots.Save(fig, "passkey.pdf", 0, 0); err != nil { // 0, 0: the figure's own size
//		return err
//	}
//
// All figures share one look: Liberation Sans, titles of 13 pt, axis
// labels of 12 pt, tick labels and legends of 10 pt, a legend outside the
// data area, and one colour and marker per policy (PolicyColor) that stays
// the same across figures. Policies appear in a fixed order (cascade, sink,
// h2o, snapkv, bigbird, full, truncated, then other names alphabetically).
package plots
