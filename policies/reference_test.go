package policies

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"kvcascade/runtime/backend"
)

// refFile is a recording of the official cascading cache (its Triton kernel
// _update_kv_cache_inner driven by CascadingKVCache.update), made by
// tools/reference/cascade_fixtures.py; testdata/reference/README.md
// describes it. Per chunk it holds the mass added to every reference slot's
// score before the walk (ema_add), the new tokens' scores and the state
// after. Slots are the reference's: cascade i owns slots [i·W, (i+1)·W) of
// each head, and og_pos is the original position plus one.
type refFile struct {
	Format   string `json:"format"`
	Settings struct {
		Name          string  `json:"name"`
		Sinks         int     `json:"sinks"`
		Total         int     `json:"total"`
		Cascades      int     `json:"cascades"`
		Window        int     `json:"window"`
		EagerFill     bool    `json:"eager_fill"`
		CascadeFunc   string  `json:"cascade_func"`
		EveryN        []int64 `json:"every_n"`
		Beta          float64 `json:"beta"`
		Heads         int     `json:"heads"`
		HeadReduction string  `json:"head_reduction"`
		Dtype         string  `json:"dtype"`
	} `json:"settings"`
	Chunks []refChunk `json:"chunks"`
}

type refChunk struct {
	Index  int   `json:"index"`
	Start  int64 `json:"start"`
	Size   int   `json:"size"`
	Before struct {
		OgPos [][]int64 `json:"og_pos"` // [head][slot]
		Mask  [][]bool  `json:"mask"`   // true: slot empty
	} `json:"before"`
	EmaAdd    [][]float32 `json:"ema_add"`    // [head][slot]
	ScoresNew [][]float32 `json:"scores_new"` // [head][token]
	After     refState    `json:"after"`
}

type refState struct {
	OgPos        [][]int64   `json:"og_pos"`
	Score        [][]float32 `json:"score"`
	Mask         [][]bool    `json:"mask"`
	StoredTokens [][]int32   `json:"stored_tokens"` // [head][cascade]
	StartIndices [][]int32   `json:"start_indices"`
	StoredSinks  []int       `json:"stored_sinks"`
	SinkPos      [][]int64   `json:"sink_pos"`
	SinkMask     [][]bool    `json:"sink_mask"`
	Pos          [][]int64   `json:"pos"` // cache-relative RoPE position per slot, sinks counted
	PosGetVals   []int64     `json:"pos_get_vals"`
	SeenTokens   int64       `json:"seen_tokens"`
}

const refFormat = "kvcascade/cascade-reference/v1"

var refDir = flag.String("reference", filepath.Join("testdata", "reference"), "folder of the cascade kernel's recordings")

// TestReferenceKernel replays every recording through Plan and Commit and
// requires, after every chunk and for every head, the reference's state
// exactly: sinks; per cascade the fill and start index, and at each ring
// slot the same token (original position) with the same float32 score; and
// the same cache-relative position for every held token. The recordings
// keep the kernel's "newest entry" index (start−1) mod stored with the floor
// semantics of Triton 3.0, which the authors ran; later Triton versions
// compute the float modulo as C fmod and the unpatched kernel then compares
// with the wrong entry (the recordings' provenance says so).
func TestReferenceKernel(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(*refDir, "*.json"))
	if len(files) == 0 {
		t.Skipf("no recordings in %s (made on a GPU by tools/reference/cascade_fixtures.py)", *refDir)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var ref refFile
			if err := json.Unmarshal(data, &ref); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if ref.Format != refFormat {
				t.Fatalf("%s: format %q, want %q", path, ref.Format, refFormat)
			}
			replay(t, &ref)
		})
	}
}

