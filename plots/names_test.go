package plots

import (
	"slices"
	"testing"
)

func TestDisplayNames(t *testing.T) {
	for _, tc := range []struct{ id, display string }{
		{"cascade", "Cascade"}, {"sink", "StreamingLLM"}, {"h2o", "H2O"}, {"snapkv", "SnapKV"},
		{"bigbird", "BigBird"}, {"full", "Full attention"}, {"mine", "mine"},
	} {
		if got := DisplayName(tc.id); got != tc.display {
			t.Errorf("DisplayName(%q) = %q, want %q", tc.id, got, tc.display)
		}
		// A display name, alone or with its budget, keeps the policy's
		// colour and place.
		for _, name := range []string{tc.display, tc.display + " (260 slots)"} {
			if PolicyColor(name) != PolicyColor(tc.id) {
				t.Errorf("PolicyColor(%q) differs from PolicyColor(%q)", name, tc.id)
			}
		}
	}
	if policyID("Cascades (260 slots)") != "" || policyID("H2O-like") != "" {
		t.Error("policyID took a name that only starts like a display name")
	}
	got := sortPolicies([]string{"Full attention", "mine", "H2O (260 slots)", "Cascade (260 slots)"})
	if want := []string{"Cascade (260 slots)", "H2O (260 slots)", "Full attention", "mine"}; !slices.Equal(got, want) {
		t.Errorf("sortPolicies = %v, want %v", got, want)
	}
}

func TestPerplexityWithMarks(t *testing.T) {
	series := []Series{
		{Policy: "Cascade (260 slots)", Points: []Point{{260, 150}, {1000, 140}, {4095, 145}}},
		{Policy: "Full attention", Points: []Point{{260, 150}, {1000, 130}, {4095, 900}}},
	}
	fig, err := PerplexityWith(series, LineOptions{LinearX: true, YLabel: "Perplexity of the last 256 tokens",
		Marks: []Mark{{260, "cache 260"}, {1024, "training length 1K"}, {9000, "off the axis"}}})
	if err != nil {
		t.Fatal(err)
	}
	if p := fig.Panels[0][0]; p.X.Min != 0 || p.X.Max != 4095 {
		t.Errorf("x axis [%v, %v], want linear from 0 to 4095", p.X.Min, p.X.Max)
	}
	texts := svgTexts(t, saveAll(t, fig, "perplexity_marks")[".svg"])
	for _, s := range []string{"cache 260", "training length 1K", "Perplexity of the last 256 tokens", "Cascade (260 slots)", "Full attention"} {
		if !slices.Contains(texts, s) {
			t.Errorf("text %q missing from the SVG", s)
		}
	}
	if slices.Contains(texts, "off the axis") {
		t.Error("a mark outside the x range was drawn")
	}
	mem, err := CacheMemory([]Series{{Policy: "Full attention", Points: []Point{{260, 1}, {4095, 12}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := mem.Panels[0][0]; p.Y.Min != 0 || p.Y.Max < 12 || mem.Width != DefaultWidth {
		t.Errorf("memory figure: y [%v, %v], width %v; want y from 0 past 12 at DefaultWidth", p.Y.Min, p.Y.Max, mem.Width)
	}
}
