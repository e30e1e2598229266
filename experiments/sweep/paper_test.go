package sweep

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestPaperConfigs loads configs/paper and checks that each plan shows the
// official protocol's settings, so that an edit that drops one is caught.
func TestPaperConfigs(t *testing.T) {
	for _, c := range []struct {
		file   string
		points int
		want   []string // lines or fragments of the plan
	}{
		{"passkey.toml", 60, []string{
			"backend: cuda; chunk: 4096",
			`format = "official"`, `score = "digits"`, "stop_eos = false", "max_new = 50", "samples = 20",
			"passkey  length     32768, 65536, 131072, 262144, 524288, 1048576",
			`cascade       sinks = 64; size = 65536; cascades = 8; rule = "pow2"`,
			`streamingllm  sinks = 64; size = 65536; cascades = 1`,
		}},
		{"pg19.toml", 4, []string{
			"backend: cuda; chunk: 1024",
			`books = "each"`, "tokens = 0",
			"perplexity    min_tokens  32768, 65536",
			"cascade       size        32768, 65536",
			`cascade       sinks = 64; cascades = 4; rule = "pow2"; beta = 0.9999; reduction = "max"`,
			`streamingllm  sinks = 64; cascades = 1`,
		}},
		{"longbench.toml", 36, []string{
			"backend: cuda; chunk: 512, 64",
			`budget = "quarter"`, `newline_stop = "official"`, "max_prompt = 129804",
			`<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|>`,
			`cascade       sinks = 64; size = 32768; cascades = 4; rule = "pow2"; beta = 0.9999; reduction = "max"`,
			`h2o           heavy = 16384; recent = 16384; positions = "cache"; reduction = "max"`,
			`snapkv        window = 32; kernel = 5; pooling = "avg"`, `positions = "original"`,
			"bigbird       window = 16384; sinks = 16; block = 2",
			`truncated     keep = 32832; mode = "middle"`,
		}},
	} {
		t.Run(c.file, func(t *testing.T) {
			s, err := Load(filepath.Join("..", "..", "configs", "paper", c.file))
			if err != nil {
				t.Fatal(err)
			}
			pts, err := s.Points()
			if err != nil {
				t.Fatal(err)
			}
			if len(pts) != c.points {
				t.Errorf("%d points, want %d", len(pts), c.points)
			}
			var b bytes.Buffer
			if err := FormatPlan(&b, pts); err != nil {
				t.Fatal(err)
			}
			for _, w := range c.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("plan lacks %q:\n%s", w, b.String())
				}
			}
		})
	}
}

// TestPaperLongBenchOfficialVariants uncomments the official SnapKV and H2O
// variants of configs/paper/longbench.toml: the cpu backend plans them,
// and cuda, which does not compute them, is refused at their lines.
func TestPaperLongBenchOfficialVariants(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "configs", "paper", "longbench.toml"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	var lineOf []int // 1-based lines of the uncommented variants
	for _, l := range strings.Split(string(src), "\n") {
		switch {
		case strings.HasPrefix(l, `reduction = "max"`) && strings.Contains(l, "h2o.py"),
			strings.HasPrefix(l, `# select = "query_head"`), strings.HasPrefix(l, `# reduction = "query_max"`):
			if strings.HasPrefix(l, "# ") {
				lines = append(lines, strings.TrimPrefix(l, "# "))
				lineOf = append(lineOf, len(lines))
			}
			continue
		}
		lines = append(lines, l)
	}
	if len(lineOf) != 2 {
		t.Fatalf("found %d official variants commented out, want 2 (h2o query_max, snapkv query_head)", len(lineOf))
	}
	cuda := strings.Join(lines, "\n")
	s, err := Parse([]byte(strings.Replace(cuda, `backend = "cuda"`, `backend = "cpu"`, 1)), "longbench.toml")
	if err != nil {
		t.Fatalf("cpu: %v", err)
	}
	pts, err := s.Points()
	if err != nil {
		t.Fatalf("cpu: %v", err)
	}
	var b bytes.Buffer
	if err := FormatPlan(&b, pts); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`reduction = "query_max"`, `select = "query_head"`} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("cpu plan lacks %q:\n%s", w, b.String())
		}
	}
	s, err = Parse([]byte(cuda), "longbench.toml")
	if err == nil {
		_, err = s.Points()
	}
	if err == nil {
		t.Fatal("cuda planned the official variants")
	}
	for _, l := range lineOf {
		if at := fmt.Sprintf("longbench.toml:%d:", l); !strings.Contains(err.Error(), at) {
			t.Errorf("cuda: error does not point at %s:\n%v", at, err)
		}
	}
}

// TestPaperScoringAxis: each paper set-up offers the cascade's two scorings
// as an axis. On the file's cuda backend, where scoring = "reference" cannot
// run, its [[exclude]] rule plans only the exact points, and those keep the
// hashes they had before the axis was written; on the cpu backend both
// scorings are planned, on the same points. StreamingLLM, a cascade of one,
// keeps the exact scoring either way.
func TestPaperScoringAxis(t *testing.T) {
	const axis = `scoring = ["exact", "reference"]`
	for _, file := range []string{"passkey.toml", "pg19.toml", "longbench.toml"} {
		t.Run(file, func(t *testing.T) {
			path := filepath.Join("..", "..", "configs", "paper", file)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			text := string(data)
			if strings.Count(text, axis) != 1 || !strings.Contains(text, `backend = "cuda"`) {
				t.Fatalf("%s: want one %s on the cuda backend", file, axis)
			}
			plan := func(t *testing.T, text string) map[string][]string {
				t.Helper()
				s, err := Parse([]byte(text), path)
				if err != nil {
					t.Fatal(err)
				}
				pts, err := s.Points()
				if err != nil {
					t.Fatal(err)
				}
				hashes := make(map[string][]string) // label/scoring → hashes
				for _, p := range pts {
					if p.Policy == "cascade" {
						k := p.Label + "/" + p.PolicyParams.String("scoring")
						hashes[k] = append(hashes[k], p.Hash)
					}
				}
				return hashes
			}

			cuda := plan(t, text)
			before := plan(t, strings.Replace(text, axis, "", 1))
			if len(cuda["cascade/reference"]) != 0 || len(cuda["streamingllm/reference"]) != 0 {
				t.Errorf("cuda plans %d reference points, want 0", len(cuda["cascade/reference"])+len(cuda["streamingllm/reference"]))
			}
			for _, k := range []string{"cascade/exact", "streamingllm/exact"} {
				if len(cuda[k]) == 0 || !slices.Equal(cuda[k], before[k]) {
					t.Errorf("cuda %s: hashes %v, want those without the axis %v", k, cuda[k], before[k])
				}
			}

			cpu := plan(t, strings.Replace(text, `backend = "cuda"`, `backend = "cpu"`, 1))
			if n, m := len(cpu["cascade/exact"]), len(cpu["cascade/reference"]); n == 0 || n != m {
				t.Errorf("cpu: %d exact and %d reference cascade points, want the same number > 0", n, m)
			}
			if n := len(cpu["streamingllm/reference"]); n != 0 {
				t.Errorf("cpu: %d reference streamingllm points, want 0", n)
			}
		})
	}
}
