package results

import (
	"bufio"
	"bytes"
	"cmp"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Export writes the results of one sweep (by name, at its current version,
// or NAME@N for its Nth; "" for every sweep at its current version) to w
// as "csv" or "json", one row per metric of each point. The columns are
// sweep, experiment, model, policy, then one per grid parameter (the union of
// the parameter names of the exported points, sorted; nested objects
// flattened to "outer.inner"; a parameter whose name clashes with a fixed
// column is prefixed "param."), then metric, value, unit, status and hash.
// A point without metrics (pending, running, or failed early) has one row
// with an empty metric, so that gaps in a grid stay visible.
//
// The JSON form is an array of objects with the same keys in the same order;
// missing values are null, and so are non-finite metric values, which the
// CSV form writes as NaN, +Inf and -Inf.
//
// Rows are sorted by sweep, experiment, model, policy, the parameters in
// column order (numbers numerically), point hash and metric name, so the
// output depends only on the stored results and not on row ids or on the
// order in which points were run or merged. Timestamps and provenance are
// not exported.
func (db *DB) Export(w io.Writer, format, sweep string) error {
	if format != "csv" && format != "json" {
		return fmt.Errorf("%s: export: unknown format %q (want csv or json)", db.path, format)
	}
	rows, err := db.exportRows(sweep)
	if err != nil {
		return fmt.Errorf("%s: export: %w", db.path, err)
	}
	params := paramColumns(rows)
	sortRows(rows, params)
	if format == "csv" {
		err = writeCSV(w, rows, params)
	} else {
		err = writeJSON(w, rows, params)
	}
	if err != nil {
		return fmt.Errorf("%s: export: %w", db.path, err)
	}
	return nil
}

// exportRow is one (point, metric) row of an export.
type exportRow struct {
	sweep, configHash         string
	experiment, model, policy string
	params                    map[string]any // flattened
	metric, unit              sql.NullString
	value                     sql.NullFloat64
	status, hash              string
}

// column is a grid-parameter column: its name in the export and the
// flattened parameter it holds.
type column struct{ name, key string }

// exportRows reads the rows of an export from one snapshot of the database.
func (db *DB) exportRows(sweep string) ([]exportRow, error) {
	tx, err := db.r.Begin()
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if sweep != "" {
		name, version := SplitVersion(sweep)
		var n int
		if err := tx.QueryRow(`SELECT count(*) FROM sweeps WHERE name = ?`, name).Scan(&n); err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("no sweep named %q", name)
		}
		if version > n {
			return nil, fmt.Errorf("sweep %q has versions 1 to %d, not %d", name, n, version)
		}
	}
	where, args := Filter{Sweep: sweep}.where()
	rs, err := tx.Query(`SELECT s.name, s.config_hash, p.experiment, p.model, p.policy, p.params,
			p.experiment_params, p.policy_params, m.name, m.value, m.unit, p.status, p.hash
		FROM points p JOIN sweeps s ON s.id = p.sweep_id LEFT JOIN metrics m ON m.point_id = p.id
		WHERE `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []exportRow
	for rs.Next() {
		var r exportRow
		var params, expParams, polParams string
		if err := rs.Scan(&r.sweep, &r.configHash, &r.experiment, &r.model, &r.policy, &params,
			&expParams, &polParams, &r.metric, &r.value, &r.unit, &r.status, &r.hash); err != nil {
			return nil, err
		}
		flat, err := Flatten(json.RawMessage(params), json.RawMessage(expParams), json.RawMessage(polParams))
		if err != nil {
			return nil, fmt.Errorf("point %s: %w", r.hash, err)
		}
		if r.params, err = flattenParams(flat); err != nil {
			return nil, fmt.Errorf("point %s: %w", r.hash, err)
		}
		out = append(out, r)
	}
	return out, rs.Err()
}

// flattenParams decodes a JSON object of parameters and flattens nested
// objects into "outer.inner" keys. Numbers stay json.Number, so they are
// written back exactly as stored.
func flattenParams(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("params: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("params: data after the JSON object")
	}
	out := make(map[string]any, len(m))
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if sub, ok := m[k].(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			out[prefix+k] = m[k]
		}
	}
	walk("", m)
	return out, nil
}

// headColumns and tailColumns are the export's fixed columns, before and
// after the grid parameters.
var (
	headColumns = []string{"sweep", "experiment", "model", "policy"}
	tailColumns = []string{"metric", "value", "unit", "status", "hash"}
)

// paramColumns returns the sorted union of the rows' parameter names as
// columns, renaming those that clash with a fixed column.
func paramColumns(rows []exportRow) []column {
	keys := make(map[string]bool)
	for _, r := range rows {
		for k := range r.params {
			keys[k] = true
		}
	}
	cols := make([]column, 0, len(keys))
	for k := range keys {
		name := k
		if slices.Contains(headColumns, k) || slices.Contains(tailColumns, k) {
			name = "param." + k
		}
		cols = append(cols, column{name: name, key: k})
	}
	sort.Slice(cols, func(i, j int) bool { return cols[i].key < cols[j].key })
	return cols
}

// sortRows puts rows in the export's order.
func sortRows(rows []exportRow, params []column) {
	slices.SortFunc(rows, func(a, b exportRow) int {
		if c := cmp.Or(
			strings.Compare(a.sweep, b.sweep),
			strings.Compare(a.configHash, b.configHash),
			strings.Compare(a.experiment, b.experiment),
			strings.Compare(a.model, b.model),
			strings.Compare(a.policy, b.policy),
		); c != 0 {
			return c
		}
		for _, col := range params {
			va, oka := a.params[col.key]
			vb, okb := b.params[col.key]
			if c := compareParam(va, oka, vb, okb); c != 0 {
				return c
			}
		}
		return cmp.Or(strings.Compare(a.hash, b.hash), strings.Compare(a.metric.String, b.metric.String))
	})
}

// compareParam orders parameter values: missing, null, booleans, numbers
// (numerically), strings, then anything else by its JSON text.
func compareParam(a any, oka bool, b any, okb bool) int {
	rank := func(v any, ok bool) int {
		if !ok {
			return 0
		}
		switch v.(type) {
		case nil:
			return 1
		case bool:
			return 2
		case json.Number:
			return 3
		case string:
			return 4
		}
		return 5
	}
	ra, rb := rank(a, oka), rank(b, okb)
	if ra != rb {
		return cmp.Compare(ra, rb)
	}
	switch ra {
	case 2:
		return cmp.Compare(boolInt(a.(bool)), boolInt(b.(bool)))
	case 3:
		na, nb := a.(json.Number), b.(json.Number)
		fa, erra := na.Float64()
		fb, errb := nb.Float64()
		if erra == nil && errb == nil && fa != fb {
			return cmp.Compare(fa, fb)
		}
		return strings.Compare(string(na), string(nb))
	case 4:
		return strings.Compare(a.(string), b.(string))
	case 5:
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		return bytes.Compare(ja, jb)
	}
	return 0
}

// boolInt returns 1 for true, 0 for false.
func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// writeCSV writes rows as CSV with a header line.
func writeCSV(w io.Writer, rows []exportRow, params []column) error {
	cw := csv.NewWriter(w)
	header := slices.Clone(headColumns)
	for _, c := range params {
		header = append(header, c.name)
	}
	header = append(header, tailColumns...)
	if err := cw.Write(header); err != nil {
		return err
	}
	rec := make([]string, 0, len(header))
	for _, r := range rows {
		rec = append(rec[:0], r.sweep, r.experiment, r.model, r.policy)
		for _, c := range params {
			rec = append(rec, csvParam(r.params[c.key]))
		}
		value := ""
		if r.metric.Valid {
			value = strconv.FormatFloat(nullNaN(r.value), 'g', -1, 64)
		}
		rec = append(rec, r.metric.String, value, r.unit.String, r.status, r.hash)
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// csvParam formats a parameter value for a CSV cell.
func csvParam(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	}
	b, err := marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// field is one key and value of an exported JSON object.
type field struct {
	key   string
	value any
}

// writeJSON writes rows as a JSON array of objects, one per line.
func writeJSON(w io.Writer, rows []exportRow, params []column) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("[")
	fields := make([]field, 0, len(headColumns)+len(params)+len(tailColumns))
	for i, r := range rows {
		var metric, value, unit any
		if r.metric.Valid {
			metric, unit = r.metric.String, r.unit.String
			if v := nullNaN(r.value); !math.IsNaN(v) && !math.IsInf(v, 0) {
				value = v
			}
		}
		fields = append(fields[:0],
			field{"sweep", r.sweep}, field{"experiment", r.experiment}, field{"model", r.model}, field{"policy", r.policy})
		for _, c := range params {
			fields = append(fields, field{c.name, r.params[c.key]})
		}
		fields = append(fields,
			field{"metric", metric}, field{"value", value}, field{"unit", unit}, field{"status", r.status}, field{"hash", r.hash})

		if i > 0 {
			bw.WriteString(",")
		}
		bw.WriteString("\n{")
		for j, f := range fields {
			k, err := marshal(f.key)
			if err != nil {
				return err
			}
			v, err := marshal(f.value)
			if err != nil {
				return fmt.Errorf("point %s: %s: %w", r.hash, f.key, err)
			}
			if j > 0 {
				bw.WriteString(",")
			}
			bw.Write(k)
			bw.WriteString(":")
			bw.Write(v)
		}
		bw.WriteString("}")
	}
	if len(rows) > 0 {
		bw.WriteString("\n")
	}
	bw.WriteString("]\n")
	return bw.Flush()
}

// marshal encodes v as compact JSON without escaping HTML characters.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
