package model

import (
	"math"
	"strings"
	"testing"
)

const llamaJSON = `{
  "model_type": "llama", "vocab_size": 128, "hidden_size": 64, "intermediate_size": 96,
  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
  "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "max_position_embeddings": 4096,
  "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position_embeddings": 32},
  "bos_token_id": 1, "eos_token_id": [2, 3], "tie_word_embeddings": false
}`

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig([]byte(llamaJSON), "config.json")
	if err != nil {
		t.Fatal(err)
	}
	if c.HeadDim != 16 || c.KVHeads != 2 || c.Rope.Type != "llama3" || c.RopeTheta != 500000 {
		t.Errorf("parsed %+v", c)
	}
	if len(c.EOS) != 2 || c.EOS[1] != 3 || len(c.BOS) != 1 {
		t.Errorf("special ids bos %v eos %v", c.BOS, c.EOS)
	}
}

// TestParseConfigRopeParameters reads the rope_parameters block that newer
// transformers versions write.
func TestParseConfigRopeParameters(t *testing.T) {
	js := strings.Replace(llamaJSON, `"rope_scaling"`, `"rope_parameters"`, 1)
	js = strings.Replace(js, `"rope_type": "llama3",`, `"rope_type": "llama3", "rope_theta": 1234.0,`, 1)
	c, err := ParseConfig([]byte(js), "config.json")
	if err != nil {
		t.Fatal(err)
	}
	if c.RopeTheta != 1234 || c.Rope.Type != "llama3" {
		t.Errorf("theta %v type %q", c.RopeTheta, c.Rope.Type)
	}
}

func TestParseConfigErrors(t *testing.T) {
	cases := []struct {
		name, from, to, want string
	}{
		{"syntax", `"vocab_size": 128,`, `"vocab_size": 128,,`, "line 2"},
		{"type", `"vocab_size": 128`, `"vocab_size": "many"`, "line 2"},
		{"missing layers", `"num_hidden_layers": 2,`, ``, "num_hidden_layers missing"},
		{"gqa", `"num_key_value_heads": 2`, `"num_key_value_heads": 3`, "multiple of num_key_value_heads"},
		{"model type", `"llama"`, `"gpt2"`, `model_type "gpt2" not supported`},
		{"negative", `"hidden_size": 64`, `"hidden_size": -64`, "hidden_size must be in [1, 131072], got -64"},
		{"billion layers", `"num_hidden_layers": 2`, `"num_hidden_layers": 1000000000`, "num_hidden_layers must be in [1, 4096], got 1000000000"},
		{"huge vocab", `"vocab_size": 128`, `"vocab_size": 9000000000000`, "vocab_size must be in [1, 16777216]"},
		{"huge head_dim", `"num_key_value_heads": 2`, `"num_key_value_heads": 2, "head_dim": 1099511627776`, "head_dim must be even and in [2, 4096]"},
		{"heads times head_dim", `"num_key_value_heads": 2`, `"num_attention_heads": 4096, "num_key_value_heads": 2, "head_dim": 4096`, "num_attention_heads × head_dim"},
		{"more kv heads", `"num_key_value_heads": 2`, `"num_key_value_heads": 8`, "multiple of num_key_value_heads"},
		{"negative positions", `"max_position_embeddings": 4096`, `"max_position_embeddings": -1`, "max_position_embeddings must be in"},
		{"rope type", `"rope_type": "llama3"`, `"rope_type": "yarn"`, `type "yarn" not supported`},
		{"llama3 incomplete", `"low_freq_factor": 1.0,`, ``, "llama3 scaling needs"},
		{"eos range", `"eos_token_id": [2, 3]`, `"eos_token_id": [2, 300]`, "outside vocab_size"},
		{"eos type", `"eos_token_id": [2, 3]`, `"eos_token_id": "x"`, "eos_token_id"},
		{"eps", `"rms_norm_eps": 1e-5`, `"rms_norm_eps": 0`, "rms_norm_eps"},
		{"act", `"bos_token_id": 1,`, `"bos_token_id": 1, "hidden_act": "gelu",`, "hidden_act"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			js := strings.Replace(llamaJSON, c.from, c.to, 1)
			if js == llamaJSON {
				t.Fatalf("case does not change the input")
			}
			_, err := ParseConfig([]byte(js), "dir/config.json")
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "dir/config.json") {
				t.Errorf("error %q, want it to name the file and contain %q", err, c.want)
			}
		})
	}
}

// TestInvFreqLlama3 checks the three bands of llama3 scaling against values
// computed by hand from the formula.
func TestInvFreqLlama3(t *testing.T) {
	c, err := ParseConfig([]byte(llamaJSON), "config.json")
	if err != nil {
		t.Fatal(err)
	}
	inv := c.InvFreq()
	for i, f := range inv {
		base := 1 / math.Pow(500000, float64(2*i)/16)
		wave := 2 * math.Pi / base
		var want float64
		switch {
		case wave < 32.0/4: // high frequency: unchanged
			want = base
		case wave > 32.0/1: // low frequency: divided by the factor
			want = base / 8
		default:
			s := (32/wave - 1) / (4 - 1)
			want = (1-s)*base/8 + s*base
		}
		if math.Abs(float64(f)-want) > 1e-6*want {
			t.Errorf("inv_freq[%d] = %g, want %g", i, f, want)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(llamaJSON))
	f.Add([]byte(`{"model_type":"qwen2"}`))
	f.Add([]byte(`{"model_type":"mistral","rope_scaling":null,"eos_token_id":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data, "config.json")
		if err != nil {
			return
		}
		if c.Heads%c.KVHeads != 0 || c.HeadDim%2 != 0 || c.Layers <= 0 {
			t.Fatalf("accepted inconsistent config %+v", c)
		}
		_ = c.InvFreq()
	})
}
