package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// point is one finished point of a results database: its experiment, its
// flat parameters (the results store's view), its metrics and its samples.
type point struct {
	Experiment string
	Params     map[string]any
	Metrics    map[string]float64
	Samples    []json.RawMessage
}

// The two scorings compared, in the order they are printed.
const (
	exact     = "exact"
	reference = "reference"
)

// passkeyPair is one prompt read under both scorings.
type passkeyPair struct {
	bin     int
	correct [2]bool // exact, reference
	digits  [2]int
}

// passkeyRow sums the pairs of one setting (every parameter but the
// scoring and the depth bin).
type passkeyRow struct {
	setting string
	pairs   []passkeyPair
}

// perplexityRow holds one setting's perplexity and retention under both
// scorings.
type perplexityRow struct {
	setting string
	ppl     [2]float64
	tokens  int64
	held    [2][][]int64 // [scoring][layer] positions
}

// mode returns 0 for exact scoring, 1 for reference and -1 for a point
// without the scoring parameter (not a cascade).
func mode(p point) int {
	switch p.Params["scoring"] {
	case exact:
		return 0
	case reference:
		return 1
	}
	return -1
}

// settingKey returns p's parameters without those named in drop, as a
// canonical string (json.Marshal sorts map keys).
func settingKey(p point, drop ...string) (string, error) {
	m := make(map[string]any, len(p.Params))
	for k, v := range p.Params {
		if !slices.Contains(drop, k) {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	return p.Experiment + " " + string(b), err
}

// compare pairs the points that differ only in their scoring and returns
// the passkey and perplexity rows, in the order their settings first
// appear. A passkey pair whose two prompts hide different keys is an error:
// the scorings did not read the same prompts.
func compare(pts []point) ([]passkeyRow, []perplexityRow, error) {
	byKey := make(map[string]*[2]*point)
	var keys []string
	for i := range pts {
		p := &pts[i]
		m := mode(*p)
		if m < 0 || (p.Experiment != "passkey" && p.Experiment != "perplexity") {
			continue
		}
		k, err := settingKey(*p, "scoring")
		if err != nil {
			return nil, nil, err
		}
		pair, ok := byKey[k]
		if !ok {
			pair = new([2]*point)
			byKey[k] = pair
			keys = append(keys, k)
		}
		if pair[m] != nil {
			return nil, nil, fmt.Errorf("two %s points of one setting %s", p.Params["scoring"], k)
		}
		pair[m] = p
	}

	var pk []passkeyRow
	pkIndex := make(map[string]int)
	var ppl []perplexityRow
	for _, k := range keys {
		pair := byKey[k]
		if pair[0] == nil || pair[1] == nil {
			continue
		}
		switch pair[0].Experiment {
		case "passkey":
			setting, err := settingKey(*pair[0], "scoring", "depth_bin")
			if err != nil {
				return nil, nil, err
			}
			i, ok := pkIndex[setting]
			if !ok {
				i = len(pk)
				pkIndex[setting] = i
				pk = append(pk, passkeyRow{setting: setting})
			}
			pairs, err := pairPasskey(pair)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", k, err)
			}
			pk[i].pairs = append(pk[i].pairs, pairs...)
		case "perplexity":
			row := perplexityRow{setting: k}
			for m, p := range pair {
				row.ppl[m] = p.Metrics["ppl"]
				tokens, held, err := retention(p.Samples)
				if err != nil {
					return nil, nil, fmt.Errorf("%s: %w", k, err)
				}
				row.tokens, row.held[m] = tokens, held
			}
			ppl = append(ppl, row)
		}
	}
	return pk, ppl, nil
}

// pairPasskey pairs the samples of an exact and a reference passkey point
// by their index.
func pairPasskey(pair *[2]*point) ([]passkeyPair, error) {
	type sample struct {
		Index   int    `json:"index"`
		Key     string `json:"key"`
		Correct bool   `json:"correct"`
		Digits  int    `json:"digits"`
	}
	var got [2]map[int]sample
	for m, p := range pair {
		got[m] = make(map[int]sample)
		for j, raw := range p.Samples {
			var s sample
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, fmt.Errorf("sample %d: %w", j, err)
			}
			got[m][s.Index] = s
		}
	}
	bin, _ := pair[0].Params["depth_bin"].(float64)
	var out []passkeyPair
	for idx, e := range got[0] {
		r, ok := got[1][idx]
		if !ok {
			continue
		}
		if e.Key != r.Key {
			return nil, fmt.Errorf("sample %d: key %q under exact, %q under reference", idx, e.Key, r.Key)
		}
		out = append(out, passkeyPair{bin: int(bin), correct: [2]bool{e.Correct, r.Correct}, digits: [2]int{e.Digits, r.Digits}})
	}
	return out, nil
}

