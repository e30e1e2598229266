package policies

import "fmt"

// questSpec is Quest (Tang et al. 2024, query-aware sparsity): every token
// stays in the cache, and each chunk attends only to the pages whose
// per-page key bounds promise the largest q·k, plus sinks and the recent
// (current) page. It is logsearch's machinery with Quest's vocabulary: the
// pages are the blocks of logsearch's blockIndex, whose best-first search
// returns exactly the top-k pages by bound that Quest's flat scan does.
func questSpec() Spec {
	return Spec{
		Name: "quest",
		Doc: "Quest: every token kept; each chunk attends to the top-k pages ranked by the upper bound of q·k from " +
			"per-page key minima and maxima, plus sinks and the current page (memory grows like full's)",
		Params: []Param{
			{Name: "sinks", Kind: "int", Default: 4, Doc: "first tokens always attended (attention sinks)"},
			{Name: "window", Kind: "int", Default: 0, Doc: "recent tokens always attended besides the current page (the current, incomplete page always is)"},
			{Name: "page", Kind: "int", Default: 16, Doc: "tokens per page (Quest's page size)"},
			{Name: "topk", Kind: "int", Default: 63, Doc: "complete pages attended per chunk and KV head, chosen by their bound"},
			{Name: "dense_layers", Kind: "int", Default: 0, Doc: "first layers that attend to every token (Quest's own runs use 2); 0 keeps every layer within the budget"},
			{Name: "positions", Kind: "string", Default: "original", Choices: []string{"original", "cache"},
				Doc: "RoPE positions: original = original token positions, as Quest, whose keys never move; cache = index in the attention order"},
		},
		Bounded:   true,
		SplitKeys: []string{"topk"},
		split:     splitQuest,
		splitDoc:  "keys a chunk sees: sinks and window as set, topk = ⌊(budget − sinks − window)/page⌋ − 1 (the current page takes one page)",
		make: func(v Values) (Factory, error) {
			const name = "quest"
			if err := atLeast(name, v, 0, "sinks", "window", "topk", "dense_layers"); err != nil {
				return nil, err
			}
			if err := atLeast(name, v, 1, "page"); err != nil {
				return nil, err
			}
			if v.Int("sinks")+v.Int("window")+(v.Int("topk")+1)*v.Int("page") > maxSlots {
				return nil, paramError(name, "topk", "sinks + window + (topk+1)·page is more than %d", maxSlots)
			}
			cfg := logsearchConfig{sinks: int64(v.Int("sinks")), window: int64(v.Int("window")),
				block: int64(v.Int("page")), topk: v.Int("topk"), positions: positionsOf(v)}
			dense := v.Int("dense_layers")
			return factoryFunc{name, func(l int, s Shape) (Policy, error) {
				if err := checkShape(s); err != nil {
					return nil, err
				}
				if s.HeadDim <= 0 {
					return nil, fmt.Errorf("bad shape: head dimension %d", s.HeadDim)
				}
				if l < dense {
					return newFull(l, s)
				}
				return newLogsearch(cfg, s), nil
			}}, nil
		},
	}
}

// splitQuest sets topk from the keys a chunk may see, b = sinks + window +
// (topk+1)·page: the current page, which fills up to page−1 tokens before
// it joins the pages that can be ranked, takes one page of the budget, so
// that a view never holds more than b keys.
func splitQuest(b int, set map[string]bool, v Values) error {
	const name = "quest"
	page := v.Int("page")
	if page < 1 {
		return paramError(name, "page", "must be at least 1, got %d", page)
	}
	k := (b-v.Int("sinks")-v.Int("window"))/page - 1
	if set["topk"] && v.Int("topk") != k {
		return paramError(name, budgetKey, "%d keys give topk = %d, not %d: give budget or topk, not both", b, k, v.Int("topk"))
	}
	if k < 0 {
		return paramError(name, budgetKey, "%d keys cannot hold sinks = %d, window = %d and the current page of %d",
			b, v.Int("sinks"), v.Int("window"), page)
	}
	v["topk"] = k
	return nil
}
