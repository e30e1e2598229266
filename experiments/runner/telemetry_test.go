package runner

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"kvcascade/gpu/nvml"
	"kvcascade/results"
)

// fakeMonitor is a GPUMonitor whose nth sample uses n MiB and 100+n W; every
// failEvery-th sample (if > 0) fails.
type fakeMonitor struct {
	mu        sync.Mutex
	n         int
	failEvery int
}

func (f *fakeMonitor) Device() (string, string) { return "Fake GPU 80GB", "999.1" }

func (f *fakeMonitor) Sample() (nvml.Sample, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if f.failEvery > 0 && f.n%f.failEvery == 0 {
		return nvml.Sample{}, errors.New("fake failure")
	}
	return nvml.Sample{MemoryUsedBytes: float64(f.n << 20), PowerW: 100 + float64(f.n), SMClockMHz: 1980, GPUUtilPct: 50}, nil
}

func TestGPUTelemetry(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name        string
		readings    []gpuReading
		wantRows    int
		wantMetrics []results.Metric
	}{
		{name: "none"},
		{
			name: "two",
			readings: []gpuReading{
				{0, nvml.Sample{MemoryUsedBytes: 3e9, PowerW: 100, SMClockMHz: 1500, GPUUtilPct: 0}},
				{0.2, nvml.Sample{MemoryUsedBytes: 2e9, PowerW: 300, SMClockMHz: 1980, GPUUtilPct: 100}},
			},
			wantRows: 8,
			wantMetrics: []results.Metric{
				{Name: "gpu_peak_memory_bytes", Value: 3e9, Unit: "B"},
				{Name: "gpu_mean_power_w", Value: 200, Unit: "W"},
			},
		},
		{
			name: "no power",
			readings: []gpuReading{
				{0, nvml.Sample{MemoryUsedBytes: 1e9, PowerW: nan, SMClockMHz: nan, GPUUtilPct: 7}},
				{0.2, nvml.Sample{MemoryUsedBytes: 4e9, PowerW: nan, SMClockMHz: nan, GPUUtilPct: 9}},
			},
			wantRows:    4,
			wantMetrics: []results.Metric{{Name: "gpu_peak_memory_bytes", Value: 4e9, Unit: "B"}},
		},
		{
			name:     "nothing readable",
			readings: []gpuReading{{0, nvml.Sample{MemoryUsedBytes: nan, PowerW: nan, SMClockMHz: nan, GPUUtilPct: nan}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, metrics := gpuTelemetry(tt.readings)
			if len(rows) != tt.wantRows {
				t.Errorf("%d rows, want %d: %v", len(rows), tt.wantRows, rows)
			}
			for _, r := range rows {
				if math.IsNaN(r.Value) {
					t.Errorf("row %v is NaN", r)
				}
			}
			if !reflect.DeepEqual(metrics, tt.wantMetrics) {
				t.Errorf("metrics %v, want %v", metrics, tt.wantMetrics)
			}
		})
	}
}

func TestGPUSampler(t *testing.T) {
	f := &fakeMonitor{failEvery: 3}
	s := startGPUSampler(f, 5*time.Millisecond)
	time.Sleep(60 * time.Millisecond)
	rs := s.stop()
	f.mu.Lock()
	calls := f.n
	f.mu.Unlock()
	if want := calls - calls/3; len(rs) != want {
		t.Errorf("%d readings of %d samples, every third failing; want %d", len(rs), calls, want)
	}
	if calls < 3 {
		t.Fatalf("%d samples in 60 ms at 5 ms intervals", calls)
	}
	for i, r := range rs {
		if r.timeS < 0 || (i > 0 && r.timeS < rs[i-1].timeS) {
			t.Errorf("reading %d at %g s after %v", i, r.timeS, rs[:i])
		}
	}
	time.Sleep(20 * time.Millisecond)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n != calls {
		t.Errorf("sampled after stop: %d samples, %d at stop", f.n, calls)
	}
}

// cudaSweep writes a sweep of one point on the "cuda" backend into dir.
// Without a GPU the point fails; its telemetry and GPU metrics are stored
// either way.
func cudaSweep(t *testing.T, dir string) string {
	t.Helper()
	return writeSweep(t, dir, fmt.Sprintf(`name = "cuda"
backend = "cuda"
chunk = 8

[[model]]
path = '%s'

[[experiment]]
name = "latency"
params = { length = 16, decode_tokens = 2, warmup = false }

[[policy]]
name = "full"
`, fixtureModel(t)))
}

