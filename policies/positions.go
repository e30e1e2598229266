package policies

// positions tells how a policy sets the RoPE positions of its view.
type positions bool

const (
	// cachePositions numbers the keys by their index in the attention order
	// and puts the chunk right after them: the paper's default.
	cachePositions positions = false
	// originalPositions gives every key its original position and the chunk
	// its own, Step.Start onwards.
	originalPositions positions = true
)

// positionsParam is the parameter every policy with eviction takes.
func positionsParam() Param {
	return Param{Name: "positions", Kind: "string", Default: "cache", Choices: []string{"cache", "original"},
		Doc: "RoPE positions: cache = index in the attention order (sinks first, chunk right after the view); original = original token positions"}
}

func positionsOf(v Values) positions {
	if v.String("positions") == "original" {
		return originalPositions
	}
	return cachePositions
}

// positioned is implemented by policies that can say whether their views
// give keys and queries their original positions, which a model with a
// sliding window needs (Cache.OriginalPositions).
type positioned interface {
	originalPositions() bool
}

// The policies and their positions: full keeps slot i at position i.
func (f *full) originalPositions() bool          { return true }
func (p *cascade) originalPositions() bool       { return p.c.positions == originalPositions }
func (p *cascadeDevice) originalPositions() bool { return p.c.positions == originalPositions }
func (p *sink) originalPositions() bool          { return p.positions == originalPositions }
func (t *tokenLists) originalPositions() bool    { return t.positions == originalPositions }
func (t *deviceLists) originalPositions() bool   { return t.positions == originalPositions }
func (p *bigbird) originalPositions() bool       { return p.c.positions == originalPositions }
