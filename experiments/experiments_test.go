package experiments_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"kvcascade/datasets/passkey"
	"kvcascade/experiments"
	"kvcascade/policies"
	"kvcascade/runtime/cpu"
	"kvcascade/runtime/model"
	"kvcascade/runtime/tokenizer"
)

// The experiments run end to end on the tiny random Llama fixture of
// runtime/model/testdata (3 layers, 4 query heads over 2 KV heads, a
// 512-token BPE vocabulary).

const fixtureDir = "../runtime/model/testdata/llama"

var fixture = sync.OnceValues(func() (*model.Model, error) {
	return model.Load(fixtureDir, cpu.New(0))
})

// loadFixture returns the fixture model (loaded once; models are read-only)
// and its tokenizer.
func loadFixture(t *testing.T) (*model.Model, *tokenizer.Tokenizer) {
	t.Helper()
	m, err := fixture()
	if err != nil {
		t.Fatalf("load fixture: %v", err)
	}
	tok, err := tokenizer.Load(filepath.Join(fixtureDir, "tokenizer.json"))
	if err != nil {
		t.Fatalf("load fixture tokenizer: %v", err)
	}
	return m, tok
}

// newEnv returns an environment on the fixture with the named policy and
// prefill chunks of 16 tokens.
func newEnv(t *testing.T, policy string, params map[string]any) *experiments.Env {
	t.Helper()
	m, tok := loadFixture(t)
	f, err := policies.New(policy, params)
	if err != nil {
		t.Fatalf("policies.New(%s, %v): %v", policy, params, err)
	}
	return &experiments.Env{Model: m, Tokenizer: tok, Policy: f, Chunk: 16}
}

// run resolves raw against the named experiment and runs one point.
func run(t *testing.T, env *experiments.Env, name string, raw map[string]any) *experiments.Result {
	t.Helper()
	e, err := experiments.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	p, err := experiments.Resolve(e, raw)
	if err != nil {
		t.Fatalf("resolve %v: %v", raw, err)
	}
	r, err := e.Run(context.Background(), env, p)
	if err != nil {
		t.Fatalf("run %s %v: %v", name, raw, err)
	}
	return r
}

// metric returns the named metric of r, failing when it is absent or not
// finite.
func metric(t *testing.T, r *experiments.Result, name string) float64 {
	t.Helper()
	for _, m := range r.Metrics {
		if m.Name != name {
			continue
		}
		if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
			t.Fatalf("metric %s is %v", name, m.Value)
		}
		return m.Value
	}
	t.Fatalf("metric %s missing from %+v", name, r.Metrics)
	return 0
}