// telemetryCounts returns how many telemetry rows of each name the
// database at path holds.
func telemetryCounts(t *testing.T, path string) map[string]int {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name, count(*) FROM telemetry GROUP BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	counts := map[string]int{}
	for rows.Next() {
		var name string
		var n int
		if err := rows.Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		counts[name] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return counts
}

// runCUDASweep runs cudaSweep with opt and returns the point, its metrics
// by name and the database's path.
func runCUDASweep(t *testing.T, opt Options) (results.PointRow, map[string]float64, string) {
	t.Helper()
	dir := t.TempDir()
	s := loadSweep(t, cudaSweep(t, dir))
	path := filepath.Join(dir, "results.db")
	db := openDB(t, path)
	sum, err := Run(context.Background(), db, s, opt)
	if err != nil || sum.Ran != 1 {
		t.Fatalf("Run: ran %d, %v", sum.Ran, err)
	}
	pts, err := db.Points(results.Filter{Sweep: s.Name})
	if err != nil || len(pts) != 1 {
		t.Fatalf("points: %v, %v", pts, err)
	}
	ms, err := db.Metrics(results.Filter{Sweep: s.Name})
	if err != nil {
		t.Fatal(err)
	}
	metrics := map[string]float64{}
	for _, m := range ms {
		metrics[m.Name] = m.Value
	}
	return pts[0], metrics, path
}

func TestRunStoresGPUTelemetry(t *testing.T) {
	p, metrics, path := runCUDASweep(t, Options{GPUMonitor: &fakeMonitor{}})
	if p.Provenance.GPU != "Fake GPU 80GB" || p.Provenance.Driver != "999.1" {
		t.Errorf("provenance GPU %q, driver %q; want the monitor's", p.Provenance.GPU, p.Provenance.Driver)
	}
	counts := telemetryCounts(t, path)
	n := counts["memory_used_bytes"]
	if n < 2 { // one sample at the start and one at the end at least
		t.Errorf("%d memory samples, want ≥ 2 (status %s, error %q)", n, p.Status, p.Error)
	}
	for _, name := range []string{"power_w", "sm_clock_mhz", "gpu_util_pct"} {
		if counts[name] != n {
			t.Errorf("%d %s rows, %d memory_used_bytes rows", counts[name], name, n)
		}
	}
	// The fake's nth sample uses n MiB and draws 100+n W.
	if got, want := metrics["gpu_peak_memory_bytes"], float64(n<<20); got != want {
		t.Errorf("gpu_peak_memory_bytes = %g, want %g", got, want)
	}
	if got, want := metrics["gpu_mean_power_w"], 100+float64(n+1)/2; got != want {
		t.Errorf("gpu_mean_power_w = %g, want %g", got, want)
	}
}

// TestRunWithoutNVML checks that where NVML cannot be opened a CUDA point
// records its GPU as unknown, with no telemetry and no GPU metrics.
func TestRunWithoutNVML(t *testing.T) {
	m, closeMonitor, err := openGPUMonitor()
	if err == nil {
		name, _ := m.Device()
		closeMonitor()
		t.Skipf("NVML is present (%s)", name)
	}
	if m != nil || closeMonitor != nil {
		t.Errorf("openGPUMonitor returned a monitor with error %v", err)
	}
	p, metrics, path := runCUDASweep(t, Options{})
	if p.Provenance.GPU != "unknown" || p.Provenance.Driver != "unknown" {
		t.Errorf("provenance GPU %q, driver %q; want unknown", p.Provenance.GPU, p.Provenance.Driver)
	}
	if counts := telemetryCounts(t, path); len(counts) != 0 {
		t.Errorf("telemetry without NVML: %v", counts)
	}
	for _, name := range []string{"gpu_peak_memory_bytes", "gpu_mean_power_w"} {
		if _, ok := metrics[name]; ok {
			t.Errorf("metric %s without NVML", name)
		}
	}
}

// TestRunWithNVML runs a CUDA point with the runner's own NVML monitor
// where NVML is present: the point names the GPU and has telemetry.
func TestRunWithNVML(t *testing.T) {
	m, closeMonitor, err := openGPUMonitor()
	if err != nil {
		t.Skipf("no NVML: %v", err)
	}
	name, driver := m.Device()
	closeMonitor()
	p, metrics, path := runCUDASweep(t, Options{})
	if p.Provenance.GPU != name || p.Provenance.Driver != driver {
		t.Errorf("provenance GPU %q, driver %q; NVML says %q, %q", p.Provenance.GPU, p.Provenance.Driver, name, driver)
	}
	counts := telemetryCounts(t, path)
	t.Logf("point %s (error %q) on %s, driver %s: telemetry %v, metrics %v", p.Status, p.Error, name, driver, counts, metrics)
	if counts["memory_used_bytes"] < 2 {
		t.Errorf("telemetry %v: want ≥ 2 memory samples", counts)
	}
	if metrics["gpu_peak_memory_bytes"] <= 0 {
		t.Errorf("gpu_peak_memory_bytes = %g", metrics["gpu_peak_memory_bytes"])
	}
}
