package runner

import (
	"math"
	"sync"
	"time"

	"kvcascade/gpu/nvml"
	"kvcascade/results"
)

// sampleEvery is how often the GPU is sampled while a CUDA point runs.
const sampleEvery = 200 * time.Millisecond

// GPUMonitor reads the GPU that the process's CUDA points run on: its name
// and driver for provenance, and its state over time for telemetry. The
// runner opens one over NVML (see openGPUMonitor); tests pass fakes in
// Options.GPUMonitor. Sample is called from one goroutine per running
// point, so it must be safe for concurrent use.
type GPUMonitor interface {
	// Device returns the GPU's name and driver version.
	Device() (name, driver string)
	// Sample reads the GPU's state now; quantities it cannot read are NaN.
	Sample() (nvml.Sample, error)
}

// nvmlMonitor is a GPUMonitor of one NVML device.
type nvmlMonitor struct {
	n   *nvml.NVML
	dev nvml.Device
}

func (m nvmlMonitor) Device() (string, string)     { return m.dev.Name, m.dev.Driver }
func (m nvmlMonitor) Sample() (nvml.Sample, error) { return m.n.Sample(m.dev.Index) }

// openGPUMonitor opens NVML on the device that gpu.New(0) uses (CUDA
// device 0 after CUDA_VISIBLE_DEVICES). close releases it.
func openGPUMonitor() (m GPUMonitor, close func() error, err error) {
	n, err := nvml.Open()
	if err != nil {
		return nil, nil, err
	}
	i, err := n.VisibleIndex(0)
	if err != nil {
		n.Close()
		return nil, nil, err
	}
	return nvmlMonitor{n: n, dev: n.Devices()[i]}, n.Close, nil
}

// gpuReading is one sample and when it was taken, in seconds since the
// point started.
type gpuReading struct {
	timeS float64
	s     nvml.Sample
}

// gpuSampler samples a GPUMonitor in a goroutine from start until stop.
type gpuSampler struct {
	stopc    chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	readings []gpuReading
}

// startGPUSampler samples m at once, then every interval until stop; a
// sample that fails is left out.
func startGPUSampler(m GPUMonitor, interval time.Duration) *gpuSampler {
	s := &gpuSampler{stopc: make(chan struct{}), done: make(chan struct{})}
	start := time.Now()
	read := func() {
		if v, err := m.Sample(); err == nil {
			s.mu.Lock()
			s.readings = append(s.readings, gpuReading{timeS: time.Since(start).Seconds(), s: v})
			s.mu.Unlock()
		}
	}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		read()
		for {
			select {
			case <-s.stopc:
				read() // the state at the end of the point
				return
			case <-t.C:
				read()
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the readings in time order.
func (s *gpuSampler) stop() []gpuReading {
	close(s.stopc)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readings
}

// gpuTelemetry turns readings into telemetry rows (NaN quantities left out)
// and the point's GPU metrics: gpu_peak_memory_bytes, the most memory in
// use on the device at any sample (by every process on it), and
// gpu_mean_power_w, the mean of the power samples. A metric with no valid
// sample is left out.
func gpuTelemetry(rs []gpuReading) ([]results.Telemetry, []results.Metric) {
	var rows []results.Telemetry
	peakMemory, sumPower, nPower := math.NaN(), 0.0, 0
	for _, r := range rs {
		for _, q := range []struct {
			name  string
			value float64
		}{
			{"memory_used_bytes", r.s.MemoryUsedBytes},
			{"power_w", r.s.PowerW},
			{"sm_clock_mhz", r.s.SMClockMHz},
			{"gpu_util_pct", r.s.GPUUtilPct},
		} {
			if !math.IsNaN(q.value) {
				rows = append(rows, results.Telemetry{TimeS: r.timeS, Name: q.name, Value: q.value})
			}
		}
		if m := r.s.MemoryUsedBytes; !math.IsNaN(m) && !(m <= peakMemory) {
			peakMemory = m
		}
		if p := r.s.PowerW; !math.IsNaN(p) {
			sumPower += p
			nPower++
		}
	}
	var metrics []results.Metric
	if !math.IsNaN(peakMemory) {
		metrics = append(metrics, results.Metric{Name: "gpu_peak_memory_bytes", Value: peakMemory, Unit: "B"})
	}
	if nPower > 0 {
		metrics = append(metrics, results.Metric{Name: "gpu_mean_power_w", Value: sumPower / float64(nPower), Unit: "W"})
	}
	return rows, metrics
}

// recordGPU stores a point's readings as its telemetry and adds its GPU
// metrics to out. Telemetry that cannot be stored is dropped rather than
// failing the point: a lost claim or a broken database is reported by the
// Finish that follows.
func recordGPU(db *results.DB, p *results.Point, out *results.Outcome, rs []gpuReading) {
	rows, metrics := gpuTelemetry(rs)
	out.Metrics = append(out.Metrics, metrics...)
	if len(rows) > 0 {
		_ = db.AddTelemetry(p, rows)
	}
}
