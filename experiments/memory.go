package experiments

import (
	"bufio"
	"context"
	"kvcascade/plots/figure"
	"os"
	"runtime"
	"strconv"
	"strings"

	"kvcascade/policies"
	"kvcascade/policies/params"
	"kvcascade/runtime/model"
)

// memory follows cache and process memory as a sequence grows.
type memory struct{}

func (memory) Name() string { return "memory" }
func (memory) Doc() string {
	return "cache bytes (of the tokens held, and as allocated), Go heap and process peak RSS as a random prompt streams through the cache"
}

// Figures are the figures drawn from its points.
func (memory) Figures() []figure.Kind {
	return []figure.Kind{figure.CacheMemory}
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
	CacheBytes int64 `json:"cache_bytes"` // keys and values of the tokens held (HeldBytes)
	AllocBytes int64 `json:"alloc_bytes"` // storage allocated, with the policy's bookkeeping
	// where AllocBytes live (policies.Memory): the key/value storage and
	// the device-planned policies' bookkeeping in the backend's memory (the
	// GPU's with cuda), the host tier's key/value storage (logsearch with
	// device_tokens; page-locked with cuda) and the host policies'
	// bookkeeping (logsearch's and quest's index among it) in host memory
	StorageBytes     int64 `json:"storage_bytes"`
	HostStorageBytes int64 `json:"host_storage_bytes"`
	DeviceMetaBytes  int64 `json:"device_meta_bytes"`
	HostMetaBytes    int64 `json:"host_meta_bytes"`
	HeapBytes        int64 `json:"heap_bytes"`
	RSSBytes         int64 `json:"rss_bytes"`
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
	var peakCache, peakAlloc, peakHeap, peakHostMeta int64
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
			mem := cache.Memory()
			smp := memorySample{Tokens: int64(j), CacheBytes: HeldBytes(cache, env.Model), AllocBytes: cache.Bytes(),
				StorageBytes: mem.Storage, HostStorageBytes: mem.HostStorage, DeviceMetaBytes: mem.Device, HostMetaBytes: mem.Host,
				HeapBytes: int64(ms.HeapInuse), RSSBytes: procStatus("VmRSS")}
			peakCache, peakHeap = max(peakCache, smp.CacheBytes), max(peakHeap, smp.HeapBytes)
			peakAlloc, peakHostMeta = max(peakAlloc, smp.AllocBytes), max(peakHostMeta, smp.HostMetaBytes)
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
	r.metric("peak_alloc_bytes", float64(peakAlloc), "bytes")
	r.metric("peak_host_meta_bytes", float64(peakHostMeta), "bytes")
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

// HeldBytes is the memory of the keys and values a cache holds: for every
// layer and KV head, the tokens it holds × head dimension × 2 (key and
// value) × the storage type's size. Unlike Cache.Bytes it counts neither
// allocated but unused capacity nor the policy's bookkeeping, so a policy
// that keeps 260 tokens reads as 260 tokens' worth however its storage grew.
func HeldBytes(c *policies.Cache, m *model.Model) int64 {
	perToken := int64(2 * m.HeadDim * m.Backend().DType().Size())
	var tokens int64
	for l := 0; l < m.Layers; l++ {
		for h := 0; h < m.KVHeads; h++ {
			tokens += int64(len(c.Held(l, h)))
		}
	}
	return tokens * perToken
}
