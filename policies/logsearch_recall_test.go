package policies

import (
	"slices"
	"testing"

	"kvcascade/datasets/passkey"
	"kvcascade/internal/modeltest"
	"kvcascade/runtime/backend"
	"kvcascade/runtime/model"
)

// recallProbe is a logsearch layer that also records every key it is
// given, so that each search can be checked against the brute-force
// ranking of the blocks by their best true score.
type recallProbe struct {
	*logsearch
	keys  [][]float32 // [Hkv][(t−sinks)·hd] every non-sink key, before RoPE
	q     []float32   // the query of the chunk being planned
	hasQ  bool
	hits  int // retrieved blocks that are in the true top-k
	total int // retrieved blocks
}

func (r *recallProbe) setQuery(q []float32) {
	r.logsearch.setQuery(q)
	r.q, r.hasQ = append(r.q[:0], q...), true
}

func (r *recallProbe) observeKeys(k []float32) {
	r.logsearch.observeKeys(k)
	hk, hd := r.s.KVHeads, r.s.HeadDim
	for i := 0; i*hk*hd < len(k); i++ {
		if r.seen+int64(i) < r.c.sinks {
			continue
		}
		for h := range hk {
			r.keys[h] = append(r.keys[h], k[(i*hk+h)*hd:(i*hk+h+1)*hd]...)
		}
	}
}

// Plan plans as logsearch does, then scores every evicted block by the
// largest q·k of its keys over the group's queries (what the bound bounds)
// and counts how many retrieved blocks are among the k best by that score.
func (r *recallProbe) Plan(step Step, view *backend.View) {
	had := r.hasQ
	r.hasQ = false
	r.logsearch.Plan(step, view)
	hk, hd, g := r.s.KVHeads, r.s.HeadDim, r.s.Group()
	k := len(r.found) / hk
	if !had || k == 0 {
		return
	}
	ne := int(r.evicted(r.seen))
	B := int(r.c.block)
	for h := range hk {
		score := make([]float32, ne)
		idx := make([]int32, ne)
		for j := range ne {
			idx[j] = int32(j)
			best := float32(-1e30)
			for t := j * B; t < (j+1)*B; t++ {
				key := r.keys[h][t*hd : (t+1)*hd]
				for qh := h * g; qh < (h+1)*g; qh++ {
					var s float32
					for d, v := range r.q[qh*hd : (qh+1)*hd] {
						s += v * key[d]
					}
					best = max(best, s)
				}
			}
			score[j] = best
		}
		slices.SortFunc(idx, func(a, b int32) int {
			if score[a] > score[b] {
				return -1
			}
			if score[a] < score[b] {
				return 1
			}
			return 0
		})
		for _, b := range r.found[h*k : (h+1)*k] {
			r.total++
			if slices.Contains(idx[:k], b) {
				r.hits++
			}
		}
	}
}

// TestLogsearchRecall reads a 2,048-token passkey prompt through the
// embedded tiny model with logsearch (4 sinks, window 241, blocks of 16,
// top 4) and measures, over every chunk's search in every layer and KV
// head, the recall of the blocks retrieved by bound against the true top 4
// by the best un-rotated q·k in the block: how much Quest's bound loses.
// The test asks only that it beats chance (about 0.04) by far; the
// number is logged.
func TestLogsearchRecall(t *testing.T) {
	if testing.Short() {
		t.Skip("reads a 2,048-token prompt through the tiny model")
	}
	m, tok := modeltest.Tiny(t)
	smp, err := passkey.Generate(passkey.Config{Length: 2048, DepthBin: 2}, tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := Shape{Layers: m.Layers, QHeads: m.Heads, KVHeads: m.KVHeads, HeadDim: m.HeadDim}
	cfg := logsearchConfig{sinks: 4, window: 241, block: 16, topk: 4}
	var probes []*recallProbe
	f := factoryFunc{"logsearch", func(_ int, s Shape) (Policy, error) {
		p := &recallProbe{logsearch: newLogsearch(cfg, s), keys: make([][]float32, s.KVHeads)}
		probes = append(probes, p)
		return p, nil
	}}
	c, err := NewCache(m.Backend(), f, s, backend.F32)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Free()
	sess := m.NewSession(c, 256)
	defer sess.Close()
	ids := tok.Encode(smp.Prompt, true)
	for i := 0; i < len(ids); i += 256 {
		if _, err := sess.Forward(ids[i:min(i+256, len(ids))], int64(len(ids)), model.NoLogits); err != nil {
			t.Fatal(err)
		}
	}
	hits, total := 0, 0
	for _, p := range probes {
		hits += p.hits
		total += p.total
	}
	if total == 0 {
		t.Fatal("no search ran")
	}
	recall := float64(hits) / float64(total)
	t.Logf("recall of the top-4 blocks by bound against the true top 4: %d/%d = %.2f over %d layers", hits, total, recall, len(probes))
	// chance: 4 of about (2048−260)/16 ≈ 110 blocks, 0.04 (measured: 0.31)
	if recall < 0.15 {
		t.Errorf("recall %.2f: the bound ranks blocks little better than chance (0.04)", recall)
	}
}
