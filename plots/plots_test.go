package plots

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"html"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"kvcascade/internal/golden"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// checkGolden compares got with testdata/name, or rewrites it with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden.Check(t, filepath.Join("testdata", name), got, *update)
}

func TestFormatTokens(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0"},
		{1, "1"},
		{512, "512"},
		{999, "999"},
		{1000, "1K"},
		{1024, "1K"},
		{4096, "4K"},
		{32768, "32K"},
		{65536, "64K"},
		{131072, "128K"},
		{524288, "512K"},
		{1 << 20, "1M"},
		{3 << 20, "3M"},
		{100_000, "100K"},
		{2_000_000, "2M"},
		{12_345, "12.3K"},
		{1536, "1.5K"},
		{3 << 19, "1.5M"},
		{1500, "1.5K"},
		{1234, "1.23K"},
		{1_500_000, "1.5M"},
		{999_999, "1M"},
		{-4096, "-4K"},
	}
	for _, tt := range tests {
		if got := FormatTokens(tt.n); got != tt.want {
			t.Errorf("FormatTokens(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func hex(c color.Color) string {
	r, g, b, _ := c.RGBA()
	return fmt.Sprintf("#%02X%02X%02X", r>>8, g>>8, b>>8)
}

// TestPolicyColorGolden pins every policy's colour: changing one would
// change every figure already in a paper draft.
func TestPolicyColorGolden(t *testing.T) {
	var b strings.Builder
	for _, p := range []string{"cascade", "sink", "h2o", "snapkv", "bigbird", "full", "truncated", "random", "tova", "my-policy"} {
		fmt.Fprintf(&b, "%s %s\n", p, hex(PolicyColor(p)))
	}
	checkGolden(t, "policy_colors.golden", []byte(b.String()))
}

func TestPolicyStylesDistinct(t *testing.T) {
	// Enough unknown names that some must share a hash bucket.
	names := []string{"cascade", "sink", "h2o", "snapkv", "bigbird", "full", "truncated"}
	for i := range numExtraColors {
		names = append(names, fmt.Sprintf("extra%d", i))
	}
	styles := policyStyles(names)
	seen := map[string]string{}
	for _, n := range names {
		h := hex(styles[n].color)
		if other, dup := seen[h]; dup {
			t.Errorf("%s and %s share colour %s", n, other, h)
		}
		seen[h] = n
		if _, _, _, known := knownPolicy(n); known && h != hex(PolicyColor(n)) {
			t.Errorf("%s: figure colour %s, PolicyColor %s", n, h, hex(PolicyColor(n)))
		}
	}
	// Same set, different order: same colours.
	rev := slices.Clone(names)
	slices.Reverse(rev)
	for n, s := range policyStyles(rev) {
		if hex(s.color) != hex(styles[n].color) {
			t.Errorf("%s: colour depends on input order", n)
		}
	}
}

func TestSortPolicies(t *testing.T) {
	got := sortPolicies([]string{"zeta", "full", "alpha", "cascade", "sink", "full", "truncated"})
	want := []string{"cascade", "sink", "full", "truncated", "alpha", "zeta"}
	if !slices.Equal(got, want) {
		t.Errorf("sortPolicies = %v, want %v", got, want)
	}
}

func luminance(c color.Color) float64 {
	r, g, b, _ := c.RGBA()
	return 0.2126*float64(r) + 0.7152*float64(g) + 0.0722*float64(b)
}

func TestAccuracyColor(t *testing.T) {
	prev := math.Inf(1)
	for acc := 0.0; acc <= 100; acc += 5 {
		l := luminance(AccuracyColor(acc))
		if l >= prev {
			t.Errorf("AccuracyColor(%v) is not darker than AccuracyColor(%v)", acc, acc-5)
		}
		prev = l
	}
	if got := hex(AccuracyColor(100)); got != "#00441B" {
		t.Errorf("AccuracyColor(100) = %s, want #00441B", got)
	}
	if hex(AccuracyColor(-5)) != hex(AccuracyColor(0)) || hex(AccuracyColor(150)) != hex(AccuracyColor(100)) {
		t.Error("AccuracyColor does not clamp to [0, 100]")
	}
	if textColorOn(AccuracyColor(100)) != color.White || textColorOn(AccuracyColor(0)) != color.Black {
		t.Error("cell text is not white on dark green and black on white")
	}
}

// svgTexts returns the contents of every <text> element of an SVG file.
func svgTexts(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?s)<text[^>]*>(.*?)</text>`)
	var out []string
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		out = append(out, html.UnescapeString(m[1]))
	}
	return out
}

// TestPasskeySVGTexts checks that every cell of the poster's tables is
// printed, with the row, column and panel labels, and pins the whole
// sorted list of texts in a golden file.
func TestPasskeySVGTexts(t *testing.T) {
	fig, err := PasskeyPanels(posterCells(), 5)
	if err != nil {
		t.Fatal(err)
	}
	path := saveAll(t, fig, "passkey_panels")[".svg"]
	texts := svgTexts(t, path)
	count := map[string]int{}
	for _, s := range texts {
		count[s]++
	}
	want := map[string]int{}
	for _, c := range posterCells() {
		want[fmt.Sprint(c.Accuracy)]++
	}
	for s, n := range want {
		if count[s] < n {
			t.Errorf("cell text %q appears %d times, want at least %d", s, count[s], n)
		}
	}
	for _, s := range []string{"cascade", "sink", "32K", "64K", "128K", "256K", "512K", "1M",
		"0–20", "80–100", passkeyXLabel, passkeyYLabel, accuracyLabel + ", n = 20 per cell"} {
		if count[s] == 0 {
			t.Errorf("text %q missing from the SVG", s)
		}
	}
	slices.Sort(texts)
	checkGolden(t, "passkey_panels_texts.golden", []byte(strings.Join(texts, "\n")+"\n"))
}

// TestPasskeyCounts checks where the sample counts go: into the colour
// scale's label when every cell has the same, under each cell otherwise,
// and that the figure has the package's one width.
func TestPasskeyCounts(t *testing.T) {
	var cells []PasskeyCell
	for _, pol := range []string{"Cascade (260 slots)", "StreamingLLM (260 slots)", "Full attention"} {
		for b := range 5 {
			cells = append(cells, PasskeyCell{Policy: pol, Length: 1024, DepthBin: b, Accuracy: 50, N: 10})
		}
	}
	for _, tc := range []struct {
		name   string
		cells  []PasskeyCell
		want   []string
		absent []string
	}{
		{"same", cells, []string{accuracyLabel + ", n = 10 per cell", "Cascade (260 slots)", "Full attention"}, []string{"n=10"}},
		{"mixed", append(slices.Clone(cells), PasskeyCell{Policy: "Full attention", Length: 2048, DepthBin: 0, Accuracy: 100, N: 7}),
			[]string{accuracyLabel, "n=10", "n=7"}, []string{accuracyLabel + ", n = 10 per cell"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fig, err := PasskeyPanels(tc.cells, 5)
			if err != nil {
				t.Fatal(err)
			}
			if fig.Width != DefaultWidth {
				t.Errorf("width %v, want DefaultWidth %v", fig.Width, DefaultWidth)
			}
			texts := svgTexts(t, saveAll(t, fig, "passkey_counts_"+tc.name)[".svg"])
			for _, s := range tc.want {
				if !slices.Contains(texts, s) {
					t.Errorf("text %q missing from the SVG", s)
				}
			}
			for _, s := range tc.absent {
				if slices.Contains(texts, s) {
					t.Errorf("text %q in the SVG, want it absent", s)
				}
			}
		})
	}
}

func TestPasskeyMerge(t *testing.T) {
	cells := []PasskeyCell{
		{Policy: "sink", Length: 4096, DepthBin: 0, Accuracy: 100, N: 30},
		{Policy: "sink", Length: 4096, DepthBin: 0, Accuracy: 0, N: 10},
		{Policy: "sink", Length: 4096, DepthBin: 1, Accuracy: 40},
		{Policy: "sink", Length: 4096, DepthBin: 1, Accuracy: 60},
	}
	tab, err := newPasskeyTables(cells, 3)
	if err != nil {
		t.Fatal(err)
	}
	got := tab.acc["sink"][0]
	if got[0] != 75 || got[1] != 50 || !math.IsNaN(got[2]) {
		t.Errorf("merged row = %v, want [75 50 NaN]", got)
	}
}

// TestRenderAll renders each figure kind to PNG and SVG and checks that
// the files are real images of the expected size, not empty shells.
func TestRenderAll(t *testing.T) {
	manyPolicies := posterCells()
	for _, pol := range []string{"h2o", "snapkv", "bigbird", "full", "truncated"} {
		for _, c := range posterCells() {
			if c.Policy == "sink" {
				c.Policy = pol
				manyPolicies = append(manyPolicies, c)
			}
		}
	}
	fewRows := []Retention{
		{Policy: "sink", Tokens: 100, Rows: [][]int64{{0, 1, 2, 3, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99}}},
		{Policy: "cascade", Tokens: 60, Rows: [][]int64{{0, 1, 20, 40, 50, 55, 56, 57, 58, 59}}, RowLabel: "KV head"},
	}
	tests := []struct {
		name  string
		build func() (*Figure, error)
	}{
		{"passkey_table", func() (*Figure, error) { return PasskeyTable(posterCells(), "sink", 5) }},
		{"passkey_panels", func() (*Figure, error) { return PasskeyPanels(posterCells(), 5) }},
		{"passkey_panels_7", func() (*Figure, error) { return PasskeyPanels(manyPolicies, 5) }},
		{"perplexity", func() (*Figure, error) { return Perplexity(perplexitySeries()) }},
		{"prefill", func() (*Figure, error) { return Scaling(PrefillTime, scalingSeries()) }},
		{"decode", func() (*Figure, error) { return Scaling(DecodeTime, scalingSeries()[:1]) }},
		{"longbench", func() (*Figure, error) { return LongBench(longBenchScores()) }},
		{"retention", func() (*Figure, error) { return RetentionMap(retentionData()) }},
		{"retention_small", func() (*Figure, error) { return RetentionMap(fewRows) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fig, err := tt.build()
			if err != nil {
				t.Fatal(err)
			}
			paths := saveAll(t, fig, tt.name)
			f, err := os.Open(paths[".png"])
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			img, err := png.Decode(f)
			if err != nil {
				t.Fatalf("decode %s: %v", paths[".png"], err)
			}
			w, h := fig.Size()
			wantW, wantH := int(w.Dots(PNGDPI)+0.5), int(h.Dots(PNGDPI)+0.5)
			if b := img.Bounds(); b.Dx() != wantW || b.Dy() != wantH {
				t.Errorf("PNG is %d × %d pixels, want %d × %d", b.Dx(), b.Dy(), wantW, wantH)
			}
			if nonWhite(img) < 0.02 {
				t.Errorf("PNG is %.1f %% ink: nearly blank", 100*nonWhite(img))
			}
			svg, err := os.ReadFile(paths[".svg"])
			if err != nil {
				t.Fatal(err)
			}
			if len(svg) < 2000 || !bytes.Contains(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("<text")) {
				t.Errorf("SVG of %d bytes does not look like a figure", len(svg))
			}
		})
	}
}

// nonWhite returns the fraction of pixels (sampled) that are not white.
func nonWhite(img interface {
	Bounds() (r image.Rectangle)
	At(x, y int) color.Color
}) float64 {
	b := img.Bounds()
	var n, ink int
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			n++
			if r, g, bb, _ := img.At(x, y).RGBA(); r < 0xF000 || g < 0xF000 || bb < 0xF000 {
				ink++
			}
		}
	}
	return float64(ink) / float64(n)
}

func TestInvalidInput(t *testing.T) {
	nan := math.NaN()
	good := []Point{{4096, 1}, {8192, 2}}
	tests := []struct {
		name  string
		build func() (*Figure, error)
		want  string // in the error
	}{
		{"passkey empty", func() (*Figure, error) { return PasskeyPanels(nil, 5) }, "no data"},
		{"passkey no such policy", func() (*Figure, error) { return PasskeyTable(posterCells(), "h2o", 5) }, `policy "h2o": no data`},
		{"passkey zero bins", func() (*Figure, error) { return PasskeyPanels(posterCells(), 0) }, "0 depth bins"},
		{"passkey bin out of range", func() (*Figure, error) { return PasskeyPanels(posterCells(), 4) }, "depth bin 4 outside [0, 4)"},
		{"passkey NaN", func() (*Figure, error) {
			return PasskeyPanels([]PasskeyCell{{Policy: "sink", Length: 1, Accuracy: nan}}, 5)
		}, "accuracy NaN"},
		{"passkey fraction not percent", func() (*Figure, error) {
			return PasskeyPanels([]PasskeyCell{{Policy: "sink", Length: 1, Accuracy: 101}}, 5)
		}, "outside [0, 100]"},
		{"passkey zero length", func() (*Figure, error) {
			return PasskeyPanels([]PasskeyCell{{Policy: "sink", Accuracy: 1}}, 5)
		}, "length 0"},
		{"passkey negative N", func() (*Figure, error) {
			return PasskeyPanels([]PasskeyCell{{Policy: "sink", Length: 1, Accuracy: 1, N: -1}}, 5)
		}, "negative sample count"},
		{"perplexity empty", func() (*Figure, error) { return Perplexity(nil) }, "no data"},
		{"perplexity no points", func() (*Figure, error) { return Perplexity([]Series{{Policy: "sink"}}) }, `"sink": no data`},
		{"perplexity zero tokens", func() (*Figure, error) {
			return Perplexity([]Series{{Policy: "sink", Points: []Point{{0, 5}}}})
		}, "x = 0, but the x axis is logarithmic"},
		{"perplexity NaN", func() (*Figure, error) {
			return Perplexity([]Series{{Policy: "sink", Points: []Point{{10, nan}}}})
		}, "y = NaN is not a finite number"},
		{"perplexity duplicate", func() (*Figure, error) {
			return Perplexity([]Series{{Policy: "sink", Points: good}, {Policy: "sink", Points: good}})
		}, "appears in two series"},
		{"scaling negative", func() (*Figure, error) {
			return Scaling(PeakMemory, []Series{{Policy: "full", Points: []Point{{4096, -1}}}})
		}, "y = -1, but the y axis is logarithmic"},
		{"scaling Inf", func() (*Figure, error) {
			return Scaling(DecodeTime, []Series{{Policy: "full", Points: []Point{{math.Inf(1), 1}}}})
		}, "x = +Inf is not a finite number"},
		{"scaling metric", func() (*Figure, error) { return Scaling(Metric(9), []Series{{Policy: "full", Points: good}}) }, "unknown metric"},
		{"longbench empty", func() (*Figure, error) { return LongBench(nil) }, "no data"},
		{"longbench missing", func() (*Figure, error) {
			return LongBench([]Score{{"sink", "qasper", 1}, {"full", "trec", 2}})
		}, `has no score for subset`},
		{"longbench duplicate", func() (*Figure, error) {
			return LongBench([]Score{{"sink", "qasper", 1}, {"sink", "qasper", 2}})
		}, "two scores"},
		{"longbench NaN", func() (*Figure, error) { return LongBench([]Score{{"sink", "qasper", nan}}) }, "not a finite number"},
		{"longbench reserved", func() (*Figure, error) { return LongBench([]Score{{"sink", "Average", 1}}) }, "reserved"},
		{"retention empty", func() (*Figure, error) { return RetentionMap(nil) }, "no data"},
		{"retention no rows", func() (*Figure, error) { return RetentionMap([]Retention{{Policy: "sink", Tokens: 10}}) }, "no rows"},
		{"retention zero tokens", func() (*Figure, error) {
			return RetentionMap([]Retention{{Policy: "sink", Rows: [][]int64{{}}}})
		}, "0 tokens"},
		{"retention position", func() (*Figure, error) {
			return RetentionMap([]Retention{{Policy: "sink", Tokens: 10, Rows: [][]int64{{3, 10}}}})
		}, "position 10 outside [0, 10)"},
		{"retention duplicate", func() (*Figure, error) {
			r := Retention{Policy: "sink", Tokens: 10, Rows: [][]int64{{1}}}
			return RetentionMap([]Retention{r, r})
		}, "appears twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fig, err := tt.build()
			if err == nil {
				t.Fatalf("no error, got a figure %v", fig)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
	if _, err := PasskeyPanels(nil, 5); !errors.Is(err, ErrNoData) {
		t.Errorf("empty passkey input: error %v is not ErrNoData", err)
	}
}

func TestSave(t *testing.T) {
	dir := t.TempDir()
	p := plot.New()
	pts, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}})
	if err != nil {
		t.Fatal(err)
	}
	p.Add(pts)
	for _, ext := range []string{".png", ".svg", ".pdf", ".eps", ".PNG"} {
		path := filepath.Join(dir, "plain"+ext)
		if err := Save(p, path, 0, 0); err != nil {
			t.Errorf("Save(%s): %v", path, err)
			continue
		}
		if fi, err := os.Stat(path); err != nil || fi.Size() < 500 {
			t.Errorf("%s: %v, %v", path, fi, err)
		}
	}
	// A bare plot gets the default 6 × 4 in.
	f, err := os.Open(filepath.Join(dir, "plain.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Width != 6*PNGDPI || cfg.Height != 4*PNGDPI {
		t.Errorf("default PNG is %d × %d, want %d × %d", cfg.Width, cfg.Height, 6*PNGDPI, 4*PNGDPI)
	}

	bad := plot.New()
	bad.Y.Scale = plot.LogScale{}
	bad.Y.Tick.Marker = plot.LogTicks{}
	bad.Add(pts) // y = 0 on a log axis: gonum/plot panics while drawing

	errTests := []struct {
		name string
		d    Drawer
		path string
		w, h vg.Length
		want string
	}{
		{"unknown extension", p, filepath.Join(dir, "x.gif"), 0, 0, `unknown format ".gif"`},
		{"no extension", p, filepath.Join(dir, "x"), 0, 0, "unknown format"},
		{"nil", nil, filepath.Join(dir, "x.png"), 0, 0, "nothing to draw"},
		{"negative size", p, filepath.Join(dir, "x.png"), -1, 3, "negative size"},
		{"missing directory", p, filepath.Join(dir, "no", "such", "x.png"), 0, 0, "no such file"},
		{"panic while drawing", bad, filepath.Join(dir, "bad.svg"), 0, 0, "draw:"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			err := Save(tt.d, tt.path, tt.w, tt.h)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Save: error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.svg")); !os.IsNotExist(err) {
		t.Errorf("a failed Save left a file behind (%v)", err)
	}
}

func labels(ts []plot.Tick) []string {
	var out []string
	for _, t := range ts {
		if t.Label != "" {
			out = append(out, t.Label)
		}
	}
	return out
}

func TestTicks(t *testing.T) {
	tests := []struct {
		name   string
		ticker plot.TickerFunc
		min    float64
		max    float64
		want   []string
	}{
		{"tokens 32K–1M", tokenLogTicks, 32 << 10, 1 << 20, []string{"32K", "64K", "128K", "256K", "512K", "1M"}},
		{"tokens 4K–1M", tokenLogTicks, 4 << 10, 1 << 20, []string{"4K", "16K", "64K", "256K", "1M"}},
		{"tokens 1K–1M", tokenLogTicks, 1000, 1 << 20, []string{"1K", "4K", "16K", "64K", "256K", "1M"}},
		{"log decades", logTicks, 0.2, 7000, []string{"1", "10", "100", "1000"}},
		{"log 1-2-5", logTicks, 3, 70, []string{"5", "10", "20", "50"}},
		{"log narrow", logTicks, 2.1, 3.9, []string{"3"}},
		{"linear", linearTicks, 8.1, 11.2, []string{"8.5", "9", "9.5", "10", "10.5", "11"}},
		{"linear 0–84", linearTicks, 0, 84, []string{"0", "20", "40", "60", "80"}},
		{"positions", tokenLinearTicks, 0, 1 << 20, []string{"0", "256K", "512K", "768K", "1M"}},
		{"positions small", tokenLinearTicks, 0, 100, []string{"0", "32", "64", "96"}},
	}
	for _, tt := range tests {
		got := labels(tt.ticker(tt.min, tt.max))
		if tt.name == "log narrow" {
			// Fewer than two 1…9 multiples: linear ticks, at least two.
			if len(got) < 2 {
				t.Errorf("%s: labels %v, want at least two", tt.name, got)
			}
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: labels %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestBinFractions(t *testing.T) {
	got := binFractions([]int64{0, 1, 1, 5, 9}, 10, 5) // bins of 2 positions
	want := []float64{1, 0, 0.5, 0, 0.5}
	if !slices.Equal(got, want) {
		t.Errorf("binFractions = %v, want %v", got, want)
	}
	got = binFractions([]int64{0, 2}, 3, 3) // one position per bin
	if !slices.Equal(got, []float64{1, 0, 1}) {
		t.Errorf("binFractions = %v, want [1 0 1]", got)
	}
}

// TestBudgetSweep: a budget sweep draws with its levels, and refuses
// budgets a log axis cannot place.
func TestBudgetSweep(t *testing.T) {
	series := []Series{
		{Policy: "Cascade (x)", Points: []Point{{128, 0}, {256, 50}, {512, 100}}},
		{Policy: "StreamingLLM", Points: []Point{{512, 50}, {128, 0}}},
	}
	f, err := BudgetSweep(series, BudgetOptions{YLabel: "Accuracy (%)", Percent: true, Levels: []Level{{Y: 50, Label: "Full attention"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := Save(f, filepath.Join(t.TempDir(), "budget.png"), 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := BudgetSweep([]Series{{Policy: "a", Points: []Point{{0, 1}}}}, BudgetOptions{}); err == nil {
		t.Error("budget 0 accepted on a log axis")
	}
	if _, err := BudgetSweep(nil, BudgetOptions{}); err == nil {
		t.Error("no series accepted")
	}
}
