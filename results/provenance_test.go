package results

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestCPUModel(t *testing.T) {
	tests := []struct {
		name, cpuinfo, want string
	}{
		{"x86", "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 143\nmodel name\t: Intel(R) Xeon(R)   Platinum 8480+\nflags\t\t: fpu\n\nprocessor\t: 1\nmodel name\t: other\n", "Intel(R) Xeon(R) Platinum 8480+"},
		{"POWER", "processor\t: 0\ncpu\t\t: POWER9 (raw), altivec supported\n", "POWER9 (raw), altivec supported"},
		{"old ARM", "Processor\t: ARMv7 Processor rev 4 (v7l)\nBogoMIPS\t: 38.40\n", "ARMv7 Processor rev 4 (v7l)"},
		{"model name preferred", "cpu\t: other\nmodel name\t: AMD EPYC 9654\n", "AMD EPYC 9654"},
		{"arm64 without a name", "processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n", "unknown"},
		{"empty value", "model name\t:\ncpu model\t: R4000\n", "R4000"},
		{"empty", "", "unknown"},
		{"unreadable", "\x00\xff", "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cpuModel([]byte(tt.cpuinfo)); got != tt.want {
				t.Errorf("cpuModel = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGitRevision(t *testing.T) {
	info := func(settings ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{}
		for i := 0; i+1 < len(settings); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return bi
	}
	tests := []struct {
		name string
		info *debug.BuildInfo
		want string
	}{
		{"no build info", nil, "unknown"},
		{"no vcs", info("-buildmode", "exe"), "unknown"},
		{"clean", info("vcs.revision", "abc123", "vcs.modified", "false"), "abc123"},
		{"modified", info("vcs.modified", "true", "vcs.revision", "abc123"), "abc123+dirty"},
		{"modified without revision", info("vcs.modified", "true"), "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := gitRevision(tt.info); got != tt.want {
				t.Errorf("gitRevision = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCurrentProvenance(t *testing.T) {
	tests := []struct {
		gpu, driver, wantGPU, wantDriver string
	}{
		{"", "", "unknown", "unknown"},
		{"NVIDIA H100 80GB HBM3", "570.86.15", "NVIDIA H100 80GB HBM3", "570.86.15"},
		{"  ", "cpu", "unknown", "cpu"},
	}
	for _, tt := range tests {
		p := CurrentProvenance(tt.gpu, tt.driver)
		if p.GPU != tt.wantGPU || p.Driver != tt.wantDriver {
			t.Errorf("CurrentProvenance(%q, %q) GPU, driver = %q, %q; want %q, %q", tt.gpu, tt.driver, p.GPU, p.Driver, tt.wantGPU, tt.wantDriver)
		}
		if p.GoVersion != runtime.Version() || p.Host == "" || p.CPU == "" || p.GitRevision == "" {
			t.Errorf("CurrentProvenance = %+v", p)
		}
	}
}

func FuzzCPUModel(f *testing.F) {
	f.Add([]byte("model name\t: Intel(R) Xeon(R)\n"))
	f.Add([]byte("cpu : POWER9\nProcessor: x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got := cpuModel(data)
		if got == "" || strings.ContainsAny(got, "\n\t") || strings.TrimSpace(got) != got {
			t.Errorf("cpuModel = %q", got)
		}
	})
}
