package model

import (
	"fmt"

	"kvcascade/runtime/backend"
)

// NonFiniteError reports a NaN or ±Inf among the logits of a forward pass:
// a score computed from them would be meaningless (argmax over NaN picks
// token 0), so the pass fails instead.
type NonFiniteError struct {
	// Pos is the sequence position of the token whose logits hold the
	// value (0 is the first token of the session).
	Pos int64
	// Logit is the vocabulary index of the first non-finite logit, and
	// Value its value.
	Logit int
	Value float32
	// Where names the tensor in which a non-finite value first appeared
	// when the chunk was run again layer by layer without its cache
	// ("layer 2 mlp.down_proj output", "model.norm output"); empty when the
	// re-run found every activation finite (the value then came in through
	// the cache, from an earlier chunk).
	Where string
	// Layer is the layer of Where, or -1 when Where is not inside a layer
	// or is empty.
	Layer int
}

func (e *NonFiniteError) Error() string {
	msg := fmt.Sprintf("non-finite logits for the token at position %d: logit %d is %v", e.Pos, e.Logit, e.Value)
	if e.Where == "" {
		return msg + "; re-running the chunk without its cache kept every activation finite, so the value came from the cache (an earlier chunk)"
	}
	return msg + "; first non-finite activation: " + e.Where
}

// firstNonFinite returns the index of the first NaN or ±Inf in x, or -1.
func firstNonFinite(x []float32) int {
	for i, v := range x {
		// v-v is 0 for finite v and NaN for NaN and ±Inf; the test is one
		// subtraction and one compare per element.
		if v-v != 0 {
			return i
		}
	}
	return -1
}

// diagnose runs the chunk ids again, layer by layer, with attention over
// the chunk alone (the cache is neither read nor updated), and names the
// first tensor holding a non-finite value. It is called only once a forward
// pass has produced non-finite logits, so it may be slow: every
// intermediate tensor is read back to the host. It overwrites the
// session's activations.
func (s *Session) diagnose(ids []int32, start int64) (where string, layer int) {
	m, b, c := s.m, s.m.b, s.m.Config
	n := len(ids)
	vw := s.viewsFor(n)
	x, h, q, att, k, v, gate, up := vw.x, vw.h, vw.q, vw.att, vw.k, vw.v, vw.gate, vw.up
	eps := float32(c.RMSNormEps)
	var host []float32
	bad := func(t backend.Tensor) bool {
		need := backend.Numel(t.Shape())
		if cap(host) < need {
			host = make([]float32, need)
		}
		host = host[:need]
		b.Read(t, host)
		return firstNonFinite(host) >= 0
	}
	b.Embed(x, m.embed, ids)
	if bad(x) {
		return "model.embed_tokens output", -1
	}
	qpos := make([]int32, c.KVHeads)
	for i := range qpos {
		qpos[i] = int32(start)
	}
	for li := range m.layers {
		l := &m.layers[li]
		steps := []struct {
			name string
			run  func()
			out  backend.Tensor
		}{
			{"input_layernorm", func() { b.RMSNorm(h, x, l.attnNorm, eps) }, h},
			{"self_attn.q_proj", func() { b.MatMul(q, h, l.wq, l.bq) }, q},
			{"self_attn.k_proj", func() { b.MatMul(k, h, l.wk, l.bk) }, k},
			{"self_attn.v_proj", func() { b.MatMul(v, h, l.wv, l.bv) }, v},
			{"self_attn (attention over the chunk)", func() {
				a := s.attn
				a.Out, a.Q, a.K, a.V, a.Mass = att, q, k, v, nil
				a.View = backend.View{QueryPos: qpos}
				b.Attention(&a)
			}, att},
			{"self_attn.o_proj", func() { b.MatMul(h, att, l.wo, nil) }, h},
			{"residual after attention", func() { b.Add(x, h) }, x},
			{"post_attention_layernorm", func() { b.RMSNorm(h, x, l.mlpNorm, eps) }, h},
			{"mlp.gate_proj", func() { b.MatMul(gate, h, l.gate, nil) }, gate},
			{"mlp.up_proj", func() { b.MatMul(up, h, l.up, nil) }, up},
			{"mlp SwiGLU", func() { b.SwiGLU(gate, gate, up) }, gate},
			{"mlp.down_proj", func() { b.MatMul(h, gate, l.down, nil) }, h},
			{"residual after mlp", func() { b.Add(x, h) }, x},
		}
		for _, st := range steps {
			st.run()
			if bad(st.out) {
				return fmt.Sprintf("layer %d %s output", li, st.name), li
			}
		}
	}
	b.RMSNorm(h, x, m.norm, eps)
	if bad(h) {
		return "model.norm output (after the last layer)", -1
	}
	if s.logits != nil {
		out := b.Slice(s.logits, 0, n)
		b.MatMul(out, h, m.lmHead, nil)
		if bad(out) {
			return "lm_head output", -1
		}
	}
	return "", -1
}

// checkLogits fails a forward pass whose logits [rows, V] hold a NaN or
// ±Inf, naming the first tensor where one appeared. firstPos is the
// position of the first row.
func (s *Session) checkLogits(logits []float32, ids []int32, firstPos int64) error {
	i := firstNonFinite(logits)
	if i < 0 {
		return nil
	}
	v := s.m.Vocab
	e := &NonFiniteError{Pos: firstPos + int64(i/v), Logit: i % v, Value: logits[i], Layer: -1}
	e.Where, e.Layer = s.diagnose(ids, s.seen-int64(len(ids)))
	return e
}
