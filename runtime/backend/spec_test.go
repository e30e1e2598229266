package backend

import "testing"

func TestSpecOptions(t *testing.T) {
	tests := []struct {
		spec    Spec
		str     string
		options int
	}{
		{DefaultSpec("cpu"), "cpu", 0},
		{DefaultSpec("cuda"), "cuda", 0},
		{Spec{Name: "cuda", DType: F32, NoFlash: true}, "cuda[dtype=f32 no_flash=true]", 2},
		{Spec{Name: "cuda", Device: 2, DType: BF16, HostPolicies: true}, "cuda[device=2 host_policies=true]", 2},
	}
	for _, tt := range tests {
		if got := tt.spec.String(); got != tt.str {
			t.Errorf("%+v: String() = %q, want %q", tt.spec, got, tt.str)
		}
		if got := len(tt.spec.Options()); got != tt.options {
			t.Errorf("%+v: %d options, want %d", tt.spec, got, tt.options)
		}
		if tt.spec.IsDefault() != (tt.options == 0) {
			t.Errorf("%+v: IsDefault() = %v", tt.spec, tt.spec.IsDefault())
		}
	}
}

func TestParseDType(t *testing.T) {
	for s, want := range map[string]DType{"f32": F32, "BF16": BF16, "f16": F16} {
		if got, err := ParseDType(s); err != nil || got != want {
			t.Errorf("ParseDType(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if _, err := ParseDType("fp8"); err == nil {
		t.Error("ParseDType(fp8) succeeded")
	}
}
