package main

import (
	"encoding/csv"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"kvcascade/gpu"
	"kvcascade/policies"
)

const benchCascade = "cascade:sinks=4,size=32,cascades=2"

func TestBenchTinyCPU(t *testing.T) {
	args := []string{"bench", "--shape", "tiny", "--backend", "cpu", "--lengths", "128,64", "--chunk", "32", "--decode", "2",
		"--policy", "full", "--policy", benchCascade}
	code, out, errOut := run(t, args...)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2+4 || !strings.HasPrefix(lines[0], "# kvcascade bench: shape tiny (6 layers") ||
		!strings.Contains(lines[1], "prefill tok/s") {
		t.Fatalf("want a title, a header and 4 rows, got\n%s", out)
	}
	want := [][2]string{{"full", "64"}, {"full", "128"}, {benchCascade, "64"}, {benchCascade, "128"}}
	for i, row := range lines[2:] {
		f := strings.Fields(row)
		if len(f) != 8 || f[0] != want[i][0] || f[1] != want[i][1] || f[4] == "-" || f[6] != "-" {
			t.Errorf("row %d = %q, want policy %s, length %s, a decode time and no device memory", i, row, want[i][0], want[i][1])
			continue
		}
		if gbs, err := strconv.ParseFloat(f[7], 64); err != nil || gbs <= 0 {
			t.Errorf("row %d = %q: decode GB/s %q, want a positive number", i, row, f[7])
		}
	}

	code, out, errOut = run(t, append(args, "--format", "csv")...)
	if code != 0 {
		t.Fatalf("csv: exit %d\n%s", code, errOut)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(recs) != 5 || strings.Join(recs[0], ",") != strings.Join(benchColumns, ",") {
		t.Fatalf("csv: %v\n%s", err, out)
	}
	if recs[4][0] != benchCascade || recs[4][1] != "128" {
		t.Errorf("csv last row %v", recs[4])
	}
}

// TestBenchMaxPrefill checks that a policy's longer lengths are skipped
// once a prefill took longer than --max-prefill.
func TestBenchMaxPrefill(t *testing.T) {
	code, out, errOut := run(t, "bench", "--shape", "tiny", "--lengths", "32,64", "--chunk", "32", "--decode", "0",
		"--max-prefill", "1ns", "--format", "csv")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(recs) != 2 || !strings.Contains(errOut, "skipping [64]") {
		t.Fatalf("want the header and one row (%v):\n%s\nstderr: %s", err, out, errOut)
	}
	if r := recs[1]; r[0] != "full" || r[1] != "32" || r[4] != "-" {
		t.Errorf("row %v: want full at 32 tokens without decoding", r)
	}
}

// TestBenchChunkTimes checks --chunk-times: one row per prefill chunk,
// the last one short, whose times add up to no more than the prefill's.
func TestBenchChunkTimes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chunks.csv")
	code, out, errOut := run(t, "bench", "--shape", "tiny", "--lengths", "80", "--chunk", "32", "--decode", "1",
		"--policy", benchCascade, "--format", "csv", "--chunk-times", path)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("bench table: %v\n%s", err, out)
	}
	prefill, _ := strconv.ParseFloat(rows[1][2], 64)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"32", "64", "80"}
	if len(recs) != 1+len(want) || strings.Join(recs[0], ",") != "policy,length,tokens,chunk_s" {
		t.Fatalf("chunk times: want a header and %d rows, got %v", len(want), recs)
	}
	var sum float64
	for i, r := range recs[1:] {
		s, err := strconv.ParseFloat(r[3], 64)
		if r[0] != benchCascade || r[1] != "80" || r[2] != want[i] || err != nil || s <= 0 {
			t.Errorf("chunk row %d = %v, want %s, 80, %s and a positive time", i, r, benchCascade, want[i])
		}
		sum += s
	}
	if sum > prefill+1e-3 {
		t.Errorf("chunk times add up to %.4f s, more than the prefill's %.4f s", sum, prefill)
	}
}

func TestBenchFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--lengths", "0"}, 2, "positive integers"},
		{[]string{"--lengths", "64,x"}, 2, `"x"`},
		{[]string{"--policy", "nope"}, 2, `unknown policy "nope"`},
		{[]string{"--policy", "cascade:sinks"}, 2, `want key=value, got "sinks"`},
		{[]string{"--policy", "cascade:bogus=1"}, 2, "bogus"},
		{[]string{"--format", "xml"}, 1, `--format "xml"`},
		{[]string{"--backend", "tpu"}, 1, `--backend "tpu"`},
		{[]string{"--chunk", "0"}, 1, "--chunk must be positive"},
		{[]string{"--decode", "-1"}, 1, "--decode must be ≥ 0"},
		{[]string{"--layers", "99"}, 1, "shape tiny has 6"},
		{[]string{"--shape", "no/such/config.json"}, 1, "no/such/config.json"},
		{[]string{"extra"}, 1, `unexpected argument "extra"`},
	} {
		args := append([]string{"bench", "--lengths", "16", "--chunk", "16", "--decode", "0"}, tc.args...)
		code, _, errOut := run(t, args...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tc.args, code, errOut, tc.code, tc.msg)
		}
	}
}

func TestBenchShape(t *testing.T) {
	cfg, err := benchShape("llama-3.1-8b")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Layers != 32 || cfg.Heads != 32 || cfg.KVHeads != 8 || cfg.HeadDim != 128 || cfg.Vocab != 128256 ||
		cfg.Rope.Type != "llama3" || cfg.TieEmbeddings {
		t.Errorf("llama-3.1-8b: %+v", cfg)
	}
	if n := cfg.Params(); n != 8030261248 {
		t.Errorf("llama-3.1-8b has %d parameters, want 8030261248", n)
	}
	if _, err := benchShape("../../runtime/model/testdata/llama"); err != nil {
		t.Errorf("model directory: %v", err)
	}
}

func TestCacheSlots(t *testing.T) {
	s := policies.Shape{Layers: 32, QHeads: 32, KVHeads: 8, HeadDim: 128}
	for _, tc := range []struct {
		policy   string
		n, chunk int
		want     int
	}{
		{"full", 4096 + 8, 4096, 8192},
		{"full", 32768 + 8, 4096, 65536},
		{"full", 100, 4096, 100},
		{"cascade:sinks=64,size=65536,cascades=8", 1 << 20, 4096, 65600},
		{"sink:sinks=4,window=1000", 1 << 20, 4096, 1004},
	} {
		var p policyList
		if err := p.Set(tc.policy); err != nil {
			t.Fatal(err)
		}
		got, err := cacheSlots(p[0], s, tc.n, tc.chunk)
		if err != nil || got != tc.want {
			t.Errorf("%s after %d tokens: %d slots (%v), want %d", tc.policy, tc.n, got, err, tc.want)
		}
	}
}

// The GPU backend offers what bench asks of a device backend, so that its
// memory is checked and reported.
var (
	_ memoryInfo   = (*gpu.Backend)(nil)
	_ synchronizer = (*gpu.Backend)(nil)
	_ describer    = (*gpu.Backend)(nil)
	_ io.Closer    = (*gpu.Backend)(nil)
)

// TestBenchBackendFlags: the backend's options come from flags as from a
// sweep's [backend] table, and are checked the same way.
func TestBenchBackendFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--dtype", "fp8"}, `--dtype: "fp8" is not a dtype`},
		{[]string{"--dtype", "bf16"}, "the cpu backend stores F32 only, got BF16"},
		{[]string{"--no-flash"}, `--backend "cpu[no_flash=true]": the cpu backend takes none of no_flash`},
	} {
		args := append([]string{"bench", "--lengths", "16", "--chunk", "16", "--decode", "0"}, tc.args...)
		code, _, errOut := run(t, args...)
		if code != 1 || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want exit 1 and %q", tc.args, code, errOut, tc.msg)
		}
	}
	code, out, errOut := run(t, "bench", "--lengths", "16", "--chunk", "16", "--decode", "0", "--dtype", "f32")
	if code != 0 || !strings.Contains(out, "F32") {
		t.Errorf("--dtype f32 on cpu: exit %d\n%s%s", code, out, errOut)
	}
}

// TestStepWeights: a decoding step reads every weight but the input
// embedding's other rows; a tied embedding is read whole as the LM head.
func TestStepWeights(t *testing.T) {
	c, err := benchShape("llama-3.1-8b")
	if err != nil {
		t.Fatal(err)
	}
	embed := int64(c.Vocab) * int64(c.Hidden)
	if got, want := stepWeights(c), c.Params()-embed; got != want || got != 7_504_924_672 {
		t.Errorf("untied: %d weights a step, want %d (8.03 B less the 0.53 B embedding)", got, want)
	}
	c.TieEmbeddings = true
	if got := stepWeights(c); got != c.Params() {
		t.Errorf("tied: %d weights a step, want all %d", got, c.Params())
	}
}