// retention returns the stream length and the held positions per layer of
// a perplexity point's last sample that carries them.
func retention(samples []json.RawMessage) (int64, [][]int64, error) {
	for i := len(samples) - 1; i >= 0; i-- {
		var s struct {
			Tokens int64     `json:"tokens"`
			Held   [][]int64 `json:"held"`
		}
		if err := json.Unmarshal(samples[i], &s); err != nil {
			return 0, nil, fmt.Errorf("sample %d: %w", i, err)
		}
		if s.Held != nil {
			return s.Tokens, s.Held, nil
		}
	}
	return 0, nil, fmt.Errorf("no sample holds the retention map")
}

// mcnemar returns the two-sided exact p of McNemar's test for b and c
// discordant pairs: twice the binomial(b+c, 1/2) probability of a count no
// larger than min(b, c), at most 1. It is also the sign test of pairs that
// one side wins b times and the other c times (ties left out).
func mcnemar(b, c int) float64 {
	n, k := b+c, min(b, c)
	if n == 0 {
		return 1
	}
	var tail float64
	for i := 0; i <= k; i++ {
		lc, _ := math.Lgamma(float64(n + 1))
		li, _ := math.Lgamma(float64(i + 1))
		lr, _ := math.Lgamma(float64(n - i + 1))
		tail += math.Exp(lc - li - lr - float64(n)*math.Ln2)
	}
	return min(1, 2*tail)
}

// jaccard returns |a ∩ b| / |a ∪ b| of two position sets (1 for two empty
// ones).
func jaccard(a, b []int64) float64 {
	in := make(map[int64]bool, len(a))
	for _, x := range a {
		in[x] = true
	}
	both, union := 0, len(in)
	seen := make(map[int64]bool, len(b))
	for _, x := range b {
		if seen[x] {
			continue
		}
		seen[x] = true
		if in[x] {
			both++
		} else {
			union++
		}
	}
	if union == 0 {
		return 1
	}
	return float64(both) / float64(union)
}

// varying returns, for each setting (a key of settingKey), the parameters
// whose values differ among the settings, written name=value.
func varying(settings []string) map[string]string {
	parsed := make([]map[string]any, len(settings))
	names := make(map[string]bool)
	for i, s := range settings {
		_, js, _ := strings.Cut(s, " ")
		_ = json.Unmarshal([]byte(js), &parsed[i])
		for k := range parsed[i] {
			names[k] = true
		}
	}
	var vary []string
	for k := range names {
		for _, m := range parsed[1:] {
			if fmt.Sprint(m[k]) != fmt.Sprint(parsed[0][k]) {
				vary = append(vary, k)
				break
			}
		}
	}
	sort.Strings(vary)
	out := make(map[string]string, len(settings))
	for i, s := range settings {
		var parts []string
		for _, k := range vary {
			parts = append(parts, fmt.Sprintf("%s=%v", k, parsed[i][k]))
		}
		out[s] = strings.Join(parts, " ")
		if out[s] == "" {
			out[s] = "all"
		}
	}
	return out
}

