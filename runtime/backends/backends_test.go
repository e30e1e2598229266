package backends

import (
	"errors"
	"strings"
	"testing"

	"kvcascade/gpu/cuda"
	"kvcascade/runtime/backend"
)

func TestOpen(t *testing.T) {
	b, err := Open(backend.DefaultSpec("cpu"))
	if err != nil || b.Name() != "cpu" || b.DType() != backend.F32 {
		t.Fatalf("Open(cpu) = %v, %v", b, err)
	}
	bad := []struct {
		spec backend.Spec
		want string
	}{
		{backend.DefaultSpec("tpu"), `"tpu" is not a backend`},
		{backend.Spec{Name: "cpu", DType: backend.BF16}, "dtype"},
		{backend.Spec{Name: "cpu", Device: 1}, "device"},
		{backend.Spec{Name: "cpu", NoFlash: true}, "no_flash"},
		{backend.Spec{Name: "cuda", Device: -1, DType: backend.BF16}, "negative"},
	}
	for _, c := range bad {
		if _, err := Open(c.spec); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%v) = %v, want an error containing %q", c.spec, err, c.want)
		}
	}
}

// TestOpenCUDA opens the GPU with a spec's options where there is one.
func TestOpenCUDA(t *testing.T) {
	s := backend.DefaultSpec("cuda")
	s.DType = backend.F16
	b, err := Open(s)
	if errors.Is(err, cuda.ErrNoDriver) || errors.Is(err, cuda.ErrNoDevice) || errors.Is(err, cuda.ErrNoNVRTC) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if b.Name() != "cuda" || b.DType() != backend.BF16 {
		t.Fatalf("Open(%v): %s storing %s, want cuda storing BF16", s, b.Name(), b.DType())
	}
}
