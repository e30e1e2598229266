package safetensors

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// shardedModel is a two-shard model used by the Set tests.
type shardedModel struct {
	shards map[string][]Tensor // shard file name to its tensors
	index  map[string]string   // weight_map
}

func newShardedModel() shardedModel {
	m := shardedModel{
		shards: map[string][]Tensor{
			"model-00001-of-00002.safetensors": {
				{Name: "embed", DType: "BF16", Shape: []int{2, 2}, Data: BF16Bytes([]float32{1, 2, 3, 4})},
				{Name: "layer.0", DType: "F32", Shape: []int{3}, Data: F32Bytes([]float32{5, 6, 7})},
			},
			"model-00002-of-00002.safetensors": {
				{Name: "layer.1", DType: "F16", Shape: []int{2}, Data: F16Bytes([]float32{-1, 0.5})},
				{Name: "ids", DType: "I32", Shape: []int{1}, Data: []byte{1, 0, 0, 0}},
			},
		},
		index: make(map[string]string),
	}
	for shard, tensors := range m.shards {
		for _, tensor := range tensors {
			m.index[tensor.Name] = shard
		}
	}
	return m
}

// write writes the shards and an index with the given weight_map into a
// new directory and returns it.
func (m shardedModel) write(t *testing.T, weightMap map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for shard, tensors := range m.shards {
		writeFile(t, filepath.Join(dir, shard), tensors, map[string]string{"format": "pt"})
	}
	index, err := json.Marshal(map[string]any{
		"metadata":   map[string]any{"total_size": 40},
		"weight_map": weightMap,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, indexName), index, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestOpenDirSharded(t *testing.T) {
	m := newShardedModel()
	s, err := OpenDir(m.write(t, m.index))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, want := s.Names(), []string{"embed", "ids", "layer.0", "layer.1"}; !slices.Equal(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
	if !s.Has("layer.1") || s.Has("layer.2") {
		t.Error("Has is wrong")
	}
	if in, ok := s.Info("embed"); !ok || in.DType != "BF16" || !slices.Equal(in.Shape, []int{2, 2}) {
		t.Errorf("Info(embed) = %+v, %v", in, ok)
	}
	tests := []struct {
		name string
		want []float32
	}{
		{"embed", []float32{1, 2, 3, 4}},
		{"layer.0", []float32{5, 6, 7}},
		{"layer.1", []float32{-1, 0.5}},
	}
	var buf []float32
	for _, tt := range tests {
		got, err := s.Float32(tt.name, buf)
		if err != nil {
			t.Errorf("Float32(%q): %v", tt.name, err)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Float32(%q) = %v, want %v", tt.name, got, tt.want)
		}
		buf = got
	}
	if raw, err := s.Bytes("ids"); err != nil || !slices.Equal(raw, []byte{1, 0, 0, 0}) {
		t.Errorf("Bytes(ids) = %v, %v", raw, err)
	}
	_, err = s.Float32("ids", nil)
	shard := filepath.Join(s.Dir(), "model-00002-of-00002.safetensors")
	if err == nil || !strings.Contains(err.Error(), `tensor "ids"`) || !strings.Contains(err.Error(), shard) || !strings.Contains(err.Error(), "I32") {
		t.Errorf("Float32(ids) error = %v, want it to name the tensor, %s and I32", err, shard)
	}
	if _, err := s.Float32("nope", nil); err == nil || !strings.Contains(err.Error(), `no tensor "nope"`) {
		t.Errorf("Float32(nope) error = %v", err)
	}
}

func TestOpenDirErrors(t *testing.T) {
	const shard1, shard2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
	m := newShardedModel()
	with := func(edit func(map[string]string)) map[string]string {
		w := maps.Clone(m.index)
		edit(w)
		return w
	}
	tests := []struct {
		name      string
		weightMap map[string]string
		index     string // raw index text, instead of weightMap
		corrupt   string // shard to overwrite with garbage
		want      []string
	}{
		{
			name:      "missing shard",
			weightMap: with(func(w map[string]string) { w["extra"] = "model-00003-of-00003.safetensors" }),
			want:      []string{indexName, "model-00003-of-00003.safetensors", "no such file"},
		},
		{
			name:      "tensor in the wrong shard",
			weightMap: with(func(w map[string]string) { w["ids"] = shard1 }),
			want:      []string{indexName, `tensor "ids" is in ` + shard2 + ` but weight_map names ` + shard1},
		},
		{
			name:      "tensor not listed",
			weightMap: with(func(w map[string]string) { delete(w, "layer.0") }),
			want:      []string{indexName, `tensor "layer.0" is in ` + shard1 + ` but not in weight_map`},
		},
		{
			name:      "listed tensor absent",
			weightMap: with(func(w map[string]string) { w["ghost"] = shard2 }),
			want:      []string{indexName, `weight_map puts tensor "ghost" in ` + shard2 + `, which does not hold it`},
		},
		{
			name:      "shard outside the directory",
			weightMap: with(func(w map[string]string) { w["ids"] = "../" + shard2 }),
			want:      []string{indexName, `weight_map["ids"]: shard "../` + shard2 + `" is not a file name inside`},
		},
		{
			name:    "corrupt shard",
			corrupt: shard2,
			want:    []string{shard2, "does not start with '{'"},
		},
		{name: "index not JSON", index: `{"weight_map": `, want: []string{indexName, "invalid JSON"}},
		{name: "index without weight_map", index: `{"metadata": {}}`, want: []string{indexName, "no weight_map"}},
		{name: "empty weight_map", index: `{"weight_map": {}}`, want: []string{indexName, "weight_map is empty"}},
		{name: "weight_map value not a string", index: `{"weight_map": {"ids": 2}}`, want: []string{indexName, `weight_map["ids"]: got number 2`}},
		{name: "weight_map key twice", index: `{"weight_map": {"ids": "a", "ids": "b"}}`, want: []string{indexName, `weight_map: key "ids" appears twice`}},
		{name: "weight_map twice", index: `{"weight_map": {}, "weight_map": {}}`, want: []string{indexName, `key "weight_map" appears twice`}},
		{name: "trailing data", index: `{"weight_map": {"ids": "a"}} x`, want: []string{indexName, "after header object"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			weightMap := tt.weightMap
			if weightMap == nil {
				weightMap = m.index
			}
			dir := m.write(t, weightMap)
			if tt.index != "" {
				if err := os.WriteFile(filepath.Join(dir, indexName), []byte(tt.index), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tt.corrupt != "" {
				if err := os.WriteFile(filepath.Join(dir, tt.corrupt), rawFile(4, "nope", 0), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			s, err := OpenDir(dir)
			if err == nil {
				s.Close()
				t.Fatalf("OpenDir succeeded, want an error containing %q", tt.want)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("OpenDir error = %q, want it to contain %q", err, want)
				}
			}
		})
	}
}

func TestOpenDirSingle(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenDir(dir); err == nil || !strings.Contains(err.Error(), "neither") || !strings.Contains(err.Error(), dir) {
		t.Errorf("OpenDir(empty dir) error = %v", err)
	}
	writeFile(t, filepath.Join(dir, singleName), []Tensor{{Name: "w", DType: "F16", Shape: []int{1}, Data: F16Bytes([]float32{2})}}, nil)
	// An index beside model.safetensors is ignored, as transformers does.
	if err := os.WriteFile(filepath.Join(dir, indexName), []byte("not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.Float32("w", nil); err != nil || !slices.Equal(got, []float32{2}) {
		t.Errorf("Float32(w) = %v, %v", got, err)
	}
}

func FuzzParseIndex(f *testing.F) {
	f.Add([]byte(`{"metadata": {"total_size": 40}, "weight_map": {"a": "model-00001-of-00002.safetensors"}}`))
	f.Add([]byte(`{"weight_map": {"a": "../x"}}`))
	f.Add([]byte(`{"weight_map": {"a": 1}}`))
	f.Add([]byte(`{"metadata": [[[[]]]], "weight_map": {}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		index, err := parseIndex(data)
		if err != nil {
			return
		}
		if len(index) == 0 {
			t.Fatal("accepted an empty weight_map")
		}
		for name, shard := range index {
			if !filepath.IsLocal(shard) {
				t.Fatalf("weight_map[%q] = %q escapes the directory", name, shard)
			}
		}
	})
}
