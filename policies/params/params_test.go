package params

import (
	"sort"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	specs := []Param{
		{Name: "n", Kind: "int", Default: 3},
		{Name: "beta", Kind: "float", Default: 0.5},
		{Name: "mode", Kind: "string", Default: "a", Choices: []string{"a", "b"}},
		{Name: "on", Kind: "bool", Default: false},
		{Name: "lengths", Kind: "ints", Default: []int{1}},
	}
	v, err := Resolve("thing", specs, map[string]any{"n": int64(7), "beta": int64(1), "mode": "b", "lengths": []any{int64(2), int64(4)}})
	if err != nil {
		t.Fatal(err)
	}
	if v.Int("n") != 7 || v.Float("beta") != 1 || v.String("mode") != "b" || v.Bool("on") || len(v.Ints("lengths")) != 2 {
		t.Errorf("resolved %v", v)
	}
	bad := []struct {
		raw  map[string]any
		want string
	}{
		{map[string]any{"x": 1}, `unknown parameter "x"`},
		{map[string]any{"n": "three"}, "parameter n: want int"},
		{map[string]any{"n": 2.5}, "want an integer"},
		{map[string]any{"mode": "c"}, `"c" is not one of a, b`},
		{map[string]any{"on": 1}, "want bool"},
		{map[string]any{"lengths": []any{"x"}}, "element 0"},
		{map[string]any{"n": int64(1) << 40}, "out of range"},
	}
	for _, c := range bad {
		_, err := Resolve("thing", specs, c.raw)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "thing: ") {
			t.Errorf("%v: error %v, want %q", c.raw, err, c.want)
		}
	}
}

func TestIdentityOmitsLateDefaults(t *testing.T) {
	specs := []Param{
		{Name: "size", Kind: "int", Default: 8},
		{Name: "scoring", Kind: "string", Default: "exact", OmitDefault: true},
	}
	for _, tt := range []struct {
		name string
		v    Values
		want []string // keys of the identity
	}{
		{"both at their defaults", Values{"size": 8, "scoring": "exact"}, []string{"size"}},
		{"late parameter set", Values{"size": 8, "scoring": "reference"}, []string{"scoring", "size"}},
	} {
		got := Identity(specs, tt.v)
		var keys []string
		for k := range got {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if strings.Join(keys, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s: identity keys %v, want %v", tt.name, keys, tt.want)
		}
		if len(tt.v) != 2 {
			t.Errorf("%s: Identity changed its argument: %v", tt.name, tt.v)
		}
	}
}

// TestOptional: a parameter with a nil Default is absent until set.
func TestOptional(t *testing.T) {
	specs := []Param{{Name: "budget", Kind: "int", Doc: "d"}, {Name: "k", Kind: "int", Default: 3, Doc: "d"}}
	v, err := Resolve("policy x", specs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.Has("budget") || !v.Has("k") || len(v) != 1 {
		t.Errorf("unset: %v, want only k", v)
	}
	v, err = Resolve("policy x", specs, map[string]any{"budget": int64(7)})
	if err != nil {
		t.Fatal(err)
	}
	if !v.Has("budget") || v.Int("budget") != 7 {
		t.Errorf("set: %v, want budget 7", v)
	}
}
