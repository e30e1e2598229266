package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
)

// Config is the architecture of a Llama-family model as read from a
// Hugging Face config.json.
type Config struct {
	ModelType     string // "llama", "qwen2" or "mistral"
	Vocab         int
	Hidden        int
	Intermediate  int
	Layers        int
	Heads         int // query heads
	KVHeads       int
	HeadDim       int
	RMSNormEps    float64
	RopeTheta     float64
	Rope          RopeScaling
	MaxPositions  int
	TieEmbeddings bool
	AttentionBias bool // q, k, v projections carry a bias (qwen2)
	SlidingWindow int  // keys a query attends to, itself included (Attention.Window); 0: every key
	BOS           []int32
	EOS           []int32
	TorchDType    string
}

// RopeScaling is the rope_scaling (or rope_parameters) entry.
type RopeScaling struct {
	Type                string // "default", "linear", "llama3"
	Factor              float64
	LowFreqFactor       float64
	HighFreqFactor      float64
	OriginalMaxPosition int
}

// LoadConfig reads and validates path (a config.json).
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read model config: %w", err)
	}
	return ParseConfig(data, path)
}

// rawConfig mirrors the fields of config.json that matter; pointers tell a
// missing field from a zero.
type rawConfig struct {
	ModelType         *string          `json:"model_type"`
	Architectures     []string         `json:"architectures"`
	VocabSize         *int             `json:"vocab_size"`
	HiddenSize        *int             `json:"hidden_size"`
	IntermediateSize  *int             `json:"intermediate_size"`
	NumHiddenLayers   *int             `json:"num_hidden_layers"`
	NumAttentionHeads *int             `json:"num_attention_heads"`
	NumKeyValueHeads  *int             `json:"num_key_value_heads"`
	HeadDim           *int             `json:"head_dim"`
	RMSNormEps        *float64         `json:"rms_norm_eps"`
	RopeTheta         *float64         `json:"rope_theta"`
	RopeScaling       *json.RawMessage `json:"rope_scaling"`
	RopeParameters    *json.RawMessage `json:"rope_parameters"`
	MaxPositions      *int             `json:"max_position_embeddings"`
	TieWordEmbeddings *bool            `json:"tie_word_embeddings"`
	AttentionBias     *bool            `json:"attention_bias"`
	MLPBias           *bool            `json:"mlp_bias"`
	HiddenAct         *string          `json:"hidden_act"`
	SlidingWindow     *int             `json:"sliding_window"`
	UseSlidingWindow  *bool            `json:"use_sliding_window"`
	BOS               json.RawMessage  `json:"bos_token_id"`
	EOS               json.RawMessage  `json:"eos_token_id"`
	TorchDType        *string          `json:"torch_dtype"`
	DType             *string          `json:"dtype"`
}

type rawRope struct {
	Type                *string  `json:"type"`
	RopeType            *string  `json:"rope_type"`
	RopeTheta           *float64 `json:"rope_theta"`
	Factor              *float64 `json:"factor"`
	LowFreqFactor       *float64 `json:"low_freq_factor"`
	HighFreqFactor      *float64 `json:"high_freq_factor"`
	OriginalMaxPosition *int     `json:"original_max_position_embeddings"`
}

// Upper bounds on the dimensions of a config.json, far above any released
// Llama-family model, so that a corrupt or hostile file is refused before
// anything is sized by it (the weight files then bound the rest, see Load).
const (
	maxVocab        = 1 << 24
	maxHidden       = 1 << 17
	maxIntermediate = 1 << 20
	maxLayers       = 1 << 12
	maxHeads        = 1 << 12
	maxHeadDim      = 1 << 12
)

