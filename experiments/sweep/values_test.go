package sweep

import (
	"reflect"
	"testing"

	"kvcascade/policies/params"
)

// TestIntsAxis checks the rule for parameters whose kind is a list: a list
// of integers is one value, a list of lists is a grid axis. No registered
// spec has an "ints" parameter yet, so the checker is called directly.
func TestIntsAxis(t *testing.T) {
	layers := params.Param{Name: "layers", Kind: "ints", Default: []int{}}
	n := params.Param{Name: "n", Kind: "int", Default: 0}
	tests := []struct {
		name   string
		p      params.Param
		raw    any
		want   []any
		isAxis bool
		errs   int
	}{
		{"ints value", layers, []any{int64(1), int64(2)}, []any{[]int{1, 2}}, false, 0},
		{"ints empty value", layers, []any{}, []any{[]int{}}, false, 0},
		{"ints axis", layers, []any{[]any{int64(1), int64(2)}, []any{}}, []any{[]int{1, 2}, []int{}}, true, 0},
		{"ints repeated", layers, []any{[]any{int64(1)}, []any{int64(1)}}, []any{[]int{1}}, true, 1},
		{"ints mixed", layers, []any{[]any{int64(1)}, int64(2)}, nil, false, 1},
		{"int value", n, int64(3), []any{3}, false, 0},
		{"int axis", n, []any{int64(3), int64(4)}, []any{3, 4}, true, 0},
		{"int list of lists", n, []any{[]any{int64(3)}}, nil, true, 1},
	}
	for _, tt := range tests {
		c := &checker{file: "v.toml", loc: newLocator(nil)}
		vals, isAxis, ok := c.values(tt.p, tt.raw, keyPath{"x"})
		if len(c.errs) != tt.errs || ok != (tt.errs == 0) {
			t.Errorf("%s: ok %v, errors %v, want %d", tt.name, ok, c.errs, tt.errs)
		}
		if isAxis != tt.isAxis || !reflect.DeepEqual(vals, tt.want) {
			t.Errorf("%s: values %v (axis %v), want %v (axis %v)", tt.name, vals, isAxis, tt.want, tt.isAxis)
		}
	}
}

func TestMatchValue(t *testing.T) {
	tests := []struct {
		have, want any
		match      bool
	}{
		{3, int64(3), true},
		{3, 3.0, true},
		{3, int64(4), false},
		{3, []any{int64(1), int64(3)}, true},
		{3, "3", false},
		{0.5, 0.5, true},
		{1.0, int64(1), true},
		{"last", "last", true},
		{"last", []any{"middle"}, false},
		{true, true, true},
		{true, false, false},
		{[]int{1, 2}, []any{int64(1), int64(2)}, true},
		{[]int{1, 2}, []any{int64(1)}, false},
		{[]int{1, 2}, []any{[]any{int64(3)}, []any{int64(1), int64(2)}}, true},
		{[]int{}, []any{}, true},
	}
	for _, tt := range tests {
		if got := matchValue(tt.have, tt.want); got != tt.match {
			t.Errorf("matchValue(%v, %v) = %v, want %v", tt.have, tt.want, got, tt.match)
		}
	}
}

func TestWordIndex(t *testing.T) {
	tests := []struct {
		s, word string
		want    int
	}{
		{"keep must be positive", "keep", 0},
		{"sinks + size = 3", "size", 8},
		{"window_size and size", "size", 16},
		{"resize", "size", -1},
		{"", "size", -1},
		{"size", "", -1},
	}
	for _, tt := range tests {
		if got := wordIndex(tt.s, tt.word); got != tt.want {
			t.Errorf("wordIndex(%q, %q) = %d, want %d", tt.s, tt.word, got, tt.want)
		}
	}
}
