package experiments

import (
	"bufio"
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"

	"kvcascade/policies/params"
)

// memory follows cache and process memory as a sequence grows.
type memory struct{}

func (memory) Name() string { return "memory" }
func (memory) Doc() string {
	return "cache bytes, Go heap and process peak RSS as a random prompt streams through the cache"
}

func (memory) Params() []params.Param {
	return []params.Param{
		{Name: "length", Kind: "int", Default: 16384, Doc: "prompt length in tokens"},
		{Name: "checkpoints", Kind: "int", Default: 8, Doc: "measurements along the way (at equal token intervals)"},
		{Name: "seed", Kind: "int", Default: 0, Doc: "seed of the random prompt"},
	}
}

type memorySample struct {
	Tokens     int64 `json:"tokens"`
	CacheBytes int64 `json:"cache_bytes"`
	HeapBytes  int64 `json:"heap_bytes"`
	RSSBytes   int64 `json:"rss_bytes"`
}

func (m memory) Run(ctx context.Context, env *Env, p params.Values) (*Result, error) {
	n := p.Int("length")
	if err := m.check(p); err != nil {
		return nil, err
	}
	ids := env.Prompt(randomPrompt(n, env.Model.Vocab, p.Int("seed")))
	cache, err := env.NewCache()
	if err != nil {
		return nil, err
	}
	defer cache.Free()
	s := env.Model.NewSession(cache, env.Chunk)
	defer s.Close()
	every := max(len(ids)/max(p.Int("checkpoints"), 1), 1)
	r := &Result{}
	var peakCache, peakHeap int64
	next := every
	for i := 0; i < len(ids); i += env.Chunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		j := min(i+env.Chunk, len(ids))
		if _, err := s.Forward(ids[i:j], int64(len(ids)), 0); err != nil {
			return nil, err
		}
		if j >= next || j == len(ids) {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			smp := memorySample{Tokens: int64(j), CacheBytes: cache.Bytes(), HeapBytes: int64(ms.HeapInuse), RSSBytes: procStatus("VmRSS")}
			peakCache, peakHeap = max(peakCache, smp.CacheBytes), max(peakHeap, smp.HeapBytes)
			if err := r.sample(smp); err != nil {
				return nil, err
			}
			for next <= j {
				next += every
			}
		}
		env.progress(j, len(ids))
	}
	r.metric("peak_cache_bytes", float64(peakCache), "bytes")
	r.metric("peak_heap_bytes", float64(peakHeap), "bytes")
	if hwm := procStatus("VmHWM"); hwm > 0 {
		r.metric("peak_rss_bytes", float64(hwm), "bytes")
	}
	r.metric("prompt_tokens", float64(len(ids)), "tokens")
	return r, nil
}

// procStatus reads a "kB" field of /proc/self/status in bytes, or -1 where
// it cannot be read (not Linux).
func procStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return -1
		}
		return kb * 1024
	}
	return -1
}
