package backend

// DeviceView is a view of the cache that was planned on a backend's device
// rather than listed on the host: whatever keeps a cache's bookkeeping on
// the device hands it to Attention in View.Device. The view is
// opaque to everything but the backend that made it, which takes the view's
// slots and positions from it and writes the attention mass into it (when
// the context's QueryWeights ask for a mass).
type DeviceView interface {
	// Len returns the number of cached keys each KV head attends to.
	Len() int
}