func replay(t *testing.T, ref *refFile) {
	st := ref.Settings
	if st.Dtype != "float32" || st.HeadReduction != "mean" {
		t.Fatalf("recorded with %s scores and %s reduction; the replay needs float32 and mean", st.Dtype, st.HeadReduction)
	}
	// one query head per KV head, so the mass is the reference's numbers
	s := Shape{Layers: 1, QHeads: st.Heads, KVHeads: st.Heads, HeadDim: 16}
	p := newCascadeLayer(t, map[string]any{
		"sinks": st.Sinks, "size": st.Total, "cascades": st.Cascades, "rule": st.CascadeFunc,
		"beta": st.Beta, "eager_fill": st.EagerFill, "reduction": "mean",
	}, s)
	if !slices.Equal(p.c.every, st.EveryN) {
		t.Fatalf("acceptance periods %v, reference %v", p.c.every, st.EveryN)
	}
	var ctx backend.View
	var mass []float32
	var place []int32
	var held []int64
	for _, ch := range ref.Chunks {
		n := ch.Size
		p.Plan(Step{Start: ch.Start, N: n, PromptEnd: -1}, &ctx)
		L := ctx.ViewLen
		w := L + n
		mass = grow(mass, s.QHeads*w)
		for h := 0; h < s.KVHeads; h++ {
			// the reference slot of each held token, from the state before
			slotOf := map[int64]int{}
			for slot, og := range ch.Before.OgPos[h] {
				if !ch.Before.Mask[h][slot] {
					slotOf[og-1] = slot
				}
			}
			held = p.Held(h, held[:0])
			row := mass[h*w : (h+1)*w]
			for j, x := range held {
				row[j] = 0 // sinks have no score
				if j >= p.sunk {
					slot, ok := slotOf[x]
					if !ok {
						t.Fatalf("chunk %d head %d: token %d held here, not in the reference", ch.Index, h, x)
					}
					row[j] = ch.EmaAdd[h][slot]
				}
			}
			copy(row[L:], ch.ScoresNew[h])
		}
		place = grow(place, s.KVHeads*n)
		p.Commit(mass, place)
		if err := compareState(p, ref, &ch); err != nil {
			t.Fatalf("%s, chunk %d (tokens %d..%d): %v", st.Name, ch.Index, ch.Start, ch.Start+int64(n)-1, err)
		}
	}
	t.Logf("%s: %d chunks, %d tokens, state equal after every chunk", st.Name, len(ref.Chunks), ref.Chunks[len(ref.Chunks)-1].After.SeenTokens)
}

// compareState checks p against the reference's state after chunk ch.
func compareState(p *cascade, ref *refFile, ch *refChunk) error {
	a := &ch.After
	W, C := ref.Settings.Window, ref.Settings.Cascades
	for h := 0; h < p.s.KVHeads; h++ {
		if a.StoredSinks[h] != p.sunk {
			return fmt.Errorf("head %d: %d sinks, reference %d", h, p.sunk, a.StoredSinks[h])
		}
		for j := 0; j < p.sunk; j++ {
			if a.SinkMask[h][j] || a.SinkPos[h][j] != int64(j) {
				return fmt.Errorf("head %d: reference sink %d at position %d (masked %v)", h, j, a.SinkPos[h][j], a.SinkMask[h][j])
			}
		}
		// cache-relative position of every entry, in our attention order
		posOf := map[int]int64{}
		j := int64(p.sunk)
		p.each(h, func(e int) { posOf[e] = j; j++ })
		for i := 0; i < C; i++ {
			ri := h*C + i
			if p.stored[ri] != a.StoredTokens[h][i] || p.start[ri] != a.StartIndices[h][i] {
				return fmt.Errorf("head %d cascade %d: %d stored from %d, reference %d from %d", h, i,
					p.stored[ri], p.start[ri], a.StoredTokens[h][i], a.StartIndices[h][i])
			}
			for e := 0; e < W; e++ {
				slot, entry := i*W+e, h*p.c.size+i*W+e
				filled := e < int(p.stored[ri])
				if filled == a.Mask[h][slot] {
					return fmt.Errorf("head %d cascade %d slot %d: filled %v, reference masked %v", h, i, e, filled, a.Mask[h][slot])
				}
				if !filled {
					continue
				}
				if got, want := p.pos[entry], a.OgPos[h][slot]-1; got != want {
					return fmt.Errorf("head %d cascade %d slot %d: token %d, reference %d", h, i, e, got, want)
				}
				if got, want := p.score[entry], a.Score[h][slot]; got != want {
					return fmt.Errorf("head %d cascade %d slot %d (token %d): score %v, reference %v (%g)", h, i, e,
						p.pos[entry], got, want, got-want)
				}
				if got, want := posOf[entry], a.Pos[h][slot]; got != want {
					return fmt.Errorf("head %d cascade %d slot %d (token %d): position %d, reference %d", h, i, e,
						p.pos[entry], got, want)
				}
				if h == 0 && a.PosGetVals[slot] != a.Pos[0][slot] {
					return fmt.Errorf("reference get_vals position %d differs from its pos %d", a.PosGetVals[slot], a.Pos[0][slot])
				}
			}
		}
	}
	return nil
}
