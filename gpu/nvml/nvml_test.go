package nvml

import (
	"errors"
	"math"
	"os"
	"strings"
	"testing"
)

func TestVisibleIndex(t *testing.T) {
	uuids := []string{"GPU-aaaa-0000", "GPU-bbbb-1111", "GPU-abcd-2222", "GPU-cccc-3333"}
	tests := []struct {
		name    string
		env     string
		set     bool
		ordinal int
		want    int
		wantErr bool
	}{
		{name: "unset", ordinal: 2, want: 2},
		{name: "unset out of range", ordinal: 4, wantErr: true},
		{name: "negative", ordinal: -1, wantErr: true},
		{name: "index", env: "3", set: true, want: 3},
		{name: "second of list", env: "2, 0", set: true, ordinal: 1, want: 0},
		{name: "full uuid", env: "GPU-bbbb-1111", set: true, want: 1},
		{name: "uuid prefix", env: "GPU-c", set: true, want: 3},
		{name: "ambiguous prefix", env: "GPU-a", set: true, wantErr: true},
		{name: "empty hides all", env: "", set: true, wantErr: true},
		{name: "list ends at invalid", env: "1,7,2", set: true, ordinal: 1, wantErr: true},
		{name: "before invalid", env: "1,7,2", set: true, ordinal: 0, want: 1},
		{name: "mig", env: "MIG-1234", set: true, wantErr: true},
		{name: "-1 hides all", env: "-1", set: true, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := visibleIndex(tt.env, tt.set, tt.ordinal, uuids)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("visibleIndex(%q, %d) = %d, want an error", tt.env, tt.ordinal, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("visibleIndex(%q, %d) = %d, %v; want %d", tt.env, tt.ordinal, got, err, tt.want)
			}
		})
	}
}

// TestOpen reads every device where NVML is present. Without a driver it
// checks that Open fails with an error (not a panic) and skips; with
// KVCASCADE_REQUIRE_GPU=1 it fails instead.
func TestOpen(t *testing.T) {
	n, err := Open()
	if err != nil {
		if n != nil {
			t.Errorf("Open returned %v with an error", n)
		}
		if os.Getenv("KVCASCADE_REQUIRE_GPU") == "1" {
			t.Fatalf("KVCASCADE_REQUIRE_GPU=1: %v", err)
		}
		if !errors.Is(err, ErrNoLibrary) && !errors.Is(err, ErrNoDevice) {
			t.Logf("Open failed other than for want of a driver: %v", err)
		}
		t.Skipf("no NVML: %v", err)
	}
	defer func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	}()
	devs := n.Devices()
	if len(devs) == 0 {
		t.Fatal("Open succeeded with no devices")
	}
	visible, err := n.VisibleIndex(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("CUDA_VISIBLE_DEVICES=%q: CUDA device 0 is NVML device %d", os.Getenv("CUDA_VISIBLE_DEVICES"), visible)
	for _, d := range devs {
		s, err := n.Sample(d.Index)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("device %d: %s, %s, driver %s, memory %.0f of %d MiB used, %.1f W, SM %.0f MHz, %.0f %% busy",
			d.Index, d.Name, d.UUID, d.Driver, s.MemoryUsedBytes/(1<<20), d.MemoryTotalBytes>>20, s.PowerW, s.SMClockMHz, s.GPUUtilPct)
		if strings.TrimSpace(d.Name) == "" || d.Driver == "" || !strings.HasPrefix(d.UUID, "GPU-") {
			t.Errorf("device %d: name %q, driver %q, UUID %q", d.Index, d.Name, d.Driver, d.UUID)
		}
		if d.MemoryTotalBytes == 0 {
			t.Errorf("device %d: total memory 0", d.Index)
		}
		if !(s.MemoryUsedBytes >= 0 && s.MemoryUsedBytes <= float64(d.MemoryTotalBytes)) {
			t.Errorf("device %d: %g bytes used of %d", d.Index, s.MemoryUsedBytes, d.MemoryTotalBytes)
		}
		// Unsupported quantities are NaN; the others must be plausible.
		if !math.IsNaN(s.PowerW) && !(s.PowerW > 0 && s.PowerW < 2000) {
			t.Errorf("device %d: power %g W", d.Index, s.PowerW)
		}
		if !math.IsNaN(s.SMClockMHz) && !(s.SMClockMHz > 0 && s.SMClockMHz < 5000) {
			t.Errorf("device %d: SM clock %g MHz", d.Index, s.SMClockMHz)
		}
		if !math.IsNaN(s.GPUUtilPct) && !(s.GPUUtilPct >= 0 && s.GPUUtilPct <= 100) {
			t.Errorf("device %d: utilisation %g %%", d.Index, s.GPUUtilPct)
		}
	}
	if _, err := n.Sample(len(devs)); err == nil {
		t.Errorf("Sample(%d) of %d devices: no error", len(devs), len(devs))
	}
}