// samples decodes the per-sample records of r into T.
func samples[T any](t *testing.T, r *experiments.Result) []T {
	t.Helper()
	out := make([]T, len(r.Samples))
	for i, raw := range r.Samples {
		if err := json.Unmarshal(raw, &out[i]); err != nil {
			t.Fatalf("sample %d %s: %v", i, raw, err)
		}
	}
	return out
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// fullSession is a session of m over a fresh full cache read in chunks of
// chunk tokens, built as the experiments build theirs; both are released
// when the test ends.
func fullSession(t *testing.T, m *model.Model, chunk int) *model.Session {
	t.Helper()
	f, err := policies.New("full", nil)
	if err != nil {
		t.Fatal(err)
	}
	env := experiments.Env{Model: m, Policy: f}
	c, err := env.NewCache()
	if err != nil {
		t.Fatal(err)
	}
	s := m.NewSession(c, chunk)
	t.Cleanup(func() {
		s.Close()
		c.Free()
	})
	return s
}

// greedy is the continuation the fixture gives prompt under the full
// cache, computed here without the experiments package.
func greedy(t *testing.T, m *model.Model, prompt []int32, maxNew int) []int32 {
	t.Helper()
	s := fullSession(t, m, len(prompt))
	out, err := s.Generate(context.Background(), prompt, maxNew, m.EOS)
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	return out
}

func TestAll(t *testing.T) {
	var names []string
	for _, e := range experiments.All() {
		names = append(names, e.Name())
		if e.Doc() == "" {
			t.Errorf("experiment %s has no doc", e.Name())
		}
		if _, err := experiments.Resolve(e, nil); err != nil {
			t.Errorf("experiment %s: defaults do not resolve: %v", e.Name(), err)
		}
		_, err := experiments.Resolve(e, map[string]any{"no_such_param": 1})
		if err == nil || !strings.Contains(err.Error(), "no_such_param") {
			t.Errorf("experiment %s: Resolve of an unknown parameter: error %v, want one naming no_such_param", e.Name(), err)
		}
	}
	want := []string{"latency", "longbench", "memory", "passkey", "perplexity", "ruler"}
	if !slices.Equal(names, want) {
		t.Errorf("All() names %v, want %v", names, want)
	}
	for _, n := range want {
		if e, err := experiments.Lookup(n); err != nil || e.Name() != n {
			t.Errorf("Lookup(%q) = %v, %v", n, e, err)
		}
	}
	if _, err := experiments.Lookup("nope"); err == nil {
		t.Error("Lookup of an unknown experiment: no error")
	}
}

// passkeyRecord is a per-sample record of the passkey experiment.
type passkeyRecord struct {
	Index        int     `json:"index"`
	Key          string  `json:"key"`
	Depth        float64 `json:"depth"`
	PromptTokens int     `json:"prompt_tokens"`
	Output       string  `json:"output"`
	Correct      bool    `json:"correct"`
}

// passkeyWords writes a small word list for the filler.
func passkeyWords(t *testing.T) string {
	return writeFile(t, "words.txt", "apple\nbanana\ncherry\ndelta\nember\nforest\ngarden\nharbor\nisland\njungle\n")
}

// The passkey prompt without filler is 218 tokens of the fixture's
// tokenizer, so the shortest useful length is a little above that.
const passkeyLength = 300

// TestPasskeyScoresModelOutput runs the passkey experiment on the random
// fixture, whose continuations never name the key although every prompt
// does: accuracy must be 0, and every recorded output must be exactly the
// greedy continuation, recomputed here with Session.Generate.
func TestPasskeyScoresModelOutput(t *testing.T) {
	const n, bin, seed, maxNew = 3, 2, 5, 8
	env := newEnv(t, "full", nil)
	words := passkeyWords(t)
	r := run(t, env, "passkey", map[string]any{
		"length": passkeyLength, "depth_bin": bin, "samples": n, "seed": seed, "words": words, "max_new": maxNew,
	})
	recs := samples[passkeyRecord](t, r)
	if len(recs) != n {
		t.Fatalf("%d samples, want %d", len(recs), n)
	}
	cfg := passkey.Config{Length: passkeyLength, DepthBin: bin, Seed: seed, Words: words}
	correct := 0
	for i, rec := range recs {
		s, err := passkey.Generate(cfg, env.Tokenizer, passkey.Rand(seed, passkeyLength, bin, i))
		if err != nil {
			t.Fatal(err)
		}
		ids := env.Tokenizer.Encode(s.Prompt, true)
		out := greedy(t, env.Model, ids, maxNew)
		text := env.Tokenizer.Decode(out, true)
		if !strings.Contains(s.Prompt, s.Key) {
			t.Fatalf("sample %d: prompt does not contain its key %s", i, s.Key)
		}
		if strings.Contains(text, s.Key) {
			t.Fatalf("sample %d: the random fixture's continuation %q names the key %s; pick another seed", i, text, s.Key)
		}
		if rec.Index != i || rec.Key != s.Key || rec.PromptTokens != len(ids) {
			t.Errorf("sample %d: record %+v, want index %d, key %s, %d prompt tokens", i, rec, i, s.Key, len(ids))
		}
		if rec.Output != text {
			t.Errorf("sample %d: recorded output %q, the model generates %q", i, rec.Output, text)
		}
		if rec.Correct != passkey.Score(s.Key, text) {
			t.Errorf("sample %d: correct = %v for output %q and key %s", i, rec.Correct, text, s.Key)
		}
		if rec.Correct {
			correct++
		}
	}
	if got := metric(t, r, "accuracy"); got != 0 || correct != 0 {
		t.Errorf("accuracy %v%% (%d correct records), want 0: the model never outputs the key", got, correct)
	}
	if got := metric(t, r, "samples"); got != n {
		t.Errorf("samples metric %v, want %d", got, n)
	}
}

// keyPattern finds the key in a passkey prompt.
var keyPattern = regexp.MustCompile(`The pass key is (\d{5})\.`)

// answeringTokenizer is the fixture's tokenizer with a Decode that stands
// for a model that answers: it checks that it is given exactly the model's
// greedy continuation of the last prompt encoded, and returns answer(key)
// for the key of that prompt.
type answeringTokenizer struct {
	*tokenizer.Tokenizer
	t       *testing.T
	m       *model.Model
	maxNew  int
	answer  func(key string) string
	prompt  []int32 // ids of the last text encoded with special tokens
	key     string  // the key in that text
	decodes int
}

func (a *answeringTokenizer) Encode(text string, addSpecial bool) []int32 {
	ids := a.Tokenizer.Encode(text, addSpecial)
	if addSpecial {
		a.prompt, a.key = ids, ""
		if m := keyPattern.FindStringSubmatch(text); m != nil {
			a.key = m[1]
		}
	}
	return ids
}

func (a *answeringTokenizer) Decode(ids []int32, skipSpecial bool) string {
	a.decodes++
	if want := greedy(a.t, a.m, a.prompt, a.maxNew); !slices.Equal(ids, want) {
		a.t.Errorf("Decode(%v): not the model's continuation %v of the last prompt", ids, want)
	}
	if a.key == "" {
		a.t.Errorf("Decode: the last prompt encoded holds no key")
	}
	return a.answer(a.key)
}

// TestPasskeyScoresDecodedOutput checks the scoring side: with a tokenizer
// whose Decode turns the model's continuation into the key (as if the model
// had answered), accuracy is 100; when it turns it into another number,
// 0. Scoring thus reads the decoded continuation and nothing else.
func TestPasskeyScoresDecodedOutput(t *testing.T) {
	const n, maxNew = 2, 8
	for _, tc := range []struct {
		name     string
		answer   func(key string) string
		accuracy float64
	}{
		{"key", func(k string) string { return " " + k + ". The pass key is " + k }, 100},
		{"other number", func(k string) string { return " " + k[1:] + k[:1] }, 0},
		{"key after another number", func(k string) string { return " 1 or " + k }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t, "full", nil)
			tok := &answeringTokenizer{Tokenizer: env.Tokenizer.(*tokenizer.Tokenizer), t: t, m: env.Model, maxNew: maxNew, answer: tc.answer}
			env.Tokenizer = tok
			r := run(t, env, "passkey", map[string]any{
				"length": passkeyLength, "samples": n, "words": passkeyWords(t), "max_new": maxNew,
			})
			if tok.decodes != n {
				t.Errorf("Decode called %d times for %d samples", tok.decodes, n)
			}
			if got := metric(t, r, "accuracy"); got != tc.accuracy {
				t.Errorf("accuracy %v%%, want %v%%", got, tc.accuracy)
			}
			for i, rec := range samples[passkeyRecord](t, r) {
				if want := tc.answer(rec.Key); rec.Output != want {
					t.Errorf("sample %d: output %q, want %q", i, rec.Output, want)
				}
				if rec.Correct != (tc.accuracy == 100) {
					t.Errorf("sample %d: correct = %v", i, rec.Correct)
				}
			}
		})
	}
}

