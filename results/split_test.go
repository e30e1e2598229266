package results

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestFlatten(t *testing.T) {
	tests := []struct {
		name                     string
		settings, exp, pol, want string
		wantErr                  bool
	}{
		{"empty", ``, ``, ``, `{}`, false},
		{"apart", `{"chunk":256}`, `{"length":1}`, `{"size":2}`, `{"chunk":256,"length":1,"size":2}`, false},
		{"experiment named like a setting", `{"chunk":256}`, `{"chunk":3}`, `{}`, `{"chunk":256,"experiment.chunk":3}`, false},
		{"policy named like the experiment's", `{}`, `{"seed":1}`, `{"seed":7}`, `{"policy.seed":7,"seed":1}`, false},
		{"policy named like a column", `{}`, `{}`, `{"label":"x"}`, `{"policy.label":"x"}`, false},
		{"not an object", `[]`, `{}`, `{}`, ``, true},
		{"bad JSON", `{}`, `{"a":`, `{}`, ``, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Flatten(json.RawMessage(tt.settings), json.RawMessage(tt.exp), json.RawMessage(tt.pol))
			if (err != nil) != tt.wantErr || err == nil && string(got) != tt.want {
				t.Errorf("Flatten = %s, %v; want %s (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestOrderedObjectKeys(t *testing.T) {
	m := map[string]any{"length": 1024, "depth_bin": 2, "words": "a\"b"}
	raw, err := OrderedObject(m, []string{"length", "seed", "depth_bin", "words"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"length":1024,"depth_bin":2,"words":"a\"b"}`; string(raw) != want {
		t.Errorf("OrderedObject = %s, want %s", raw, want)
	}
	keys, err := Keys(raw)
	if err != nil || !slices.Equal(keys, []string{"length", "depth_bin", "words"}) {
		t.Errorf("Keys = %q, %v", keys, err)
	}
	if _, err := OrderedObject(m, []string{"length"}); err == nil {
		t.Error("OrderedObject with keys missing from the order: no error")
	}
}

// FuzzFlatten: Flatten and Keys never panic, and what Flatten returns is a
// JSON object.
func FuzzFlatten(f *testing.F) {
	f.Add([]byte(`{"chunk":1}`), []byte(`{"chunk":2,"seed":1}`), []byte(`{"seed":3}`))
	f.Add([]byte(`{}`), []byte(`{"a":{"b":1}}`), []byte(`null`))
	f.Fuzz(func(t *testing.T, settings, exp, pol []byte) {
		_, _ = Keys(exp)
		out, err := Flatten(settings, exp, pol)
		if err != nil {
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(out, &m); err != nil || m == nil {
			t.Fatalf("Flatten gave %s, not an object: %v", out, err)
		}
	})
}
