package gpu

import (
	"fmt"

	"kvcascade/gpu/cuda"
	"kvcascade/runtime/backend"
)

// RandomNormal returns a new tensor of shape, of the backend's DType,
// filled on the device with mean + std·z, z standard normal drawn from key
// by the counter-based generator of kernels/random.cu (splitmix64 of the
// element index, Box–Muller in double precision), rounded to float32 and
// then to the storage type. It builds random models without a host round
// trip or a float32 copy: the 16 GB of Llama-3.1-8B bf16 weights take well
// under a second. runtime/model computes the same numbers on the host for
// backends without this method.
func (b *Backend) RandomNormal(key uint64, mean, std float32, shape ...int) backend.Tensor {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fillNormal[b.st] == nil {
		f := &b.fillNormal
		must(b.load(randomProgram(), randomKernels[:], []**cuda.Function{&f[stF32], &f[stBF16]}))
	}
	t := b.alloc(b.st, shape)
	n := t.numel()
	if n > 0 {
		launch(b.fillNormal[b.st], b.elementGrid(n), cuda.Dim3{X: elemThreads}, 0,
			cuda.Ptr(t.ptr()), cuda.Int64(int64(n)), cuda.Arg(key), cuda.Float(mean), cuda.Float(std))
	}
	return t
}

// MemInfo returns the free and total device memory in bytes, as the driver
// sees them (other processes' allocations count as used).
func (b *Backend) MemInfo() (free, total int64, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if free, total, err = b.dev.MemInfo(); err != nil {
		return 0, 0, fmt.Errorf("gpu: %w", err)
	}
	return free, total, nil
}