// ParseConfig validates a config.json; source names the file in errors.
func ParseConfig(data []byte, source string) (*Config, error) {
	var r rawConfig
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", source, jsonError(data, err))
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s", source, fmt.Sprintf(format, args...))
	}
	if r.ModelType == nil {
		return nil, fail("model_type missing")
	}
	c := &Config{ModelType: *r.ModelType}
	switch c.ModelType {
	case "llama", "qwen2", "mistral":
	default:
		return nil, fail("model_type %q not supported (llama, qwen2, mistral)", c.ModelType)
	}
	ints := []struct {
		name string
		p    *int
		dst  *int
		max  int
	}{
		{"vocab_size", r.VocabSize, &c.Vocab, maxVocab},
		{"hidden_size", r.HiddenSize, &c.Hidden, maxHidden},
		{"intermediate_size", r.IntermediateSize, &c.Intermediate, maxIntermediate},
		{"num_hidden_layers", r.NumHiddenLayers, &c.Layers, maxLayers},
		{"num_attention_heads", r.NumAttentionHeads, &c.Heads, maxHeads},
	}
	for _, f := range ints {
		if f.p == nil {
			return nil, fail("%s missing", f.name)
		}
		if *f.p <= 0 || *f.p > f.max {
			return nil, fail("%s must be in [1, %d], got %d", f.name, f.max, *f.p)
		}
		*f.dst = *f.p
	}
	c.KVHeads = c.Heads
	if r.NumKeyValueHeads != nil {
		c.KVHeads = *r.NumKeyValueHeads
	}
	if c.KVHeads <= 0 || c.KVHeads > c.Heads || c.Heads%c.KVHeads != 0 {
		return nil, fail("num_attention_heads (%d) must be a positive multiple of num_key_value_heads (%d)", c.Heads, c.KVHeads)
	}
	if r.HeadDim != nil {
		c.HeadDim = *r.HeadDim
	} else {
		if c.Hidden%c.Heads != 0 {
			return nil, fail("hidden_size (%d) not divisible by num_attention_heads (%d) and head_dim not given", c.Hidden, c.Heads)
		}
		c.HeadDim = c.Hidden / c.Heads
	}
	if c.HeadDim <= 0 || c.HeadDim > maxHeadDim || c.HeadDim%2 != 0 {
		return nil, fail("head_dim must be even and in [2, %d] for RoPE, got %d", maxHeadDim, c.HeadDim)
	}
	if c.Heads*c.HeadDim > maxHidden {
		return nil, fail("num_attention_heads × head_dim = %d × %d exceeds %d", c.Heads, c.HeadDim, maxHidden)
	}
	c.RMSNormEps = 1e-6
	if r.RMSNormEps != nil {
		c.RMSNormEps = *r.RMSNormEps
	}
	if !(c.RMSNormEps > 0 && c.RMSNormEps < 1) {
		return nil, fail("rms_norm_eps must be in (0, 1), got %v", c.RMSNormEps)
	}
	if r.HiddenAct != nil && *r.HiddenAct != "silu" {
		return nil, fail("hidden_act %q not supported (silu)", *r.HiddenAct)
	}
	if r.MLPBias != nil && *r.MLPBias {
		return nil, fail("mlp_bias true not supported")
	}
	c.AttentionBias = c.ModelType == "qwen2"
	if r.AttentionBias != nil {
		c.AttentionBias = *r.AttentionBias
	}
	if r.TieWordEmbeddings != nil {
		c.TieEmbeddings = *r.TieWordEmbeddings
	}
	if r.MaxPositions != nil {
		c.MaxPositions = *r.MaxPositions
		if c.MaxPositions < 0 || c.MaxPositions > math.MaxInt32 {
			return nil, fail("max_position_embeddings must be in [0, %d], got %d", math.MaxInt32, c.MaxPositions)
		}
	}
	if r.SlidingWindow != nil && (r.UseSlidingWindow == nil || *r.UseSlidingWindow) && c.ModelType == "mistral" {
		c.SlidingWindow = *r.SlidingWindow
		if c.SlidingWindow < 0 || c.SlidingWindow > math.MaxInt32 {
			return nil, fail("sliding_window must be in [0, %d], got %d", math.MaxInt32, c.SlidingWindow)
		}
	}
	for _, d := range []*string{r.DType, r.TorchDType} {
		if d != nil {
			c.TorchDType = *d
			break
		}
	}
	var err error
	if c.BOS, err = tokenIDs(r.BOS); err != nil {
		return nil, fail("bos_token_id: %v", err)
	}
	if c.EOS, err = tokenIDs(r.EOS); err != nil {
		return nil, fail("eos_token_id: %v", err)
	}
	for _, id := range append(append([]int32(nil), c.BOS...), c.EOS...) {
		if int(id) >= c.Vocab {
			return nil, fail("special token id %d outside vocab_size %d", id, c.Vocab)
		}
	}
	if err := c.parseRope(r); err != nil {
		return nil, fail("%v", err)
	}
	return c, nil
}

