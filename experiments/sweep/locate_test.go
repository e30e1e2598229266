package sweep

import "testing"

func TestLocate(t *testing.T) {
	const src = `# a comment with [brackets] and key = "value"
name = "x"   # trailing
"quoted key" = 1
site."dotted.part" . inner = 2
multi = """
fake = 1
[not.a.table]
"""
after = '''lit''' # x

[[model]]
path = "a"
[[model]]
  name = "b"

[[experiment]]
name = "passkey"
[experiment.params]
length = [
  2048,  # first
  [1, 2], { deep = 3 },
]
[[experiment]]
name = "latency"
params = { length = [1, 2], nested = { x = 1 } }
[experiment.more]
k = 1

[[policy]]
name = "cascade"
[[policy.sub]]
a = 1
[[policy.sub]]
a = 2
[[policy]]
[[policy.sub]]
a = 3
`
	l := newLocator([]byte(src))
	tests := []struct {
		path keyPath
		want pos
	}{
		{keyPath{"name"}, pos{2, 1}},
		{keyPath{"quoted key"}, pos{3, 1}},
		{keyPath{"site"}, pos{4, 1}},
		{keyPath{"site", "dotted.part"}, pos{4, 6}},
		{keyPath{"site", "dotted.part", "inner"}, pos{4, 22}},
		{keyPath{"fake"}, pos{1, 1}}, // inside a string: not a key
		{keyPath{"not"}, pos{1, 1}},
		{keyPath{"after"}, pos{9, 1}},
		{keyPath{"model"}, pos{11, 1}},
		{keyPath{"model", 0}, pos{11, 1}},
		{keyPath{"model", 0, "path"}, pos{12, 1}},
		{keyPath{"model", 1}, pos{13, 1}},
		{keyPath{"model", 1, "name"}, pos{14, 3}},
		{keyPath{"model", 1, "revision"}, pos{13, 1}}, // falls back to the table
		{keyPath{"experiment", 0, "params"}, pos{18, 1}},
		{keyPath{"experiment", 0, "params", "length"}, pos{19, 1}},
		{keyPath{"experiment", 0, "params", "length", 0}, pos{20, 3}},
		{keyPath{"experiment", 0, "params", "length", 1}, pos{21, 3}},
		{keyPath{"experiment", 0, "params", "length", 1, 1}, pos{21, 7}},
		{keyPath{"experiment", 0, "params", "length", 2, "deep"}, pos{21, 13}},
		{keyPath{"experiment", 0, "params", "length", 3}, pos{19, 1}},
		{keyPath{"experiment", 1, "name"}, pos{24, 1}},
		{keyPath{"experiment", 1, "params"}, pos{25, 1}},
		{keyPath{"experiment", 1, "params", "length"}, pos{25, 12}},
		{keyPath{"experiment", 1, "params", "length", 1}, pos{25, 25}},
		{keyPath{"experiment", 1, "params", "nested", "x"}, pos{25, 40}},
		{keyPath{"experiment", 1, "more", "k"}, pos{27, 1}},
		{keyPath{"policy", 0, "sub", 1, "a"}, pos{34, 1}},
		{keyPath{"policy", 1, "sub", 0, "a"}, pos{37, 1}},
		{keyPath{"policy", 1, "sub", 0}, pos{36, 1}},
		{keyPath{"policy", 2}, pos{29, 1}}, // no such element: the array
		{nil, pos{1, 1}},
	}
	for _, tt := range tests {
		if got := l.find(tt.path); got != tt.want {
			t.Errorf("find(%s) = %d:%d, want %d:%d", tt.path, got.line, got.col, tt.want.line, tt.want.col)
		}
	}
}

func TestLocateByteOrderMark(t *testing.T) {
	l := newLocator([]byte("\xef\xbb\xbfa = 1\n  b = 2\n"))
	if got := l.find(keyPath{"a"}); got != (pos{1, 1}) {
		t.Errorf("a at %v", got)
	}
	if got := l.find(keyPath{"b"}); got != (pos{2, 3}) {
		t.Errorf("b at %v", got)
	}
}

func TestKeyPathString(t *testing.T) {
	p := keyPath{"experiment", 1, "params", "a b", "x.y", 0}
	if got, want := p.String(), `experiment[1].params."a b"."x.y"[0]`; got != want {
		t.Errorf("String = %s, want %s", got, want)
	}
}

func TestLineCol(t *testing.T) {
	src := []byte("ab\ncd\n")
	for off, want := range []pos{{1, 1}, {1, 2}, {1, 3}, {2, 1}, {2, 2}, {2, 3}, {3, 1}, {3, 1}} {
		if got := lineCol(src, off); got != want {
			t.Errorf("lineCol(%d) = %v, want %v", off, got, want)
		}
	}
}
