package sweep

import (
	"strings"
	"testing"

	"kvcascade/runtime/backend"
)

// TestBackendTable reads the backend as a name and as a [backend] table:
// a table of defaults hashes like the name alone (so that existing sweeps
// keep their points), and each option that differs changes the hash and
// appears in the stored parameters.
func TestBackendTable(t *testing.T) {
	const rest = head + "[[experiment]]\nname = \"passkey\"\n[[policy]]\nname = \"full\"\n"
	tests := []struct {
		name, src string
		want      backend.Spec
		sameHash  bool // as backend = "cuda"
		stored    string
	}{
		{"name", "backend = \"cuda\"\n", backend.DefaultSpec("cuda"), true, ""},
		{"table of defaults", "[backend]\nname = \"cuda\"\ndtype = \"bf16\"\ndevice = 0\nno_flash = false\n",
			backend.DefaultSpec("cuda"), true, ""},
		{"dtype", "[backend]\nname = \"cuda\"\ndtype = \"f32\"\n",
			backend.Spec{Name: "cuda", DType: backend.F32}, false, "cuda[dtype=f32]"},
		{"switches", "[backend]\nname = \"cuda\"\ndevice = 1\nno_flash = true\nno_cublas = true\nhost_policies = true\n",
			backend.Spec{Name: "cuda", Device: 1, DType: backend.BF16, NoFlash: true, NoCUBLAS: true, HostPolicies: true}, false,
			"cuda[device=1 no_flash=true no_cublas=true host_policies=true]"},
	}
	_, ref := mustParse(t, "backend = \"cuda\"\n"+rest, "b.toml")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.src + rest // a name goes before the tables
			if strings.HasPrefix(tt.src, "[") {
				src = rest + tt.src
			}
			s, pts := mustParse(t, src, "b.toml")
			if s.Backend != tt.want || pts[0].Backend != tt.want {
				t.Fatalf("backend %+v, point's %+v, want %+v", s.Backend, pts[0].Backend, tt.want)
			}
			if same := pts[0].Hash == ref[0].Hash; same != tt.sameHash {
				t.Errorf("hash %s, with backend = \"cuda\" %s", pts[0].Hash, ref[0].Hash)
			}
			got, _ := pts[0].Params()["backend_options"].(string)
			if got != tt.stored || pts[0].Params()["backend"] != "cuda" {
				t.Errorf("stored backend %v, options %q; want cuda, %q", pts[0].Params()["backend"], got, tt.stored)
			}
		})
	}
}

func TestBackendTableErrors(t *testing.T) {
	// The [backend] tables follow the 7 lines of the name and body.
	tests := []struct{ src, want string }{
		{"backend = \"tpu\"\n", `e.toml:1:1: backend: "tpu" is not a backend (known: cpu, cuda)`},
		{"backend = 3\n", `e.toml:1:1: backend: want a backend name or a [backend] table, got an integer`},
		{"[backend]\nname = \"cpu\"\ndtype = \"bf16\"\n", `e.toml:8:1: backend: dtype: the cpu backend stores F32 only, got BF16`},
		{"[backend]\nname = \"cuda\"\ndtype = \"fp8\"\n", `e.toml:10:1: backend.dtype: "fp8" is not a dtype (known: f32, bf16, f16)`},
		{"[backend]\nname = \"cuda\"\nno_flash = 1\n", `e.toml:10:1: backend.no_flash: want a boolean, got an integer`},
		{"[backend]\nname = \"cuda\"\ndevice = -2\n", `e.toml:10:1: backend.device: -2 is not a device number`},
		{"[backend]\nname = \"cuda\"\nflash = true\n", `e.toml:10:1: backend.flash: unknown key in backend (known: name, device, dtype, no_flash, no_cublas, host_policies)`},
		{"[backend]\ndtype = \"f32\"\n", `e.toml:8:1: backend: missing required key "name"`},
	}
	for _, tt := range tests {
		src := tt.src + "name = \"x\"\n" + body
		if strings.HasPrefix(tt.src, "[") {
			src = "name = \"x\"\n" + body + tt.src
		}
		_, err := Parse([]byte(src), "e.toml")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %s", tt.src, err, tt.want)
		}
	}
}
