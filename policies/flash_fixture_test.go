package policies

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"kvcascade/runtime/backend"
	"kvcascade/runtime/cpu"
)

// flashFixture is a recording of the official cascade attention's flash
// path (jeffwillette/cascading_cache_2, commit 4232407) on one random
// Llama-shaped layer, made on a GPU by
// tools/reference/record_official_scores.py: per chunk, the layer's
// queries, keys and values before RoPE, the raw scores the flash kernel
// returned and the cache after the chunk. Storage slot k of a head is
// kvcascade's cascade entry k (cascade k/W, ring index k mod W); og_pos is
// the original position plus one.
type flashFixture struct {
	Format     string         `json:"format"`
	Provenance map[string]any `json:"provenance"`
	Shape      struct {
		QHeads  int `json:"q_heads"`
		KVHeads int `json:"kv_heads"`
		HeadDim int `json:"head_dim"`
	} `json:"shape"`
	Policy struct {
		Sinks       int     `json:"sinks"`
		Size        int     `json:"size"`
		Cascades    int     `json:"cascades"`
		Rule        string  `json:"rule"`
		Reduction   string  `json:"reduction"`
		Beta        float64 `json:"beta"`
		EagerFill   bool    `json:"eager_fill"`
		Homogeneous bool    `json:"homogeneous"`
	} `json:"policy"`
	InvFreq []float32 `json:"inv_freq"`
	Scale   float32   `json:"scale"`
	Chunks  []struct {
		Index       int    `json:"index"`
		Start       int64  `json:"start"`
		Size        int    `json:"size"`
		Q           string `json:"q"`            // float16 [n, Hq·hd], base64
		K           string `json:"k"`            // float16 [n, Hkv·hd]
		V           string `json:"v"`            // float16 [n, Hkv·hd]
		FlashScores string `json:"flash_scores"` // float16 [Hq, L+n]
		After       struct {
			Score        [][]float32 `json:"score"`  // [head][slot]
			OgPos        [][]int64   `json:"og_pos"` // [head][slot], position + 1
			Mask         [][]bool    `json:"mask"`   // [head][slot], true: empty
			StoredTokens [][]int32   `json:"stored_tokens"`
			StartIndices [][]int32   `json:"start_indices"`
			StoredSinks  []int       `json:"stored_sinks"`
		} `json:"after"`
	} `json:"chunks"`
}

const flashFixtureFormat = "kvcascade/flash-scores/v1"

var flashFixturePath = filepath.Join("testdata", "flash", "official_scores.json")

// f16s decodes base64 little-endian float16s.
func f16s(s string) ([]float32, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b)%2 != 0 {
		return nil, fmt.Errorf("bad float16 data: %v (%d bytes)", err, len(b))
	}
	out := make([]float32, len(b)/2)
	for i := range out {
		h := binary.LittleEndian.Uint16(b[2*i:])
		sign := float32(1)
		if h&0x8000 != 0 {
			sign = -1
		}
		e, m := int(h>>10&0x1f), float64(h&0x3ff)
		switch e {
		case 0:
			out[i] = sign * float32(math.Ldexp(m, -24))
		case 31:
			out[i] = sign * float32(math.Inf(1))
			if m != 0 {
				out[i] = float32(math.NaN())
			}
		default:
			out[i] = sign * float32(math.Ldexp(1024+m, e-25))
		}
	}
	return out, nil
}

// f16Close reports whether a and b are within n float16 steps of the larger
// of the two (steps of 2⁻²⁴ below the normal range).
func f16Close(a, b float32, n float64) bool {
	m := math.Max(math.Abs(float64(a)), math.Abs(float64(b)))
	step := math.Ldexp(1, -24)
	if m >= math.Ldexp(1, -14) {
		_, e := math.Frexp(m) // m = f·2^e, f in [0.5, 1)
		step = math.Ldexp(1, e-11)
	}
	return math.Abs(float64(a)-float64(b)) <= n*step
}

