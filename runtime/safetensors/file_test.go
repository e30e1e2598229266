package safetensors

import (
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	// Values exact in all three formats, so that every dtype reads back
	// what was written.
	values := []float32{0, 1, -2, 0.5, -0.25, 1024, 3, 96, float32(math.Inf(1)), float32(math.Inf(-1))}
	tests := []struct {
		dtype  string
		encode func([]float32) []byte
	}{
		{"F32", F32Bytes},
		{"BF16", BF16Bytes},
		{"F16", F16Bytes},
	}
	for _, tt := range tests {
		for _, useMmap := range []bool{true, false} {
			name := tt.dtype + "/read"
			if useMmap {
				name = tt.dtype + "/mmap"
			}
			t.Run(name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "model.safetensors")
				meta := map[string]string{"format": "pt"}
				writeFile(t, path, []Tensor{
					{Name: "w", DType: tt.dtype, Shape: []int{2, 5}, Data: tt.encode(values)},
					{Name: "b", DType: tt.dtype, Shape: []int{1}, Data: tt.encode(values[1:2])},
				}, meta)
				f, err := open(path, useMmap)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if f.mapped != useMmap {
					t.Errorf("mapped = %v, want %v", f.mapped, useMmap)
				}
				if got := f.Names(); !slices.Equal(got, []string{"b", "w"}) {
					t.Errorf("Names() = %q", got)
				}
				in, ok := f.Info("w")
				if !ok || in.DType != tt.dtype || !slices.Equal(in.Shape, []int{2, 5}) || in.Numel() != 10 {
					t.Errorf("Info(w) = %+v, %v", in, ok)
				}
				if got := f.Metadata(); !maps.Equal(got, meta) {
					t.Errorf("Metadata() = %v, want %v", got, meta)
				}
				raw, err := f.Bytes("w")
				if err != nil || !slices.Equal(raw, tt.encode(values)) {
					t.Errorf("Bytes(w) = %v, %v", raw, err)
				}

				s, err := OpenDir(filepath.Dir(path))
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				got, err := s.Float32("w", nil)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, values) {
					t.Errorf("Float32(w) = %v, want %v", got, values)
				}
			})
		}
	}
}

func TestOpenGolden(t *testing.T) {
	f, err := Open(filepath.Join("testdata", "golden.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, want := range goldenTensors() {
		in, ok := f.Info(want.Name)
		if !ok || in.DType != want.DType || !slices.Equal(in.Shape, want.Shape) {
			t.Errorf("Info(%q) = %+v, %v", want.Name, in, ok)
			continue
		}
		got, err := f.Bytes(want.Name)
		if err != nil || !slices.Equal(got, want.Data) {
			t.Errorf("Bytes(%q) = %v, %v; want %v", want.Name, got, err, want.Data)
		}
	}
	if got := f.Metadata()["source"]; got != "kvcascade" {
		t.Errorf("Metadata()[source] = %q", got)
	}
}

// TestOpenErrors checks that every invalid file is rejected by Open with an
// error that names the file and the field at fault.
func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range badFiles() {
		for _, useMmap := range []bool{true, false} {
			mode := "read"
			if useMmap {
				mode = "mmap"
			}
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".safetensors")
				if err := os.WriteFile(path, tt.data, 0o644); err != nil {
					t.Fatal(err)
				}
				f, err := open(path, useMmap)
				if err == nil {
					f.Close()
					t.Fatalf("open succeeded, want error containing %q", tt.want)
				}
				if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("open error = %q, want it to contain %q and %q", err, path, tt.want)
				}
			})
		}
	}
}

func TestOpenTruncated(t *testing.T) {
	values := make([]float32, 64)
	tensors := []Tensor{
		{Name: "a", DType: "F32", Shape: []int{64}, Data: F32Bytes(values)},
		{Name: "b", DType: "F32", Shape: []int{64}, Data: F32Bytes(values)},
	}
	dir := t.TempDir()
	full := filepath.Join(dir, "full.safetensors")
	writeFile(t, full, tensors, nil)
	data, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		keep int
		want string
	}{
		{"last byte", len(data) - 1, `tensor "b": data_offsets [256, 512]: end is beyond the 511-byte data region`},
		{"whole data region", len(data) - 512, `tensor "a": data_offsets [0, 256]: end is beyond the 0-byte data region`},
		{"inside the header", 20, "runs past the end of the 20-byte file"},
		{"inside the length", 5, "too short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".safetensors")
			if err := os.WriteFile(path, data[:tt.keep], 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Open(path)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open error = %v, want it to name %s and contain %q", err, path, tt.want)
			}
		})
	}
}

// TestOpenLongHeader checks a header length that fits in a large, sparse
// file but exceeds MaxHeaderSize: it must fail without reading the header.
func TestOpenLongHeader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "long.safetensors")
	if err := os.WriteFile(path, rawFile(MaxHeaderSize+1, "{}", 0), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, MaxHeaderSize+64); err != nil {
		t.Skipf("cannot make a sparse file: %v", err)
	}
	_, err := Open(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "exceeds the limit") {
		t.Errorf("Open error = %v, want it to name %s and the header limit", err, path)
	}
}

func TestFileErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.safetensors")
	writeFile(t, path, []Tensor{{Name: "w", DType: "U8", Shape: []int{1}, Data: []byte{1}}}, nil)
	if _, err := Open(filepath.Join(filepath.Dir(path), "missing.safetensors")); err == nil || !strings.Contains(err.Error(), "missing.safetensors") {
		t.Errorf("Open(missing) error = %v", err)
	}
	if _, err := Open(filepath.Dir(path)); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Open(dir) error = %v", err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Bytes("x"); err == nil || !strings.Contains(err.Error(), `no tensor "x"`) || !strings.Contains(err.Error(), path) {
		t.Errorf("Bytes(x) error = %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := f.Bytes("w"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Bytes after Close error = %v", err)
	}
}
