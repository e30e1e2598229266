// Package figure names the kinds of figure the report draws. An experiment
// declares the kinds it draws (experiments.Experiment.Figures); the runner
// stores them with each point, and package plots/report draws a kind from
// the points that declare it, so that nothing downstream guesses from an
// experiment's name.
//
// The package imports nothing, so that experiments may declare figures
// without depending on how they are drawn.
//
// Adding a kind: one constant here, the kind in the Figures of the
// experiments whose points it draws, and its drawing in plots/report
// (render), which selects the points with point.draws(kind); a kind that
// sums a sweep up in the summary table adds its metric to mainMetrics there.
package figure

// Kind names a kind of figure.
type Kind string

// The kinds of figure.
const (
	// PasskeyGrid is the passkey accuracy grid (length × depth bin, one
	// panel per policy) and its tables; points have length, depth_bin and
	// the metrics accuracy and samples.
	PasskeyGrid Kind = "passkey_grid"
	// RulerScores is the RULER score per task and length, and its tables.
	RulerScores Kind = "ruler_scores"
	// Perplexity is the streaming perplexity curve, from samples with
	// tokens, window_ppl and window.
	Perplexity Kind = "perplexity"
	// Retention is the map of the positions each policy holds, from
	// samples with held and tokens.
	Retention Kind = "retention"
	// PrefillTime and DecodeTime are the latency against context length
	// (the length parameter; metrics prefill_s, decode_ms_per_token).
	PrefillTime Kind = "prefill_time"
	DecodeTime  Kind = "decode_time"
	// CacheMemory is the memory a cache holds against the tokens of one
	// prompt, from samples with tokens and cache_bytes (the longest prompt
	// per series).
	CacheMemory Kind = "cache_memory"
	// StreamMemory is CacheMemory drawn from a streamed text's checkpoints:
	// drawn only when no point of the sweep declares CacheMemory.
	StreamMemory Kind = "stream_memory"
	// LongBenchScores is the score per LongBench subset.
	LongBenchScores Kind = "longbench_scores"
	// KeyMaps are the passkey diagnostics (the key block held per layer
	// and KV head, and retention maps with the key marked), drawn from the
	// points run with diagnostics = true.
	KeyMaps Kind = "key_maps"
)

// Strings returns kinds as strings, for storage.
func Strings(kinds []Kind) []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = string(k)
	}
	return out
}
