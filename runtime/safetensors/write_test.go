package safetensors

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kvcascade/internal/golden"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// writeFile writes tensors to a new file at path.
func writeFile(tb testing.TB, path string, tensors []Tensor, metadata map[string]string) {
	tb.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, tensors, metadata); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// goldenTensors returns the tensors of testdata/golden.safetensors.
func goldenTensors() []Tensor {
	return []Tensor{
		{Name: "model.layers.0.mlp.weight", DType: "BF16", Shape: []int{2, 3}, Data: BF16Bytes([]float32{1, -2, 0.5, 3.140625, -0.0078125, 65280})},
		{Name: "model.embed_tokens.weight", DType: "F32", Shape: []int{3, 2}, Data: F32Bytes([]float32{0, 1, 2, 3, 4, 5})},
		{Name: "model.norm.weight", DType: "F16", Shape: []int{4}, Data: F16Bytes([]float32{1, -2, 65504, 0x1p-24})},
		{Name: "step", DType: "I64", Shape: []int{}, Data: []byte{42, 0, 0, 0, 0, 0, 0, 0}},
		{Name: "empty", DType: "F32", Shape: []int{0, 4}},
		{Name: "<&>", DType: "U8", Shape: []int{3}, Data: []byte{1, 2, 3}},
	}
}

// TestWriteGolden compares Write's output with testdata/golden.safetensors;
// go test -update rewrites it.
func TestWriteGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, goldenTensors(), map[string]string{"format": "pt", "source": "kvcascade"}); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "golden.safetensors"), buf.Bytes(), *update)
}

// TestWriteLayout checks the exact bytes for a small file against the
// reference writer's layout: compact JSON, metadata first, padding spaces.
func TestWriteLayout(t *testing.T) {
	var buf bytes.Buffer
	tensors := []Tensor{
		{Name: "b", DType: "F32", Shape: []int{2}, Data: F32Bytes([]float32{1, 2})},
		{Name: "a", DType: "U8", Shape: []int{1, 1}, Data: []byte{7}},
	}
	if err := Write(&buf, tensors, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	header := `{"__metadata__":{"format":"pt"},` +
		`"a":{"dtype":"U8","shape":[1,1],"data_offsets":[0,1]},` +
		`"b":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}}`
	header += strings.Repeat(" ", (8-len(header)%8)%8)
	want := append(headerFile(header, 0), 7)
	want = append(want, F32Bytes([]float32{1, 2})...)
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("Write =\n%q\nwant\n%q", buf.Bytes(), want)
	}
}

func TestWriteErrors(t *testing.T) {
	tests := []struct {
		name     string
		tensors  []Tensor
		metadata map[string]string
		want     string
	}{
		{"unknown dtype", []Tensor{{Name: "w", DType: "F17", Shape: []int{1}, Data: []byte{1}}}, nil, `tensor "w": unknown dtype "F17"`},
		{"negative shape", []Tensor{{Name: "w", DType: "U8", Shape: []int{-1}}}, nil, `tensor "w": shape[0] = -1 is negative`},
		{"overflowing shape", []Tensor{{Name: "w", DType: "U8", Shape: []int{1 << 32, 1 << 32}}}, nil, `tensor "w": shape`},
		{"short data", []Tensor{{Name: "w", DType: "F32", Shape: []int{2}, Data: make([]byte, 7)}}, nil, `tensor "w": 7 bytes of data, but F32 [2] needs 8`},
		{"duplicate", []Tensor{{Name: "w", DType: "U8", Shape: []int{0}}, {Name: "x", DType: "U8", Shape: []int{0}}, {Name: "w", DType: "U8", Shape: []int{0}}}, nil, `tensor "w" appears twice`},
		{"reserved name", []Tensor{{Name: "__metadata__", DType: "U8"}}, nil, `name __metadata__ is reserved`},
		{"invalid UTF-8 name", []Tensor{{Name: "w\xff", DType: "U8"}}, nil, `not valid UTF-8`},
		{"invalid UTF-8 metadata", nil, map[string]string{"k": "\xff"}, `__metadata__["k"]: not valid UTF-8`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Write(&buf, tt.tensors, tt.metadata)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Write error = %v, want it to contain %q", err, tt.want)
			}
			if buf.Len() != 0 {
				t.Errorf("Write wrote %d bytes before failing", buf.Len())
			}
		})
	}
}
