package model

import "kvcascade/runtime/backend"

// LoadUnfused is Load without fusing each layer's projections: every part
// a tensor of its own, and decoding runs a product for each, as a chunk
// does. It is the reference the fused decoding is checked against.
func LoadUnfused(dir string, b backend.Backend) (*Model, error) { return load(dir, b, false) }