func TestLatency(t *testing.T) {
	const length = 64
	for _, policy := range []string{"full", "cascade"} {
		t.Run(policy, func(t *testing.T) {
			var params map[string]any
			if policy == "cascade" {
				params = map[string]any{"sinks": 4, "size": 32, "cascades": 4}
			}
			r := run(t, newEnv(t, policy, params), "latency", map[string]any{"length": length, "decode_tokens": 4})
			if v := metric(t, r, "prefill_s"); v <= 0 {
				t.Errorf("prefill_s = %v", v)
			}
			if v := metric(t, r, "prefill_tokens_per_s"); v <= 0 {
				t.Errorf("prefill_tokens_per_s = %v", v)
			}
			if v := metric(t, r, "decode_ms_per_token"); v < 0 {
				t.Errorf("decode_ms_per_token = %v", v)
			}
			if v := metric(t, r, "prompt_tokens"); v != length {
				t.Errorf("prompt_tokens = %v, want %d", v, length)
			}
		})
	}
}

// memoryRecord is a per-checkpoint record of the memory experiment.
type memoryRecord struct {
	Tokens           int64 `json:"tokens"`
	CacheBytes       int64 `json:"cache_bytes"`
	AllocBytes       int64 `json:"alloc_bytes"`
	StorageBytes     int64 `json:"storage_bytes"`
	HostStorageBytes int64 `json:"host_storage_bytes"`
	DeviceMetaBytes  int64 `json:"device_meta_bytes"`
	HostMetaBytes    int64 `json:"host_meta_bytes"`
	HeapBytes        int64 `json:"heap_bytes"`
	RSSBytes         int64 `json:"rss_bytes"`
}

