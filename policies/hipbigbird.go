package policies

// hipBigbirdSpec is the "BigBird" baseline of the cascade paper, which is
// HiP attention's BigBird simulation rather than the BigBird of policy
// bigbird: sinks, a sliding window of half the budget and the other half in
// random blocks of two tokens, keys at their original positions
// (LongBench-timber, branch cascade, pred.py:307-315 sets the budget;
// cascading_cache_2 at 4232407, cascade/models/llama/modeling_llama.py:563-564
// gives HiP mask_k = sliding_window_size = budget/2; HiP's random mask,
// hip/models/hip_attention/attention2_draft_prefetch.py:6589-6620 of
// gmlwns2000/hip-ainl, draws per query block of 64). It runs on bigbird's
// machinery: the pattern is drawn per chunk and per KV head, so a chunk of
// 64 plays HiP's query block; HiP draws per query head, with replacement
// (duplicates dropped), and always includes block 0.
func hipBigbirdSpec() Spec {
	return Spec{
		Name: "hip_bigbird",
		Doc: "BigBird as the cascade paper ran it (HiP attention's mask): `sinks` first tokens, the `window`/2 tokens " +
			"before the chunk and `window`/2 more in random blocks of `block` tokens, at original positions; every token " +
			"is kept, so memory grows like full. The pattern is drawn per chunk, so the chunk is HiP's query block",
		Params: []Param{
			{Name: "window", Kind: "int", Default: 2048, Doc: "sparse budget per query: half sliding window, half random blocks (the official _bb_window)"},
			{Name: "sinks", Kind: "int", Default: 16, Doc: "first tokens every chunk attends to"},
			{Name: "block", Kind: "int", Default: 2, Doc: "random block size in tokens"},
			{Name: "seed", Kind: "int", Default: 0, Doc: "seed of the random blocks, mixed with layer, KV head and chunk start"},
		},
		make: func(v Values) (Factory, error) {
			const name = "hip_bigbird"
			if err := atLeast(name, v, 0, "window", "sinks"); err != nil {
				return nil, err
			}
			if err := atLeast(name, v, 1, "block"); err != nil {
				return nil, err
			}
			w, block := v.Int("window"), v.Int("block")
			c := hipBigbirdConfig(w, v.Int("sinks"), block, uint64(v.Int("seed")))
			return bigbirdFactory(name, c), nil
		},
	}
}

// hipBigbirdConfig is the bigbird pattern of HiP's BigBird mask with a
// budget of w tokens: sinks globals, a window of w/2 and (w/2)/block random
// blocks, at original positions.
func hipBigbirdConfig(w, sinks, block int, seed uint64) bigbirdConfig {
	half := w / 2
	return bigbirdConfig{global: int64(sinks), window: int64(half), blocks: half / block, block: int64(block),
		seed: seed, positions: originalPositions}
}
