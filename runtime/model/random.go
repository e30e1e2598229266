package model

import (
	"hash/fnv"
	"math"
	"runtime"
	"sync"

	"kvcascade/runtime/backend"
)

// RandomFiller is implemented by backends that draw random tensors in
// their own memory (the CUDA backend), so that a random model of a real
// shape is built without generating and uploading its weights from the
// host. Element i of the result must equal FillNormal's element i for the
// same key, up to the final rounding to float32 and then to the backend's
// DType (what FromFloat32 would store).
type RandomFiller interface {
	// RandomNormal returns a new tensor of shape, of the backend's DType,
	// filled with mean + std·z.
	RandomNormal(key uint64, mean, std float32, shape ...int) backend.Tensor
}

// NewRandom builds a model of the given architecture whose weights are
// drawn from seed by a counter-based generator (see FillNormal), for timing
// real shapes without weight files: linear and embedding weights are normal
// with standard deviation 1/√(fan-in), norm weights are 1. When b implements
// RandomFiller the weights are drawn on the device, otherwise on the host in
// parallel and uploaded; both give the same model.
func NewRandom(cfg *Config, b backend.Backend, seed uint64) (*Model, error) {
	filler, _ := b.(RandomFiller)
	return build(cfg, b, func(name string, shape []int) (backend.Tensor, error) {
		mean, std := float32(0), float32(1/math.Sqrt(float64(shape[len(shape)-1])))
		if len(shape) == 1 {
			mean, std = 1, 0
		}
		key := TensorKey(seed, name)
		if filler != nil {
			return filler.RandomNormal(key, mean, std, shape...), nil
		}
		data := make([]float32, backend.Numel(shape))
		FillNormal(data, key, mean, std)
		return b.FromFloat32(data, shape...), nil
	}, func(string) bool { return !cfg.TieEmbeddings }, true)
}

// TensorKey is the generator key of the tensor called name in a random
// model drawn from seed.
func TensorKey(seed uint64, name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return splitmix64(seed ^ h.Sum64())
}

// FillNormal sets dst[i] = mean + std·z(key, i), z standard normal:
//
//	h  = splitmix64(key + (i+1)·0x9e3779b97f4a7c15)
//	u1 = (h>>32 + 1)·2⁻³², u2 = (h & 0xffffffff)·2⁻³²
//	z  = √(−2 ln u1)·cos(2π u2)
//
// in float64, rounded to float32 once. Every element depends only on key
// and i, so any split of the work (goroutines here, GPU threads in
// gpu/kernels/random.cu) gives the same numbers.
func FillNormal(dst []float32, key uint64, mean, std float32) {
	const block = 1 << 16
	workers := min(runtime.GOMAXPROCS(0), (len(dst)+block-1)/block)
	if workers <= 1 {
		fillNormal(dst, 0, key, mean, std)
		return
	}
	per := (len(dst) + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < len(dst); lo += per {
		hi := min(lo+per, len(dst))
		wg.Add(1)
		go func() {
			defer wg.Done()
			fillNormal(dst[lo:hi], lo, key, mean, std)
		}()
	}
	wg.Wait()
}

// fillNormal fills dst with elements first, first+1, … of the stream.
func fillNormal(dst []float32, first int, key uint64, mean, std float32) {
	const two32 = 1.0 / (1 << 32)
	m, s := float64(mean), float64(std)
	for j := range dst {
		h := splitmix64(key + uint64(first+j+1)*0x9e3779b97f4a7c15)
		u1 := (float64(h>>32) + 1) * two32
		u2 := float64(h&0xffffffff) * two32
		z := math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
		dst[j] = float32(m + s*z)
	}
}

// splitmix64 is the finaliser of the SplitMix64 generator.
func splitmix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}