// parseRope reads rope_theta and rope_scaling, or the rope_parameters
// block newer transformers versions write instead.
func (c *Config) parseRope(r rawConfig) error {
	c.RopeTheta = 10000
	if r.RopeTheta != nil {
		c.RopeTheta = *r.RopeTheta
	}
	c.Rope = RopeScaling{Type: "default", Factor: 1}
	field, raw := "rope_scaling", r.RopeScaling
	if r.RopeParameters != nil && string(*r.RopeParameters) != "null" {
		field, raw = "rope_parameters", r.RopeParameters
	}
	if raw != nil && string(*raw) != "null" {
		var rr rawRope
		if err := json.Unmarshal(*raw, &rr); err != nil {
			return fmt.Errorf("%s: %v", field, err)
		}
		if rr.RopeTheta != nil {
			c.RopeTheta = *rr.RopeTheta
		}
		switch {
		case rr.RopeType != nil:
			c.Rope.Type = *rr.RopeType
		case rr.Type != nil:
			c.Rope.Type = *rr.Type
		}
		if rr.Factor != nil {
			c.Rope.Factor = *rr.Factor
		}
		switch c.Rope.Type {
		case "default":
		case "linear":
			if !(c.Rope.Factor > 0) || math.IsInf(c.Rope.Factor, 0) {
				return fmt.Errorf("%s.factor must be positive and finite, got %v", field, c.Rope.Factor)
			}
		case "llama3":
			if rr.Factor == nil || rr.LowFreqFactor == nil || rr.HighFreqFactor == nil || rr.OriginalMaxPosition == nil {
				return fmt.Errorf("%s: llama3 scaling needs factor, low_freq_factor, high_freq_factor and original_max_position_embeddings", field)
			}
			c.Rope.LowFreqFactor, c.Rope.HighFreqFactor = *rr.LowFreqFactor, *rr.HighFreqFactor
			c.Rope.OriginalMaxPosition = *rr.OriginalMaxPosition
			if !(c.Rope.Factor > 0) || !(c.Rope.LowFreqFactor > 0) || c.Rope.HighFreqFactor <= c.Rope.LowFreqFactor || c.Rope.OriginalMaxPosition <= 0 || c.Rope.OriginalMaxPosition > math.MaxInt32 ||
				math.IsInf(c.Rope.Factor, 0) || math.IsInf(c.Rope.HighFreqFactor, 0) {
				return fmt.Errorf("%s: llama3 scaling needs finite factor > 0, 0 < low_freq_factor < high_freq_factor < ∞ and original_max_position_embeddings in [1, %d]", field, math.MaxInt32)
			}
		default:
			return fmt.Errorf("%s: type %q not supported (default, linear, llama3)", field, c.Rope.Type)
		}
	}
	if !(c.RopeTheta > 1) || math.IsInf(c.RopeTheta, 0) {
		return fmt.Errorf("rope_theta must be > 1, got %v", c.RopeTheta)
	}
	return nil
}

// InvFreq returns the RoPE inverse frequencies [HeadDim/2] with the
// configured scaling applied, computed in float32 as the reference does.
func (c *Config) InvFreq() []float32 {
	half := c.HeadDim / 2
	inv := make([]float32, half)
	for i := range inv {
		// base ** (arange(0, dim, 2) / dim), as float32 like the reference.
		exp := float32(2*i) / float32(c.HeadDim)
		inv[i] = float32(1.0 / math.Pow(c.RopeTheta, float64(exp)))
	}
	switch c.Rope.Type {
	case "linear":
		for i := range inv {
			inv[i] = float32(float64(inv[i]) / c.Rope.Factor)
		}
	case "llama3":
		r := c.Rope
		lowWave := float64(r.OriginalMaxPosition) / r.LowFreqFactor
		highWave := float64(r.OriginalMaxPosition) / r.HighFreqFactor
		for i, f := range inv {
			wave := 2 * math.Pi / float64(f)
			switch {
			case wave > lowWave:
				inv[i] = float32(float64(f) / r.Factor)
			case wave >= highWave:
				smooth := (float64(r.OriginalMaxPosition)/wave - r.LowFreqFactor) / (r.HighFreqFactor - r.LowFreqFactor)
				inv[i] = float32((1-smooth)*float64(f)/r.Factor + smooth*float64(f))
			}
		}
	}
	return inv
}

// tokenIDs reads a token id field that may be null, a number or a list.
func tokenIDs(raw json.RawMessage) ([]int32, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one int64
	if err := json.Unmarshal(raw, &one); err == nil {
		if one < 0 || one > math.MaxInt32 {
			return nil, fmt.Errorf("id %d out of range", one)
		}
		return []int32{int32(one)}, nil
	}
	var many []int64
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, errors.New("want an integer or a list of integers")
	}
	ids := make([]int32, len(many))
	for i, v := range many {
		if v < 0 || v > math.MaxInt32 {
			return nil, fmt.Errorf("id %d out of range", v)
		}
		ids[i] = int32(v)
	}
	return ids, nil
}

// jsonError adds line and column to a JSON decoding error.
func jsonError(data []byte, err error) error {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 {
		return err
	}
	line, col := LineCol(data, off)
	return fmt.Errorf("line %d, column %d: %w", line, col, err)
}

// LineCol converts a byte offset into 1-based line and column numbers.
func LineCol(data []byte, off int64) (line, col int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	prefix := data[:off]
	line = bytes.Count(prefix, []byte("\n")) + 1
	col = int(off) - (strings.LastIndexByte(string(prefix), '\n') + 1) + 1
	return line, col
}
