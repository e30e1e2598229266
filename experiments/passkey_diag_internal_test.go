package experiments

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"kvcascade/datasets/passkey"
	"kvcascade/runtime/tokenizer"
)

// TestDiagnoseHead works small cases by hand: a key block of tokens
// [10, 20) inside a filler [3, 30), the key spelt by tokens [12, 14) and
// [17, 19).
func TestDiagnoseHead(t *testing.T) {
	lay := keyLayout{Block: [2]int{10, 20}, Filler: [2]int{3, 30}, Spellings: [][2]int{{12, 14}, {17, 19}}}
	all := make([]int64, 32)
	for i := range all {
		all[i] = int64(i)
	}
	ratio := func(r float64) *float64 { return &r }
	for _, tt := range []struct {
		name   string
		held   []int64
		scores []float32
		want   headDiag
	}{
		{"everything, no scores", all, nil, headDiag{Held: 1, Whole: true}},
		// Sinks 0–3 unscored; key tokens 12, 13, 15 score 4, 2, 3 (mean
		// 3), filler 25, 26 score 1, 2 (mean 1.5).
		{"cascade-like", []int64{0, 1, 2, 3, 12, 13, 15, 25, 26}, []float32{4, 2, 3, 1, 2},
			headDiag{Held: 0.3, Whole: true, Ratio: ratio(2)}},
		{"half a spelling, filler unscored", []int64{17, 25}, []float32{1, 0}, headDiag{Held: 0.1}},
		{"no key", []int64{25, 26}, []float32{1, 1}, headDiag{}},
		// Position 31 is past the filler (the question): neither key nor
		// filler, so there is no filler to compare with.
		{"no filler", []int64{12, 31}, []float32{2, 9}, headDiag{Held: 0.1}},
		{"second spelling", []int64{17, 18}, nil, headDiag{Held: 0.2, Whole: true}},
	} {
		got := diagnoseHead(lay, tt.held, tt.scores)
		same := got.Held == tt.want.Held && got.Whole == tt.want.Whole &&
			(got.Ratio == nil) == (tt.want.Ratio == nil) && (got.Ratio == nil || *got.Ratio == *tt.want.Ratio)
		if !same {
			t.Errorf("%s: got held %v whole %v ratio %v, want %v %v %v", tt.name,
				got.Held, got.Whole, deref(got.Ratio), tt.want.Held, tt.want.Whole, deref(tt.want.Ratio))
		}
	}
}

func deref(r *float64) any {
	if r == nil {
		return nil
	}
	return *r
}

// TestPasskeyLayout places the key block, the filler and the six
// spellings of the key in a plain prompt tokenised by the fixture's BPE.
func TestPasskeyLayout(t *testing.T) {
	tok, err := tokenizer.Load(filepath.Join("../runtime/model/testdata/llama", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	const key = "40517"
	filler := strings.Fields("apple river stone cloud garden yellow window market silver candle")
	for _, at := range []int{0, 4, len(filler)} {
		text, err := passkey.Prompt(passkey.Parts{Key: key, Filler: filler, At: at})
		if err != nil {
			t.Fatal(err)
		}
		ids := tok.Encode(text, true)
		lay, err := passkeyLayout(tok, ids, key, formatPlain)
		if err != nil {
			t.Fatalf("at %d: %v", at, err)
		}
		block := tok.Decode(ids[lay.Block[0]:lay.Block[1]], false)
		if strings.TrimSpace(block) != passkey.KeyBlock(key) {
			t.Errorf("at %d: block decodes to %q", at, block)
		}
		if lay.Filler[0] > lay.Block[0] || lay.Filler[1] < lay.Block[1] {
			t.Errorf("at %d: filler %v does not contain block %v", at, lay.Filler, lay.Block)
		}
		if got := tok.Decode(ids[lay.Filler[1]:], false); !strings.Contains(got, passkey.Question) {
			t.Errorf("at %d: the tokens after the filler decode to %q, want the question", at, got)
		}
		if len(lay.Spellings) != 2*passkey.KeyRepeats {
			t.Fatalf("at %d: %d spellings, want %d", at, len(lay.Spellings), 2*passkey.KeyRepeats)
		}
		for _, s := range lay.Spellings {
			if got := tok.Decode(ids[s[0]:s[1]], false); !strings.Contains(got, key) {
				t.Errorf("at %d: spelling %v decodes to %q", at, s, got)
			}
		}
	}
}

// TestAttendHead works the question's attention by hand: key block [2, 4)
// inside the filler [1, 6), keys at positions 0 (before the filler), 1, 2,
// 3, 5 and 6 (the question), KV head 1 of two query heads each.
func TestAttendHead(t *testing.T) {
	lay := keyLayout{Block: [2]int{2, 4}, Filler: [2]int{1, 6}}
	pos := []int64{0, 1, 2, 3, 5, 6}
	mass := []float32{
		1, 0, 0, 0, 0, 0, // query heads 0 and 1 belong to KV head 0
		1, 0, 0, 0, 0, 0,
		0.1, 0.1, 0.3, 0.3, 0.1, 0.1, // key 0.6 (0.3 a token), filler 0.1 a token: ratio 3
		0, 0.2, 0.2, 0.2, 0.2, 0.2, // key 0.4 (0.2 a token), filler 0.2 a token: ratio 1
	}
	got := attendHead(lay, pos, mass, 1, 2)
	if math.Abs(got.share-0.5) > 1e-6 || !got.hasRatio || math.Abs(got.ratio-2) > 1e-6 {
		t.Errorf("KV head 1: share %v, ratio %v (%v); want 0.5, 2", got.share, got.ratio, got.hasRatio)
	}
	// KV head 0 puts nothing on the key or the filler: no ratio.
	if got := attendHead(lay, pos, mass, 0, 2); got.share != 0 || got.hasRatio {
		t.Errorf("KV head 0: share %v, ratio %v (%v); want 0 and none", got.share, got.ratio, got.hasRatio)
	}
}
