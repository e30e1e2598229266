package report

import (
	"encoding/json"
	"fmt"

	"kvcascade/plots"
	"kvcascade/plots/figure"
	"kvcascade/results"
)

// saveFunc renders one figure into the report (render's save).
type saveFunc func(name, title, caption string, f *plots.Figure, err error) error

// passkeyDiagSample is the part of a passkey sample that diagnostics = true
// adds (experiments/passkey_diag.go).
type passkeyDiagSample struct {
	PromptTokens int64 `json:"prompt_tokens"`
	Diagnostics  *struct {
		Block [2]int64 `json:"block"`
		Heads [][]struct {
			Held      float64  `json:"held"`
			Whole     bool     `json:"whole"`
			Attention *float64 `json:"attention"`
		} `json:"heads"`
		Held [][]int64 `json:"held"`
	} `json:"diagnostics"`
}

// renderDiagnostics draws the figures of passkey points run with
// diagnostics = true: per policy, the key block held, a whole key held and,
// where probed, the question's attention on the key per layer and KV head
// against the depth bin, and for each depth bin a
// retention map of the first sample with its key block marked. It draws
// nothing for a sweep without such points.
func renderDiagnostics(db *results.DB, pts []*point, save saveFunc) error {
	var held, whole, attention []plots.KeyCell
	rets := map[int][]plots.Retention{}
	spans := map[int]map[string][2]int64{}
	seen := map[int]map[string]bool{}
	for _, p := range pts {
		if !p.draws(figure.KeyMaps) || p.params["diagnostics"] != true {
			continue
		}
		b, ok := num(p.params["depth_bin"])
		if !ok {
			continue
		}
		bin := int(b)
		samples, err := db.Samples(p.id)
		if err != nil {
			return err
		}
		for i, raw := range samples {
			var s passkeyDiagSample
			if err := json.Unmarshal(raw, &s); err != nil {
				return fmt.Errorf("point %d, sample %d: %w", p.id, i, err)
			}
			d := s.Diagnostics
			if d == nil {
				continue
			}
			for l, heads := range d.Heads {
				for h, hd := range heads {
					cell := plots.KeyCell{Policy: p.label, Layer: l, Head: h, DepthBin: bin, Value: 100 * hd.Held}
					held = append(held, cell)
					cell.Value = 0
					if hd.Whole {
						cell.Value = 100
					}
					whole = append(whole, cell)
					if hd.Attention != nil {
						cell.Value = 100 * min(max(*hd.Attention, 0), 1)
						attention = append(attention, cell)
					}
				}
			}
			if d.Held != nil && s.PromptTokens > 0 && !seen[bin][p.label] {
				if seen[bin] == nil {
					seen[bin], spans[bin] = map[string]bool{}, map[string][2]int64{}
				}
				seen[bin][p.label] = true
				rets[bin] = append(rets[bin], plots.Retention{Policy: p.label, Tokens: s.PromptTokens, Rows: d.Held, RowLabel: "Layer"})
				spans[bin][p.label] = d.Block
			}
		}
	}
	if len(held) == 0 {
		return nil
	}
	f, err := plots.KeyMaps(held, 5, "Key block held at the question (%)")
	if err := save("diagnostics_key_held", "Key block held", "Share of the key block's tokens each layer's KV head still holds when the question has been read, averaged over the samples of each depth bin.", f, err); err != nil {
		return err
	}
	f, err = plots.KeyMaps(whole, 5, "Whole key held (% of samples)")
	if err := save("diagnostics_key_whole", "Whole key held", "Share of samples in which the layer's KV head holds every token of at least one spelling of the key's digits at the question.", f, err); err != nil {
		return err
	}
	if len(attention) > 0 {
		f, err = plots.KeyMaps(attention, 5, "Question's attention on the key block (%)")
		if err := save("diagnostics_key_attention", "Question's attention on the key", "Share of the attention of the prompt's last token that falls on the key block, per layer's KV head (the mean over its query heads), for the policies the cache probes (those that ask for no attention mass of their own: full, sink).", f, err); err != nil {
			return err
		}
	}
	for bin := range 5 {
		if len(rets[bin]) == 0 {
			continue
		}
		f, err := plots.RetentionSpans(rets[bin], spans[bin])
		name := fmt.Sprintf("diagnostics_retention_bin%d", bin)
		caption := fmt.Sprintf("Prompt positions each policy holds at the question (KV head 0 of each layer), first sample of depth bin %d; dashed lines bound the key block.", bin)
		if err := save(name, fmt.Sprintf("Retention at the question, depth bin %d", bin), caption, f, err); err != nil {
			return err
		}
	}
	return nil
}
