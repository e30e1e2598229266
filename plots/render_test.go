package plots

import (
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

var figuresDir = flag.String("figures", "", "also write every test figure as PNG, SVG and PDF into this directory, to look at")

// posterCells is the passkey table of the cascade paper's poster (Llama 3.1
// 8B, 65K cache, 8 cascades): cascade ("Ours") and sink (StreamingLLM).
func posterCells() []PasskeyCell {
	lengths := []int{32 << 10, 64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20}
	acc := map[string][][]float64{
		"cascade": {
			{100, 100, 100, 100, 100},
			{100, 100, 100, 100, 100},
			{100, 100, 96, 97, 100},
			{90, 77, 87, 87, 100},
			{59, 38, 61, 87, 100},
			{23, 21, 33, 45, 88},
		},
		"sink": {
			{100, 100, 100, 100, 100},
			{100, 100, 100, 100, 100},
			{14, 16, 61, 100, 100},
			{13, 9, 10, 45, 100},
			{12, 13, 14, 12, 59},
			{11, 11, 8, 11, 48},
		},
	}
	var cells []PasskeyCell
	for _, pol := range []string{"sink", "cascade"} {
		for r, l := range lengths {
			for b, a := range acc[pol][r] {
				cells = append(cells, PasskeyCell{Policy: pol, Length: l, DepthBin: b, Accuracy: a, N: 20})
			}
		}
	}
	return cells
}

// saveAll writes d as PNG and SVG into t.TempDir() (and, with -figures, as
// PNG, SVG and PDF there too) and returns the paths in the temporary
// directory by extension.
func saveAll(t *testing.T, d Drawer, name string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	out := map[string]string{}
	for _, ext := range []string{".png", ".svg"} {
		path := filepath.Join(dir, name+ext)
		if err := Save(d, path, 0, 0); err != nil {
			t.Fatalf("Save(%s): %v", path, err)
		}
		out[ext] = path
	}
	if *figuresDir != "" {
		if err := os.MkdirAll(*figuresDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, ext := range []string{".png", ".svg", ".pdf"} {
			if err := Save(d, filepath.Join(*figuresDir, name+ext), 0, 0); err != nil {
				t.Fatalf("Save(%s): %v", name+ext, err)
			}
		}
	}
	return out
}

func TestRenderPasskey(t *testing.T) {
	fig, err := PasskeyPanels(posterCells(), 5)
	if err != nil {
		t.Fatal(err)
	}
	saveAll(t, fig, "passkey_panels")
	one, err := PasskeyTable(posterCells(), "cascade", 5)
	if err != nil {
		t.Fatal(err)
	}
	saveAll(t, one, "passkey_cascade")
}

// perplexitySeries is synthetic streaming perplexity: full attention
// blows up past its 8K training length, the others settle.
func perplexitySeries() []Series {
	var out []Series
	for _, pol := range []string{"full", "sink", "cascade", "h2o"} {
		var pts []Point
		for tok := 1024.0; tok <= 1<<20; tok *= 1.25 {
			// Early tokens have little context; then a policy-specific
			// drift and a wobble from the book's content.
			ppl := 8 + 6/math.Log2(tok) + 0.3*math.Sin(math.Log(tok)*3)
			d := math.Log2(tok / 1024)
			switch pol {
			case "full":
				if tok > 8192 {
					ppl *= math.Pow(tok/8192, 1.2)
				}
			case "sink":
				ppl += 0.25 * d
			case "h2o":
				ppl += 0.15 * d
			case "cascade":
				ppl += 0.05 * d
			}
			pts = append(pts, Point{X: math.Round(tok), Y: ppl})
		}
		out = append(out, Series{Policy: pol, Points: pts})
	}
	return out
}

// scalingSeries is synthetic prefill time: full attention quadratic,
// cascade linear, sink (token by token) linear but slow.
func scalingSeries() []Series {
	var out []Series
	for _, pol := range []string{"cascade", "full", "sink"} {
		var pts []Point
		for l := 4096.0; l <= 1<<20; l *= 2 {
			var s float64
			switch pol {
			case "cascade":
				s = 0.2 * l / 4096
			case "full":
				s = 0.15*l/4096 + 0.05*(l/4096)*(l/4096)
			case "sink":
				s = 25 * l / 4096
			}
			pts = append(pts, Point{X: l, Y: s})
		}
		out = append(out, Series{Policy: pol, Points: pts})
	}
	return out
}

func TestRenderLines(t *testing.T) {
	fig, err := Perplexity(perplexitySeries())
	if err != nil {
		t.Fatal(err)
	}
	saveAll(t, fig, "perplexity")
	fig, err = Scaling(PrefillTime, scalingSeries())
	if err != nil {
		t.Fatal(err)
	}
	saveAll(t, fig, "scaling_prefill")
	var mem []Series
	for _, pol := range []string{"cascade", "full"} {
		var pts []Point
		for l := 4096.0; l <= 1<<20; l *= 2 {
			mib := 8192.0 // a 65K-token cache: constant
			if pol == "full" {
				mib = 0.125 * l
			}
			pts = append(pts, Point{X: l, Y: mib})
		}
		mem = append(mem, Series{Policy: pol, Points: pts})
	}
	fig, err = Scaling(PeakMemory, mem)
	if err != nil {
		t.Fatal(err)
	}
	saveAll(t, fig, "scaling_memory")
}

// longBenchScores is synthetic LongBench: 16 subsets × 4 policies.
func longBenchScores() []Score {
	subsets := []string{"narrativeqa", "qasper", "multifieldqa_en", "hotpotqa", "2wikimqa", "musique",
		"gov_report", "qmsum", "multi_news", "trec", "triviaqa", "samsum", "passage_count",
		"passage_retrieval_en", "lcc", "repobench-p"}
	base := map[string]float64{"full": 1, "cascade": 0.93, "sink": 0.8, "snapkv": 0.88}
	var out []Score
	for _, pol := range []string{"sink", "full", "cascade", "snapkv"} {
		for i, sub := range subsets {
			v := (20 + 60*math.Abs(math.Sin(float64(i)*1.7))) * base[pol]
			out = append(out, Score{Policy: pol, Subset: sub, Score: math.Round(v*10) / 10})
		}
	}
	return out
}

func TestRenderLongBench(t *testing.T) {
	fig, err := LongBench(longBenchScores())
	if err != nil {
		t.Fatal(err)
	}
	saveAll(t, fig, "longbench")
	var few []Score
	for _, s := range longBenchScores() {
		switch s.Subset {
		case "narrativeqa", "qasper", "hotpotqa", "gov_report":
			few = append(few, s)
		}
	}
	fig, err = LongBench(few)
	if err != nil {
		t.Fatal(err)
	}
	saveAll(t, fig, "longbench_few")
}

// retentionData is synthetic: what sink, cascade, h2o and full hold after
// 64K tokens with a 4K cache, for 8 layers.
func retentionData() []Retention {
	const tokens, cache, sinks, layers = 64 << 10, 4 << 10, 64, 8
	rng := rand.New(rand.NewPCG(1, 2))
	var out []Retention
	for _, pol := range []string{"full", "h2o", "sink", "cascade"} {
		r := Retention{Policy: pol, Tokens: tokens, RowLabel: "Layer"}
		for range layers {
			var held []int64
			switch pol {
			case "full":
				for p := int64(0); p < tokens; p++ {
					held = append(held, p)
				}
			case "sink":
				for p := int64(0); p < sinks; p++ {
					held = append(held, p)
				}
				for p := int64(tokens - cache + sinks); p < tokens; p++ {
					held = append(held, p)
				}
			case "h2o":
				for p := int64(tokens - cache/2); p < tokens; p++ {
					held = append(held, p)
				}
				for range cache / 2 {
					held = append(held, rng.Int64N(tokens-cache/2))
				}
			case "cascade":
				for p := int64(0); p < sinks; p++ {
					held = append(held, p)
				}
				// Four cascades of equal size, each covering twice the
				// span of the previous one at half the density.
				per := int64((cache - sinks) / 4)
				end := int64(tokens)
				for k := range 4 {
					span := per << k
					for p := end - span; p < end; p++ {
						if rng.Int64N(1<<k) == 0 {
							held = append(held, p)
						}
					}
					end -= span
				}
			}
			r.Rows = append(r.Rows, held)
		}
		out = append(out, r)
	}
	return out
}

func TestRenderRetention(t *testing.T) {
	fig, err := RetentionMap(retentionData())
	if err != nil {
		t.Fatal(err)
	}
	saveAll(t, fig, "retention")
}