// TestMemory checks that sink's cache has the same peak size at every
// length, and full's grows; that the allocated bytes are the storage and
// the bookkeeping, all of it on the host with the CPU backend; and that
// logsearch's host index grows with the stream where full keeps none;
// that logsearch with a host tier keeps its device storage fixed and its
// other tokens in the host tier.
func TestMemory(t *testing.T) {
	lengths := []int{64, 128}
	peaks, hostPeaks := map[string][]float64{}, map[string][]float64{}
	for _, label := range []string{"sink", "full", "logsearch", "logsearch_tier"} {
		var params map[string]any
		policy := label
		switch label {
		case "sink":
			params = map[string]any{"sinks": 4, "window": 28}
		case "logsearch":
			params = map[string]any{"sinks": 4, "window": 8, "block": 4, "topk": 2}
		case "logsearch_tier":
			policy = "logsearch"
			params = map[string]any{"sinks": 4, "window": 8, "block": 4, "topk": 2, "device_tokens": 30}
		}
		env := newEnv(t, policy, params)
		for _, n := range lengths {
			r := run(t, env, "memory", map[string]any{"length": n, "checkpoints": 4})
			peak := metric(t, r, "peak_cache_bytes")
			peaks[label] = append(peaks[label], peak)
			hostPeaks[label] = append(hostPeaks[label], metric(t, r, "peak_host_meta_bytes"))
			metric(t, r, "peak_heap_bytes")
			if v := metric(t, r, "prompt_tokens"); v != float64(n) {
				t.Errorf("%s, length %d: prompt_tokens = %v", policy, n, v)
			}
			recs := samples[memoryRecord](t, r)
			if len(recs) == 0 || recs[len(recs)-1].Tokens != int64(n) {
				t.Fatalf("%s, length %d: checkpoints %+v, want the last at %d tokens", policy, n, recs, n)
			}
			for i, rec := range recs {
				if rec.CacheBytes <= 0 || float64(rec.CacheBytes) > peak || (i > 0 && rec.Tokens <= recs[i-1].Tokens) {
					t.Errorf("%s, length %d: checkpoint %d %+v (peak %v)", policy, n, i, rec, peak)
				}
				// Bytes of the tokens held: every token under full, at most
				// 4 + 28 under sink; the storage allocated is at least that.
				m := env.Model
				held := rec.Tokens
				if policy == "sink" {
					held = min(held, 32)
				}
				if want := held * int64(m.Layers*m.KVHeads*m.HeadDim*2*4); rec.CacheBytes != want {
					t.Errorf("%s, length %d: cache bytes %d at %d tokens, want %d (%d tokens held)", policy, n, rec.CacheBytes, rec.Tokens, want, held)
				}
				if rec.AllocBytes < rec.CacheBytes {
					t.Errorf("%s, length %d: allocated %d bytes < %d held", policy, n, rec.AllocBytes, rec.CacheBytes)
				}
				if rec.StorageBytes+rec.HostStorageBytes+rec.DeviceMetaBytes+rec.HostMetaBytes != rec.AllocBytes || rec.DeviceMetaBytes != 0 ||
					rec.StorageBytes+rec.HostStorageBytes < rec.CacheBytes {
					t.Errorf("%s, length %d: %+v: want storage (≥ the bytes held) and host bookkeeping adding up to the bytes allocated, nothing on a device", label, n, rec)
				}
				row := int64(m.Layers * m.KVHeads * m.HeadDim * 2 * 4)
				if tier := label == "logsearch_tier"; tier && (rec.StorageBytes != 30*row || rec.HostStorageBytes == 0) ||
					!tier && rec.HostStorageBytes != 0 {
					t.Errorf("%s, length %d: %+v: want the device storage at 30 rows and the rest in the host tier, or no host tier", label, n, rec)
				}
			}
		}
	}
	if s := peaks["sink"]; s[0] != s[1] {
		t.Errorf("sink: peak cache bytes %v at lengths %v, want constant", s, lengths)
	}
	if f := peaks["full"]; f[1] <= f[0] {
		t.Errorf("full: peak cache bytes %v at lengths %v, want growth", f, lengths)
	}
	if h := hostPeaks["logsearch"]; h[1] <= h[0] || hostPeaks["full"][1] != 0 {
		t.Errorf("peak host bookkeeping: logsearch %v, full %v at lengths %v: want logsearch's index to grow, full to keep none", h, hostPeaks["full"], lengths)
	}
}

