package sweep

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"kvcascade/experiments"
	"kvcascade/policies"
	"kvcascade/runtime/backend"
)

// head is the start of most test sweeps: a name and one model.
const head = `name = "t"
[[model]]
path = "models/tiny"
`

// grid is a sweep of 2 lengths × 5 depth bins × (full + truncated at 2
// keeps) × 2 chunks = 60 points.
const grid = "chunk = [256, 512]\n" + head + `[[experiment]]
name = "passkey"
[experiment.params]
length = [2048, 8192]
depth_bin = [0, 1, 2, 3, 4]
[[policy]]
name = "full"
[[policy]]
name = "truncated"
label = "trunc"
params = { keep = [1024, 2048] }
`

func mustParse(t *testing.T, src, file string) (*Sweep, []Point) {
	t.Helper()
	s, err := Parse([]byte(src), file)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	pts, err := s.Points()
	if err != nil {
		t.Fatalf("Points: %v", err)
	}
	return s, pts
}

func TestPointCounts(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want int
	}{
		{"minimal", head + "[[experiment]]\nname = \"passkey\"\n[[policy]]\nname = \"full\"\n", 1},
		{"single tables", "name = \"t\"\n[model]\nname = \"tiny\"\n[experiment]\nname = \"latency\"\n[experiment.params]\nlength = [1, 2, 3]\n[policy]\nname = \"full\"\n", 3},
		{"inline arrays", "name = \"t\"\nmodel = [{ path = \"a\" }, { name = \"b\" }]\nexperiment = [{ name = \"memory\" }]\npolicy = [{ name = \"full\" }, { name = \"truncated\" }]\n", 4},
		{"dotted params", head + "[[experiment]]\nname = \"passkey\"\nparams.length = [1, 2]\nparams.seed = [1, 2]\n[[policy]]\nname = \"full\"\n", 4},
		{"grid", grid, 60},
		{"two models", grid + "[[model]]\npath = \"models/other\"\n", 120},
		{"two experiments", grid + "[[experiment]]\nname = \"latency\"\nparams = { length = [1024, 4096, 16384] }\n", 60 + 3*3*2},
		{"exclude", grid + "[[exclude]]\npolicy = \"full\"\nlength = 8192\n", 60 - 5*2},
		{"exclude list", grid + "[[exclude]]\ndepth_bin = [0, 4]\n", 60 - 2*2*3*2},
		{"exclude by name", grid + "[[exclude]]\npolicy = \"truncated\"\n", 20},
		{"exclude by label", grid + "[[exclude]]\nlabel = \"trunc\"\nkeep = 1024\n", 40},
		{"exclude chunk", grid + "[[exclude]]\nchunk = 256\n", 30},
		{"exclude model", grid + "[[exclude]]\nmodel = \"./models//tiny\"\nlength = 2048\n", 30},
		{"exclude two rules", grid + "[[exclude]]\nlength = 2048\n[[exclude]]\ndepth_bin = 1\n", 60 - 30 - 6},
		{"include", grid + "[[include]]\nlength = 2048\n", 30},
		{"include any rule", grid + "[[include]]\npolicy = \"full\"\n[[include]]\nkeep = 2048\n", 20 + 20},
		{"include then exclude", grid + "[[include]]\nlength = 2048\n[[exclude]]\nchunk = [256]\n", 15},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, pts := mustParse(t, tt.src, "t.toml")
			if len(pts) != tt.want {
				t.Errorf("%d points, want %d", len(pts), tt.want)
			}
			seen := map[string]bool{}
			for _, p := range pts {
				if seen[p.Hash] {
					t.Errorf("hash %s twice", p.Hash)
				}
				seen[p.Hash] = true
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	s, pts := mustParse(t, head+"[[experiment]]\nname = \"passkey\"\n[[policy]]\nname = \"truncated\"\n", "d/t.toml")
	if s.Name != "t" || s.Backend != backend.DefaultSpec(DefaultBackend) || s.DB != "" || s.Out != "" {
		t.Errorf("sweep %q backend %q db %q out %q", s.Name, s.Backend, s.DB, s.Out)
	}
	p := pts[0]
	if p.Chunk != DefaultChunk || p.Backend != backend.DefaultSpec("cpu") || p.Label != "truncated" {
		t.Errorf("chunk %d backend %q label %q", p.Chunk, p.Backend, p.Label)
	}
	if p.ExperimentParams.Int("length") != 4096 || p.ExperimentParams.Int("samples") != 10 {
		t.Errorf("experiment params not defaulted: %v", p.ExperimentParams)
	}
	if p.PolicyParams.Int("keep") != 4096 || p.PolicyParams.String("mode") != "last" {
		t.Errorf("policy params not defaulted: %v", p.PolicyParams)
	}
}

// TestOrder checks the documented order: models, experiments, their axes
// (declared order), policies, their axes, chunks; the last fastest.
func TestOrder(t *testing.T) {
	_, pts := mustParse(t, grid, "t.toml")
	var got []string
	for _, p := range pts[:6] {
		keep := "-"
		if k, ok := p.PolicyParams["keep"]; ok {
			keep = formatValue(k)
		}
		got = append(got, p.Label+" "+keep+" "+formatValue(p.Chunk))
	}
	want := []string{"full - 256", "full - 512", "trunc 1024 256", "trunc 1024 512", "trunc 2048 256", "trunc 2048 512"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("first points\n%s\nwant\n%s", strings.Join(got, "; "), strings.Join(want, "; "))
	}
	// length is declared before depth_bin, so depth_bin varies faster even
	// when written first.
	_, pts = mustParse(t, head+"[[experiment]]\nname = \"passkey\"\n[experiment.params]\ndepth_bin = [0, 1]\nlength = [1, 2]\n[[policy]]\nname = \"full\"\n", "t.toml")
	got = got[:0]
	for _, p := range pts {
		got = append(got, formatValue(p.ExperimentParams["length"])+"/"+formatValue(p.ExperimentParams["depth_bin"]))
	}
	if g := strings.Join(got, " "); g != "1/0 1/1 2/0 2/1" {
		t.Errorf("order %s, want 1/0 1/1 2/0 2/1", g)
	}
}

func TestModelPaths(t *testing.T) {
	abs, _ := filepath.Abs("/abs/model")
	src := "name = \"t\"\nmodel = [{ path = \"models/tiny\" }, { path = \"./m/../other/\" }, { path = " + quote(abs) + " }, { name = \"tiny\" }]\n" +
		"[[experiment]]\nname = \"memory\"\n[[policy]]\nname = \"full\"\n"
	tests := []struct {
		file string
		want []ModelRef
	}{
		{filepath.Join("configs", "paper", "a.toml"), []ModelRef{
			{Path: filepath.Join("configs", "paper", "models", "tiny"), AsWritten: "models/tiny"},
			{Path: filepath.Join("configs", "paper", "other"), AsWritten: "other"},
			{Path: abs, AsWritten: filepath.ToSlash(abs)},
			{Name: "tiny"},
		}},
		{"a.toml", []ModelRef{
			{Path: filepath.Join("models", "tiny"), AsWritten: "models/tiny"},
			{Path: "other", AsWritten: "other"},
			{Path: abs, AsWritten: filepath.ToSlash(abs)},
			{Name: "tiny"},
		}},
	}
	for _, tt := range tests {
		_, pts := mustParse(t, src, tt.file)
		for i, p := range pts {
			if p.Model != tt.want[i] {
				t.Errorf("%s: model %d = %+v, want %+v", tt.file, i, p.Model, tt.want[i])
			}
		}
	}
	// Hashes use the path as written: the same sweep in two folders.
	_, a := mustParse(t, src, "x/a.toml")
	_, b := mustParse(t, src, "y/z/a.toml")
	for i := range a {
		if a[i].Hash != b[i].Hash {
			t.Errorf("model %d: hash depends on the sweep's folder", i)
		}
	}
}

func quote(s string) string { return `'` + s + `'` }

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.toml")
	if err := os.WriteFile(path, []byte(grid), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.File != path || s.Dir != dir || s.Text != grid {
		t.Errorf("File %q Dir %q", s.File, s.Dir)
	}
	pts, _ := s.Points()
	if want := filepath.Join(dir, "models", "tiny"); pts[0].Model.Path != want {
		t.Errorf("model path %q, want %q", pts[0].Model.Path, want)
	}
	if _, err := Load(filepath.Join(dir, "missing.toml")); err == nil || !strings.Contains(err.Error(), "missing.toml") {
		t.Errorf("Load of a missing file: %v", err)
	}
}

func TestHashStable(t *testing.T) {
	base := head + `[[experiment]]
name = "passkey"
[experiment.params]
length = 2048
depth_bin = 3
[[policy]]
name = "truncated"
[policy.params]
keep = 1024
`
	same := []struct{ name, src string }{
		{"reordered keys", "name = \"t\"\n" + `[[policy]]
params = { keep = 1024 }
name = "truncated"

[[experiment]]
params = { depth_bin = 3, length = 2048 }
name = "passkey"

[[model]]
path = "./models/tiny"
# comment
[[model]]
path = "models/other"
[[exclude]]
model = "models/other"
`},
		{"explicit defaults", "chunk = 512\n" + head + `[[experiment]]
name = "passkey"
[experiment.params]
length = 2048
depth_bin = 3
samples = 10
seed = 0
max_new = 8
words = ""
[[policy]]
name = "truncated"
params = { keep = 1024, mode = "last" }
`},
		{"explicit backend", "backend = \"cpu\"\n" + base},
		{"float written for an int", strings.Replace(base, "depth_bin = 3", "depth_bin = 3.0", 1)},
		{"label and sweep name", strings.Replace(strings.Replace(base, `name = "t"`, `name = "other"`, 1), "[policy.params]", "label = \"x\"\n[policy.params]", 1)},
	}
	_, want := mustParse(t, base, "a.toml")
	if len(want) != 1 {
		t.Fatalf("%d points", len(want))
	}
	for _, tt := range same {
		_, pts := mustParse(t, tt.src, "b/c.toml")
		if len(pts) != 1 {
			t.Errorf("%s: %d points", tt.name, len(pts))
			continue
		}
		if pts[0].Hash != want[0].Hash {
			t.Errorf("%s: hash %s, want %s", tt.name, pts[0].Hash, want[0].Hash)
		}
	}
	differ := []struct{ name, src string }{
		{"policy param", strings.Replace(base, "keep = 1024", "keep = 1025", 1)},
		{"experiment param", strings.Replace(base, "length = 2048", "length = 2049", 1)},
		{"default written differently", base + "mode = \"middle\"\n"},
		{"chunk", "chunk = 7\n" + base},
		{"backend", "backend = \"cuda\"\n" + base},
		{"model path", strings.Replace(base, "models/tiny", "models/tiny2", 1)},
		{"model name", strings.Replace(base, `path = "models/tiny"`, `name = "models/tiny"`, 1)},
		{"experiment", strings.Replace(strings.Replace(base, "passkey", "latency", 1), "depth_bin = 3", "seed = 0", 1)},
	}
	for _, tt := range differ {
		_, pts := mustParse(t, tt.src, "a.toml")
		if pts[0].Hash == want[0].Hash {
			t.Errorf("%s: hash unchanged", tt.name)
		}
	}
}

// TestCanonical pins the canonical JSON and the hash of a point built by
// hand, so that a change to either is deliberate (bump hashVersion).
func TestCanonical(t *testing.T) {
	p := Point{
		Model:            ModelRef{Path: "/x/models/tiny", AsWritten: "models/tiny"},
		Experiment:       "passkey",
		ExperimentParams: map[string]any{"length": 2048, "words": "", "frac": 0.5},
		Policy:           "cascade",
		Label:            "ignored",
		PolicyParams:     map[string]any{"sinks": 4, "layers": []int{1, 2}, "eager": true},
		Chunk:            256,
		Backend:          backend.DefaultSpec("cpu"),
	}
	b, err := p.canonical()
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"backend":"cpu","chunk":256,"experiment":"passkey","experiment_params":{"frac":0.5,"length":2048,"words":""},"model":{"name":"","path":"models/tiny"},"policy":"cascade","policy_params":{"eager":true,"layers":[1,2],"sinks":4},"v":1}`
	if string(b) != want {
		t.Errorf("canonical JSON\n%s\nwant\n%s", b, want)
	}
	h, err := p.hash()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(h) {
		t.Errorf("hash %q is not 32 hex digits", h)
	}
	const wantHash = "263f00f8f947d4736b7293dc661bddef"
	if h != wantHash {
		t.Errorf("hash %s, want %s", h, wantHash)
	}
}

func TestParams(t *testing.T) {
	p := Point{
		Model:            ModelRef{Name: "tiny"},
		Experiment:       "passkey",
		ExperimentParams: map[string]any{"length": 1, "seed": 2, "chunk": 3},
		Policy:           "bigbird",
		Label:            "bb",
		PolicyParams:     map[string]any{"seed": 4, "window": 5, "label": 6},
		Chunk:            7,
		Backend:          backend.DefaultSpec("cuda"),
	}
	got := p.Params()
	want := map[string]any{
		"model": "tiny", "experiment": "passkey", "policy": "bigbird", "label": "bb", "chunk": 7, "backend": "cuda",
		"length": 1, "seed": 2, "experiment.chunk": 3, "policy.seed": 4, "window": 5, "policy.label": 6,
	}
	if len(got) != len(want) {
		t.Errorf("Params = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("Params[%q] = %v, want %v", k, got[k], v)
		}
	}
}

// TestEveryPolicy runs each registered policy, with its defaults and with
// every default written out, through a sweep.
func TestEveryPolicy(t *testing.T) {
	for _, spec := range policies.Specs() {
		var explicit strings.Builder
		for _, p := range spec.Params {
			if p.Default == nil {
				continue // optional (budget, ratio): no default to write
			}
			explicit.WriteString(p.Name + " = " + tomlValue(p.Default) + "\n")
		}
		src := head + "[[experiment]]\nname = \"passkey\"\n[[policy]]\nname = \"" + spec.Name + "\"\n"
		_, a := mustParse(t, src, "a.toml")
		_, b := mustParse(t, src+"[policy.params]\n"+explicit.String(), "a.toml")
		if len(a) != 1 || len(b) != 1 || a[0].Hash != b[0].Hash {
			t.Errorf("%s: defaults written out change the points", spec.Name)
		}
	}
}

func tomlValue(v any) string {
	switch v := v.(type) {
	case string:
		return quote(v)
	case float64:
		s := formatValue(v)
		if !strings.ContainsAny(s, ".e") {
			s += ".0"
		}
		return s
	}
	return formatValue(v)
}

// TestReadmeExamples parses the complete sweeps (those starting with
// name =) in configs/README.md, so that the documentation stays true.
func TestReadmeExamples(t *testing.T) {
	data, err := os.ReadFile("../../configs/README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```toml\n(.*?)```").FindAllStringSubmatch(string(data), -1)
	n := 0
	for _, b := range blocks {
		src := b[1]
		if !strings.HasPrefix(src, "name =") {
			continue
		}
		n++
		for _, m := range regexp.MustCompile(`(?m)^name = "(\w+)"`).FindAllStringSubmatch(src, -1) {
			if _, ok := policies.Lookup(m[1]); !ok && m[1] != "example" && m[1] != "passkey" {
				t.Skipf("policy %s is not registered yet", m[1])
			}
		}
		_, pts := mustParse(t, src, "configs/example.toml")
		if len(pts) != 35 {
			t.Errorf("README example: %d points, the text says 35", len(pts))
		}
	}
	if n == 0 {
		t.Error("no complete example in configs/README.md")
	}
}

// TestReadmeKeys checks that configs/README.md documents every key a sweep
// file takes, in the tables of its sections.
func TestReadmeKeys(t *testing.T) {
	data, err := os.ReadFile("../../configs/README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, k := range slices.Concat(topKeys, modelKeys, experimentKeys, policyKeys, fixedKeys, backendKeys) {
		if !strings.Contains(doc, "| `"+k+"` |") {
			t.Errorf("configs/README.md has no table row for key %q", k)
		}
	}
	for _, e := range experiments.All() {
		if !strings.Contains(doc, "- `"+e.Name()+"`:") {
			t.Errorf("configs/README.md does not list the parameters of experiment %s", e.Name())
		}
	}
}

// TestPrefixedRuleKey checks a rule on a policy parameter that shares its
// name with an experiment parameter (bigbird's seed beside passkey's).
func TestPrefixedRuleKey(t *testing.T) {
	if _, ok := policies.Lookup("bigbird"); !ok {
		t.Skip("policy bigbird is not registered")
	}
	src := head + `[[experiment]]
name = "passkey"
params = { seed = [0, 1, 2] }
[[policy]]
name = "bigbird"
params = { seed = [0, 1] }
[[exclude]]
"policy.seed" = 1
seed = [1, 2]
`
	_, pts := mustParse(t, src, "t.toml")
	if len(pts) != 6-2 {
		t.Errorf("%d points, want 4", len(pts))
	}
	for _, p := range pts {
		f := p.Params()
		if f["seed"] != p.ExperimentParams["seed"] || f["policy.seed"] != p.PolicyParams["seed"] {
			t.Errorf("flat %v", f)
		}
	}
}

// TestHashOmitsDefaultScoring holds a cascade point's hash to the value it
// had before the cascade took `scoring`: the parameter at its default
// ("exact") is left out of the hash (params.Param.OmitDefault), written or
// not, and "reference" makes another point.
func TestHashOmitsDefaultScoring(t *testing.T) {
	base := head + `[[experiment]]
name = "passkey"
[experiment.params]
length = 2048
depth_bin = 3
[[policy]]
name = "cascade"
[policy.params]
sinks = 4
size = 252
cascades = 4
`
	const before = "a99676e321c9c310911b047859071901" // hashed before `scoring` existed
	for _, tt := range []struct {
		name, extra string
		same        bool
	}{
		{"not written", "", true},
		{"written at its default", "scoring = \"exact\"\n", true},
		{"reference", "scoring = \"reference\"\n", false},
	} {
		_, pts := mustParse(t, base+tt.extra, "a.toml")
		if got := pts[0].Hash == before; got != tt.same {
			t.Errorf("%s: hash %s, before %s, want same = %v", tt.name, pts[0].Hash, before, tt.same)
		}
	}
}

// TestHashOmitsDefaultOfficialVariants holds snapkv's and h2o's hashes to
// those they had before snapkv took `select` and h2o `reduction =
// "query_max"`: select at its default ("kv_head"), written or not, is left
// out of the hash, and the official variants make other points.
func TestHashOmitsDefaultOfficialVariants(t *testing.T) {
	base := head + `[[experiment]]
name = "passkey"
[experiment.params]
length = 2048
[[policy]]
name = "snapkv"
[policy.params]
budget = 512
`
	_, pts := mustParse(t, base, "a.toml")
	before := pts[0].Hash
	for _, tt := range []struct {
		name, extra string
		same        bool
	}{
		{"select written at its default", "select = \"kv_head\"\n", true},
		{"select query_head", "select = \"query_head\"\n", false},
	} {
		_, pts := mustParse(t, base+tt.extra, "a.toml")
		if got := pts[0].Hash == before; got != tt.same {
			t.Errorf("%s: hash %s, before %s, want same = %v", tt.name, pts[0].Hash, before, tt.same)
		}
	}
	h2o := strings.Replace(base, "name = \"snapkv\"\n[policy.params]\nbudget = 512\n", "name = \"h2o\"\n[policy.params]\nreduction = \"%s\"\n", 1)
	hashes := map[string]bool{}
	for _, r := range []string{"mean", "max", "query_max"} {
		_, pts := mustParse(t, fmt.Sprintf(h2o, r), "a.toml")
		hashes[pts[0].Hash] = true
	}
	if len(hashes) != 3 {
		t.Errorf("h2o's reductions mean, max and query_max make %d distinct points, want 3", len(hashes))
	}
}

// TestHashOmitsDefaultDiagnostics holds a passkey point's hash to the value
// it had before passkey took `diagnostics`: off, written or not, it is left
// out of the hash; on, it makes another point.
func TestHashOmitsDefaultDiagnostics(t *testing.T) {
	const before = "a99676e321c9c310911b047859071901" // the point of TestHashOmitsDefaultScoring
	for _, tt := range []struct {
		name, extra string
		same        bool
	}{
		{"not written", "", true},
		{"written at its default", "diagnostics = false\n", true},
		{"on", "diagnostics = true\n", false},
	} {
		src := head + `[[experiment]]
name = "passkey"
[experiment.params]
length = 2048
depth_bin = 3
` + tt.extra + `[[policy]]
name = "cascade"
[policy.params]
sinks = 4
size = 252
cascades = 4
`
		_, pts := mustParse(t, src, "a.toml")
		if got := pts[0].Hash == before; got != tt.same {
			t.Errorf("%s: hash %s, before %s, want same = %v", tt.name, pts[0].Hash, before, tt.same)
		}
	}
}

// TestPlanIsImmutable: Parse expands the grid once; what Points returns is
// a copy, so editing it changes nothing a later caller sees, and every
// point carries the experiment, run parameters and policy factory Parse
// made for it.
func TestPlanIsImmutable(t *testing.T) {
	s, pts := mustParse(t, grid, "t.toml")
	if s.Len() != len(pts) {
		t.Fatalf("Len %d, Points %d", s.Len(), len(pts))
	}
	for i := range pts {
		pts[i].ExperimentParams["length"] = -1
		pts[i].PolicyParams["extra"] = true
		pts[i].Hash = ""
	}
	again, err := s.Points()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range again {
		if p.ExperimentParams.Int("length") < 0 || p.PolicyParams.Has("extra") || p.Hash == "" {
			t.Fatalf("a copy's edit reached the plan: %+v", p)
		}
		if p.exp == nil || p.factory == nil || p.run == nil {
			t.Fatalf("point %s lacks what Parse resolved", p.Hash)
		}
		e, err := p.Definition()
		if err != nil || e.Name() != p.Experiment {
			t.Errorf("Definition: %v, %v", e, err)
		}
		f, err := p.Factory()
		if err != nil || f.Name() != p.Policy {
			t.Errorf("Factory: %v, %v", f, err)
		}
		p.RunParams()["length"] = -2
	}
	if p, _ := s.Points(); p[0].RunParams().Int("length") < 0 {
		t.Error("an edit of RunParams reached the plan")
	}
}