// TestOfficialFlashScores replays the official flash path's recording
// through scoring = "reference" on the CPU: per chunk, the flash mass of
// every query head must match the kernel's raw scores within 4 float16
// steps (its atomic adds run in an order the hardware picks, and its dot
// products round differently from the CPU's), and after the chunk every
// head must hold the same tokens in the same storage slots, with scores
// within 4 float16 steps.
func TestOfficialFlashScores(t *testing.T) {
	data, err := os.ReadFile(flashFixturePath)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("%s has not been recorded yet: run tools/reference/record_official_scores.py on a GPU machine (see tools/reference/README.md)", flashFixturePath)
	}
	if err != nil {
		t.Fatal(err)
	}
	var fx flashFixture
	if err := json.Unmarshal(data, &fx); err != nil {
		t.Fatalf("%s: %v", flashFixturePath, err)
	}
	if fx.Format != flashFixtureFormat {
		t.Fatalf("%s: format %q, want %q", flashFixturePath, fx.Format, flashFixtureFormat)
	}
	t.Logf("recorded: %v", fx.Provenance)
	sh := Shape{Layers: 1, QHeads: fx.Shape.QHeads, KVHeads: fx.Shape.KVHeads, HeadDim: fx.Shape.HeadDim}
	pp := fx.Policy
	f, err := New("cascade", map[string]any{
		"sinks": pp.Sinks, "size": pp.Size, "cascades": pp.Cascades, "rule": pp.Rule, "reduction": pp.Reduction,
		"beta": pp.Beta, "eager_fill": pp.EagerFill, "homogeneous": pp.Homogeneous, "scoring": "reference",
	})
	if err != nil {
		t.Fatal(err)
	}
	b := cpu.New(2)
	cache, err := NewCache(b, f, sh, backend.F32)
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Free()
	p := cache.Policy(0).(*cascade)
	hq, hkv, hd := sh.QHeads, sh.KVHeads, sh.HeadDim
	W, C := pp.Size/pp.Cascades, pp.Cascades
	for _, ch := range fx.Chunks {
		n := ch.Size
		q, err1 := f16s(ch.Q)
		k, err2 := f16s(ch.K)
		v, err3 := f16s(ch.V)
		want, err4 := f16s(ch.FlashScores)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			t.Fatalf("chunk %d: %v", ch.Index, err)
		}
		view, err := cache.View(0, n, -1)
		if err != nil {
			t.Fatal(err)
		}
		L := view.ViewLen
		if len(want) != hq*(L+n) || len(q) != n*hq*hd || len(k) != n*hkv*hd {
			t.Fatalf("chunk %d: %d scores, %d q, %d k; want %d, %d, %d", ch.Index, len(want), len(q), len(k), hq*(L+n), n*hq*hd, n*hkv*hd)
		}
		kt, vt := cpu.Wrap(k, n, hkv*hd), cpu.Wrap(v, n, hkv*hd)
		a := &backend.Attention{
			Out: b.New(backend.F32, n, hq*hd), Q: cpu.Wrap(q, n, hq*hd), K: kt, V: vt, View: *view,
			HeadDim: hd, QHeads: hq, KVHeads: hkv, Scale: fx.Scale, InvFreq: fx.InvFreq, AttnFactor: 1,
			Mass: make([]float32, hq*(L+n)),
		}
		b.Attention(a)
		bad := 0
		for i, x := range a.Mass {
			if !f16Close(x, want[i], 4) {
				if bad++; bad <= 5 {
					t.Errorf("chunk %d: flash mass of head %d key %d = %v, kernel %v", ch.Index, i/(L+n), i%(L+n), x, want[i])
				}
			}
		}
		if err := cache.Update(0, kt, vt, a.Mass); err != nil {
			t.Fatal(err)
		}
		af := &ch.After
		for h := 0; h < hkv; h++ {
			if af.StoredSinks[h] != p.sunk {
				t.Fatalf("chunk %d head %d: %d sinks, official %d", ch.Index, h, p.sunk, af.StoredSinks[h])
			}
			for i := 0; i < C; i++ {
				ri := h*C + i
				if p.stored[ri] != af.StoredTokens[h][i] || p.start[ri] != af.StartIndices[h][i] {
					t.Fatalf("chunk %d head %d cascade %d: %d stored from %d, official %d from %d", ch.Index, h, i,
						p.stored[ri], p.start[ri], af.StoredTokens[h][i], af.StartIndices[h][i])
				}
			}
			var got, off []int64
			for slot := 0; slot < pp.Size; slot++ {
				e := h*pp.Size + slot
				filled := slot%W < int(p.stored[h*C+slot/W])
				if filled == af.Mask[h][slot] {
					t.Fatalf("chunk %d head %d slot %d: filled %v, official masked %v", ch.Index, h, slot, filled, af.Mask[h][slot])
				}
				if !filled {
					continue
				}
				got, off = append(got, p.pos[e]), append(off, af.OgPos[h][slot]-1)
				if !f16Close(p.score[e], af.Score[h][slot], 4) {
					t.Errorf("chunk %d head %d slot %d (token %d): score %v, official %v", ch.Index, h, slot, p.pos[e], p.score[e], af.Score[h][slot])
				}
			}
			if !slices.Equal(got, off) {
				t.Fatalf("chunk %d head %d: tokens by slot %v, official %v", ch.Index, h, got, off)
			}
		}
	}
	t.Logf("%d chunks replayed: the same tokens in the same slots after every chunk", len(fx.Chunks))
}

// TestF16Decode checks the fixture's float16 decoding on known bit patterns.
func TestF16Decode(t *testing.T) {
	bits := []uint16{0x3c00, 0xc000, 0x0001, 0x7bff, 0x3555, 0x0400, 0x8000, 0x7c00}
	want := []float32{1, -2, 1.0 / (1 << 24), 65504, 0.333251953125, 1.0 / (1 << 14), 0, float32(math.Inf(1))}
	buf := make([]byte, 2*len(bits))
	for i, h := range bits {
		binary.LittleEndian.PutUint16(buf[2*i:], h)
	}
	got, err := f16s(base64.StdEncoding.EncodeToString(buf))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("decoded %v, want %v", got, want)
	}
}