// pplRecord is a point of the perplexity curve; the last record is the
// retention sample instead (tokens and held).
type pplRecord struct {
	Tokens     int64     `json:"tokens"`
	NLL        float64   `json:"nll"`
	PPL        float64   `json:"ppl"`
	WindowPPL  float64   `json:"window_ppl"`
	CacheBytes int64     `json:"cache_bytes"`
	Window     int64     `json:"window"`
	Held       [][]int64 `json:"held"`
}

const pplText = `The mill stood on the bank of the river for two hundred years. Every morning the miller opened the gates,
and the water turned the great wheel, and the stones ground the grain that the farmers brought from the hills.
In winter the river froze and the wheel stopped, and the miller mended the sacks and told stories to his children.
`

// TestPerplexity streams 120 tokens in chunks of 16: the curve is
// log-spaced from 1 (or linear from 40) and ends at the 119 scored tokens, every number is finite, the
// retention sample has one row per layer, and under full the mean NLL is
// the one computed here from one-shot logits.
func TestPerplexity(t *testing.T) {
	const tokens, checkpoints = 120, 8
	text := writeFile(t, "book.txt", strings.Repeat(pplText, 4))
	for _, tc := range []struct {
		policy  string
		params  map[string]any
		held    int // tokens each layer holds at the end
		from    int64
		spacing string
	}{
		{"full", nil, tokens, 1, "log"},
		{"cascade", map[string]any{"sinks": 4, "size": 32, "cascades": 4}, 4 + 32, 1, "log"},
		{"sink", map[string]any{"sinks": 4, "window": 28}, 4 + 28, 40, "linear"},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			env := newEnv(t, tc.policy, tc.params)
			r := run(t, env, "perplexity", map[string]any{"text": text, "tokens": tokens, "checkpoints": checkpoints,
				"from": tc.from, "spacing": tc.spacing})
			if v := metric(t, r, "train_length"); v != float64(env.Model.MaxPositions) {
				t.Errorf("train_length metric %v, want the model's %d", v, env.Model.MaxPositions)
			}
			scored := int64(tokens - 1)
			if v := metric(t, r, "tokens"); v != float64(scored) {
				t.Errorf("tokens metric %v, want %d scored", v, scored)
			}
			ppl, nll := metric(t, r, "ppl"), metric(t, r, "nll")
			if ppl <= 1 || math.Abs(ppl-math.Exp(nll)) > 1e-9*ppl {
				t.Errorf("ppl %v, nll %v", ppl, nll)
			}
			recs := samples[pplRecord](t, r)
			if len(recs) < 2 {
				t.Fatalf("%d samples", len(recs))
			}
			curve, retention := recs[:len(recs)-1], recs[len(recs)-1]
			var marks []int64
			for i, rec := range curve {
				marks = append(marks, rec.Tokens)
				prev := int64(0)
				if i > 0 {
					prev = curve[i-1].Tokens
				}
				if rec.Window != rec.Tokens-prev {
					t.Errorf("point %d: window %d tokens, want the %d since the previous point", i, rec.Window, rec.Tokens-prev)
				}
				for _, v := range []float64{rec.NLL, rec.PPL, rec.WindowPPL} {
					if math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
						t.Errorf("point %d %+v: not a finite positive value", i, rec)
					}
				}
				if rec.CacheBytes <= 0 {
					t.Errorf("point %d: cache bytes %d", i, rec.CacheBytes)
				}
			}
			if want := spaced(scored, tc.from, checkpoints, tc.spacing); !slices.Equal(marks, want) {
				t.Errorf("curve at %v tokens, want %v", marks, want)
			}
			if last := curve[len(curve)-1]; math.Abs(last.NLL-nll) > 1e-12 {
				t.Errorf("last point NLL %v, metric %v", last.NLL, nll)
			}
			if retention.Tokens != tokens || len(retention.Held) != env.Model.Layers {
				t.Fatalf("retention sample: %d tokens, %d rows; want %d tokens, %d rows (one per layer)", retention.Tokens, len(retention.Held), tokens, env.Model.Layers)
			}
			for l, row := range retention.Held {
				if len(row) != tc.held || row[0] != 0 || !slices.IsSorted(row) || row[len(row)-1] != tokens-1 {
					t.Errorf("layer %d holds %v, want %d positions from 0 to %d, ascending", l, row, tc.held, tokens-1)
				}
			}
			if tc.policy == "full" {
				ids := env.Tokenizer.Encode(strings.Repeat(pplText, 4), true)[:tokens]
				if want := fullNLL(t, env.Model, ids); math.Abs(nll-want) > 1e-5 {
					t.Errorf("nll %v, one-shot forward gives %v", nll, want)
				}
			}
		})
	}
}

