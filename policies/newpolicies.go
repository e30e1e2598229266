package policies

// newSpecs returns the policies added with the budget vocabulary.
func newSpecs() []Spec { return nil }
