package policies

import (
	"strings"
	"testing"

	"kvcascade/policies/params"
)

func TestRegistryErrors(t *testing.T) {
	for _, c := range []struct {
		policy string
		params map[string]any
		want   []string // substrings of the error
	}{
		{"lru", nil, []string{`unknown policy "lru"`, "cascade"}},
		{"cascade", map[string]any{"window": 4}, []string{"cascade", `unknown parameter "window"`, "sinks"}},
		{"cascade", map[string]any{"sinks": "many"}, []string{"parameter sinks", "want int"}},
		{"cascade", map[string]any{"sinks": 1.5}, []string{"parameter sinks", "integer"}},
		{"cascade", map[string]any{"eager_fill": 1}, []string{"parameter eager_fill", "want bool"}},
		{"cascade", map[string]any{"beta": "high"}, []string{"parameter beta", "want float"}},
		{"cascade", map[string]any{"rule": "pow5"}, []string{"parameter rule", `"pow5"`, "pow2"}},
		{"cascade", map[string]any{"reduction": "median"}, []string{"parameter reduction", "mean, max"}},
		{"cascade", map[string]any{"size": 100, "cascades": 8}, []string{"parameter size", "100", "cascades (8)"}},
		{"cascade", map[string]any{"size": -8}, []string{"parameter size", "-8"}},
		{"cascade", map[string]any{"cascades": 0}, []string{"parameter cascades", "at least 1"}},
		{"cascade", map[string]any{"sinks": -1}, []string{"parameter sinks", "-1"}},
		{"cascade", map[string]any{"beta": 1.0}, []string{"parameter beta", "(0, 1)"}},
		{"cascade", map[string]any{"positions": "rope"}, []string{"parameter positions", "cache, original"}},
		{"sink", map[string]any{"window": 0}, []string{"policy sink", "parameter window"}},
		{"sink", map[string]any{"sinks": int64(-3)}, []string{"parameter sinks", "-3"}},
		{"h2o", map[string]any{"heavy": -1}, []string{"policy h2o", "parameter heavy"}},
		{"h2o", map[string]any{"heavy": 0, "recent": 0}, []string{"parameter recent", "positive"}},
		{"snapkv", map[string]any{"kernel": 4}, []string{"parameter kernel", "odd"}},
		{"snapkv", map[string]any{"budget": 32}, []string{"parameter budget", "exceed window (32)"}},
		{"snapkv", map[string]any{"pooling": "min"}, []string{"parameter pooling"}},
		{"bigbird", map[string]any{"block": 0}, []string{"policy bigbird", "parameter block"}},
		{"bigbird", map[string]any{"random_blocks": -2}, []string{"parameter random_blocks"}},
		{"truncated", map[string]any{"keep": 0}, []string{"keep"}},
	} {
		_, err := New(c.policy, c.params)
		if err == nil {
			t.Errorf("New(%s, %v) succeeded", c.policy, c.params)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("New(%s, %v): error %q does not say %q", c.policy, c.params, err, w)
			}
		}
	}
}

// TestRegistrySpecs: every spec documents itself and its parameters, its
// defaults resolve and build, and TOML-style values (int64, float64) work.
func TestRegistrySpecs(t *testing.T) {
	want := []string{"adakv", "bigbird", "cascade", "duo", "expected_attention", "full", "h2o", "hip_bigbird", "knorm", "logsearch", "pyramidkv", "quest", "random", "sink", "snapkv", "tova", "truncated"}
	if got := Names(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	for _, s := range Specs() {
		if s.Doc == "" || strings.Contains(s.Doc, "\n") {
			t.Errorf("%s: Doc %q is not one line", s.Name, s.Doc)
		}
		for _, p := range s.Params {
			if p.Doc == "" {
				t.Errorf("%s.%s: no Doc", s.Name, p.Name)
			}
			if _, err := params.Convert(p, p.Default); p.Default != nil && err != nil {
				t.Errorf("%s.%s: default %v: %v", s.Name, p.Name, p.Default, err)
			}
			if p.Kind == "string" && len(p.Choices) > 0 && p.Default != p.Choices[0] {
				t.Errorf("%s.%s: default %v is not the first choice", s.Name, p.Name, p.Default)
			}
		}
		f, err := New(s.Name, nil)
		if err != nil {
			t.Errorf("%s with defaults: %v", s.Name, err)
			continue
		}
		if f.Name() != s.Name {
			t.Errorf("factory of %s is named %s", s.Name, f.Name())
		}
		shape := Shape{Layers: 1, QHeads: 4, KVHeads: 2, HeadDim: 8}
		if c, ok := f.(Calibrator); ok {
			if _, err := f.NewLayer(0, shape); err == nil {
				t.Errorf("%s made a layer before its calibration", s.Name)
			}
			if f, err = c.Calibrated(testScores(shape)); err != nil {
				t.Errorf("%s calibrated: %v", s.Name, err)
				continue
			}
		}
		if _, err := f.NewLayer(0, shape); err != nil {
			t.Errorf("%s layer: %v", s.Name, err)
		}
	}
	f, err := New("cascade", map[string]any{"sinks": int64(4), "size": float64(64), "beta": int64(0)})
	if err == nil {
		t.Fatalf("beta 0 accepted: %v", f)
	}
	if _, err := New("cascade", map[string]any{"sinks": int64(4), "size": float64(64), "homogeneous": true}); err != nil {
		t.Fatal(err)
	}
}

func TestBadShape(t *testing.T) {
	for _, name := range []string{"cascade", "sink", "h2o", "snapkv", "bigbird", "random", "knorm", "tova", "pyramidkv", "adakv", "expected_attention"} {
		f, err := New(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.NewLayer(0, Shape{Layers: 1, QHeads: 6, KVHeads: 4, HeadDim: 8}); err == nil {
			t.Errorf("%s accepts 6 query heads over 4 KV heads", name)
		}
	}
}