// pct writes a share as a percentage with one decimal.
func pct(num, den int) string {
	if den == 0 {
		return "–"
	}
	return strconv.FormatFloat(100*float64(num)/float64(den), 'f', 1, 64)
}

// writeReport writes the passkey and perplexity comparisons as Markdown
// tables.
func writeReport(w io.Writer, pk []passkeyRow, ppl []perplexityRow) error {
	var b strings.Builder
	if len(pk) > 0 {
		var settings []string
		for _, r := range pk {
			settings = append(settings, r.setting)
		}
		names := varying(settings)
		b.WriteString("passkey: the same prompts under both scorings\n\n")
		b.WriteString("| setting | pairs | exact, % | reference, % | exact per depth bin, % | reference per depth bin, % | key digits right, % (exact / reference) | only exact right | only reference right | McNemar exact p | more digits right: exact / reference, sign test p |\n")
		b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
		for _, r := range pk {
			var right, digits [2]int
			var onlyE, onlyR, moreE, moreR int
			binRight := make(map[int]*[3]int) // exact right, reference right, pairs
			var bins []int
			for _, p := range r.pairs {
				if binRight[p.bin] == nil {
					binRight[p.bin] = new([3]int)
					bins = append(bins, p.bin)
				}
				br := binRight[p.bin]
				br[2]++
				for m := range 2 {
					if p.correct[m] {
						right[m]++
						br[m]++
					}
					digits[m] += p.digits[m]
				}
				switch {
				case p.digits[0] > p.digits[1]:
					moreE++
				case p.digits[1] > p.digits[0]:
					moreR++
				}
				switch {
				case p.correct[0] && !p.correct[1]:
					onlyE++
				case p.correct[1] && !p.correct[0]:
					onlyR++
				}
			}
			slices.Sort(bins)
			var perBin [2][]string
			for _, bin := range bins {
				br := binRight[bin]
				for m := range 2 {
					perBin[m] = append(perBin[m], pct(br[m], br[2]))
				}
			}
			n := len(r.pairs)
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s / %s | %d | %d | %.3g | %d / %d, %.3g |\n", names[r.setting], n,
				pct(right[0], n), pct(right[1], n), strings.Join(perBin[0], " "), strings.Join(perBin[1], " "),
				pct(digits[0], 5*n), pct(digits[1], 5*n), onlyE, onlyR, mcnemar(onlyE, onlyR), moreE, moreR, mcnemar(moreE, moreR))
		}
	}
	if len(ppl) > 0 {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		var settings []string
		for _, r := range ppl {
			settings = append(settings, r.setting)
		}
		names := varying(settings)
		b.WriteString("perplexity and retention (KV head 0 of each layer at the end of the stream)\n\n")
		b.WriteString("| setting | tokens | perplexity (exact / reference) | held from the first half (exact / reference) | same positions held (Jaccard), mean | per layer |\n")
		b.WriteString("| --- | --- | --- | --- | --- | --- |\n")
		for _, r := range ppl {
			var first [2]string
			for m := range 2 {
				var in, all int
				for _, l := range r.held[m] {
					for _, pos := range l {
						all++
						if pos < r.tokens/2 {
							in++
						}
					}
				}
				first[m] = pct(in, all)
			}
			var per []string
			var sum float64
			layers := min(len(r.held[0]), len(r.held[1]))
			for l := range layers {
				j := jaccard(r.held[0][l], r.held[1][l])
				sum += j
				per = append(per, strconv.FormatFloat(j, 'f', 2, 64))
			}
			mean := "–"
			if layers > 0 {
				mean = strconv.FormatFloat(sum/float64(layers), 'f', 2, 64)
			}
			fmt.Fprintf(&b, "| %s | %d | %.4g / %.4g | %s %% / %s %% | %s | %s |\n", names[r.setting], r.tokens,
				r.ppl[0], r.ppl[1], first[0], first[1], mean, strings.Join(per, " "))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
