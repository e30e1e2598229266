package policies

// pyramidkvSpec is PyramidKV (Cai et al. 2024): SnapKV whose prompt budget
// decreases linearly from the first layer to the last, with the same mean.
func pyramidkvSpec() Spec {
	s := snapkvSpec()
	ps := append([]Param(nil), s.Params...)
	ps = append(ps, Param{Name: "beta", Kind: "int", Default: 20,
		Doc: "the last layer keeps (budget − window)/beta scored tokens, the first 2(budget − window) minus that"})
	return Spec{
		Name: "pyramidkv",
		Doc: "PyramidKV: SnapKV whose prompt budget falls linearly across layers, from 2(budget − window) − m scored " +
			"tokens in the first to m = (budget − window)/beta in the last, window kept in each; mean budget as snapkv's",
		Params:  ps,
		Aliases: []string{"pyramid_kv", "pyramid"},
		Bounded: true,
		make: func(v Values) (Factory, error) {
			const name = "pyramidkv"
			if err := atLeast(name, v, 1, "window", "kernel", "budget", "beta"); err != nil {
				return nil, err
			}
			c, err := newSnapkvConfig(name, v)
			if err != nil {
				return nil, err
			}
			beta := v.Int("beta")
			if c.perQuery {
				return snapkvQueryFactory(name, c, func(layer int, s Shape, T int) int {
					return pyramidBudget(layer, s.Layers, c.budget, c.window, beta, T)
				}), nil
			}
			return factoryFunc{name, func(layer int, s Shape) (Policy, error) {
				if err := checkShape(s); err != nil {
					return nil, err
				}
				p := &snapkv{c: c, tokenLists: newTokenLists(s, c.positions)}
				p.budgetOf = func(T int) int { return pyramidBudget(layer, s.Layers, c.budget, c.window, beta, T) }
				return p, nil
			}}, nil
		},
	}
}

// pyramidBudget is the prompt tokens layer keeps of T, window included,
// as the PyramidKV reference computes them: with b = budget − window,
// m = ⌊b/beta⌋ and M = 2b − m scored tokens in the last and first layers,
// M capped at T − window (m then taking up the difference), and a
// step of ⌊(M − m)/(layers − 1)⌋ tokens per layer, at least 1 kept. A
// model of one layer keeps budget.
func pyramidBudget(layer, layers, budget, window, beta, T int) int {
	if T <= budget {
		return T
	}
	if layers <= 1 {
		return budget
	}
	b := budget - window
	lo := b / beta
	hi := 2*b - lo
	if hi >= T-window {
		hi = T - window
		lo = 2*b - hi
	}
	step := (hi - lo) / (layers - 1)
	return max(hi-layer*step, 1) + window
}