// spaced is the curve the perplexity experiment promises: the distinct
// values of from·(n/from)^(i/(k−1)) (log) or from + (n−from)·i/(k−1)
// (linear), i = 0..k−1, rounded.
func spaced(n, from int64, k int, spacing string) []int64 {
	var out []int64
	for i := 0; i < k; i++ {
		f := float64(i) / float64(k-1)
		c := float64(from) + f*float64(n-from)
		if spacing == "log" {
			c = float64(from) * math.Pow(float64(n)/float64(from), f)
		}
		if r := int64(math.Round(c)); len(out) == 0 || r > out[len(out)-1] {
			out = append(out, r)
		}
	}
	return out
}

// fullNLL is the mean negative log-likelihood of ids[1:] from one forward
// pass over all of ids with the full cache.
func fullNLL(t *testing.T, m *model.Model, ids []int32) float64 {
	t.Helper()
	s := fullSession(t, m, len(ids))
	logits, err := s.Forward(ids, int64(len(ids)), model.AllLogits)
	if err != nil {
		t.Fatal(err)
	}
	var nll float64
	v := m.Vocab
	for i := 0; i+1 < len(ids); i++ {
		nll -= model.LogProb(logits[i*v:(i+1)*v], ids[i+1])
	}
	return nll / float64(len(ids)-1)
}

// longbenchRecord is a per-sample record of the LongBench experiment.
type longbenchRecord struct {
	ID           string   `json:"id"`
	Prediction   string   `json:"prediction"`
	Answers      []string `json:"answers"`
	Score        float64  `json:"score"`
	PromptTokens int      `json:"prompt_tokens"`
	Length       int      `json:"length"`
}

// TestLongBench runs two of three trec records written in LongBench's
// official format.
func TestLongBench(t *testing.T) {
	classes := []string{"Human being", "Numeric value", "Description", "Entity", "Location", "Abbreviation"}
	var lines []string
	for i, q := range []struct{ input, answer string }{
		{"Who built the mill on the river?", "Human being"},
		{"How many stones does the mill have?", "Numeric value"},
		{"Where is the mill?", "Location"},
	} {
		rec := map[string]any{
			"input":       q.input,
			"context":     "Question: Who founded the city?\nType: Human being\nQuestion: How tall is the bridge?\nType: Numeric value\nQuestion: Where is the harbor?\nType: Location",
			"answers":     []string{q.answer},
			"all_classes": classes,
			"length":      20,
			"dataset":     "trec",
			"language":    "en",
			"_id":         fmt.Sprintf("test-%d", i),
		}
		b, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(b))
	}
	data := writeFile(t, "trec.jsonl", strings.Join(lines, "\n")+"\n")
	for _, policy := range []string{"full", "sink"} {
		t.Run(policy, func(t *testing.T) {
			var params map[string]any
			if policy == "sink" {
				params = map[string]any{"sinks": 4, "window": 28}
			}
			r := run(t, newEnv(t, policy, params), "longbench", map[string]any{"data": data, "limit": 2})
			score := metric(t, r, "score")
			if score < 0 || score > 100 {
				t.Errorf("score %v outside [0, 100]", score)
			}
			if n := metric(t, r, "samples"); n != 2 {
				t.Errorf("samples metric %v, want 2", n)
			}
			recs := samples[longbenchRecord](t, r)
			if len(recs) != 2 {
				t.Fatalf("%d per-sample records, want 2 (limit)", len(recs))
			}
			var total float64
			for i, rec := range recs {
				if rec.ID != fmt.Sprintf("test-%d", i) || len(rec.Answers) != 1 || rec.PromptTokens <= 0 || rec.Length != 20 {
					t.Errorf("record %d: %+v", i, rec)
				}
				if rec.Score < 0 || rec.Score > 1 {
					t.Errorf("record %d: score %v outside [0, 1]", i, rec.Score)
				}
				total += rec.Score
			}
			if want := 100 * total / 2; math.Abs(score-want) > 1e-9 {
				t.Errorf("score %v, mean of the records %v", score, want)
			}
		})
	}
}
