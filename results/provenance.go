package results

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
)

// unknown stands for provenance that could not be found out.
const unknown = "unknown"

// Provenance records where and with what a point was run.
type Provenance struct {
	Host        string
	CPU         string // CPU model name
	GPU         string
	Driver      string // GPU driver version
	GoVersion   string
	GitRevision string // the project's commit, with "+dirty" if modified
	// Backend is the backend the point ran on with its options
	// (backend.Spec.String, as "cuda[no_flash=true]") and DType the type
	// it actually stored tensors in ("BF16"); "" where the point did not
	// get as far as opening it, or was run before they were recorded.
	Backend, DType string
}

// CurrentProvenance describes this process: host name, CPU model (from
// /proc/cpuinfo), Go version and the project's git revision (from the build
// information the go command embeds; test binaries and builds with
// -buildvcs=false have none). The GPU and driver come from the caller,
// which knows the backend; empty ones are recorded as "unknown", as is
// anything else that cannot be found out.
func CurrentProvenance(gpu, driver string) Provenance {
	host, err := os.Hostname()
	if err != nil {
		host = ""
	}
	cpuinfo, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		cpuinfo = nil
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		info = nil
	}
	return Provenance{
		Host:        orUnknown(host),
		CPU:         cpuModel(cpuinfo),
		GPU:         orUnknown(gpu),
		Driver:      orUnknown(driver),
		GoVersion:   runtime.Version(),
		GitRevision: gitRevision(info),
	}
}

// orUnknown returns s, or "unknown" if s is blank.
func orUnknown(s string) string {
	if s = strings.TrimSpace(s); s == "" {
		return unknown
	}
	return s
}

// cpuModel returns the CPU model named in the text of /proc/cpuinfo: the
// first "model name" (x86, recent arm64 kernels), else "cpu model" (MIPS),
// "Processor" (older ARM), "cpu" (POWER) or "uarch" (RISC-V), else "unknown".
func cpuModel(cpuinfo []byte) string {
	keys := []string{"model name", "cpu model", "Processor", "cpu", "uarch"}
	found := make(map[string]string, len(keys))
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if _, seen := found[key]; !seen && value != "" {
			found[key] = value
		}
	}
	for _, k := range keys {
		if v, ok := found[k]; ok {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return unknown
}

// gitRevision returns the vcs.revision recorded in info, with "+dirty"
// appended if vcs.modified is true, or "unknown".
func gitRevision(info *debug.BuildInfo) string {
	if info == nil {
		return unknown
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return unknown
	}
	if modified == "true" {
		rev += "+dirty"
	}
	return rev
}
