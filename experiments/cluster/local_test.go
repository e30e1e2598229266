package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// envHelper makes the test binary, run again, act as a worker (see
// TestHelperWorker) instead of running tests.
const envHelper = "KVCASCADE_CLUSTER_HELPER"

// TestHelperWorker is not a test: it is the worker process of the tests of
// Local. It writes two lines to stdout, one of them in pieces, a line and an
// unterminated one to stderr, then, by its device: "fail" exits with status
// 3, "wait" waits for SIGTERM and exits with status 4, others exit 0.
func TestHelperWorker(t *testing.T) {
	if os.Getenv(envHelper) != "1" {
		t.Skip("helper process, run by the tests of Local")
	}
	dev := os.Getenv("CUDA_VISIBLE_DEVICES")
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	fmt.Printf("hello from %s\n", dev)
	os.Stdout.WriteString("in ")
	os.Stdout.Sync()
	time.Sleep(5 * time.Millisecond)
	os.Stdout.WriteString("pieces\n")
	fmt.Fprintf(os.Stderr, "warning on %s\nno newline", dev)
	switch dev {
	case "fail":
		os.Exit(3)
	case "wait":
		<-term
		os.Exit(4)
	}
	os.Exit(0)
}

// lockedBuffer is a buffer that a test may read while Local writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func helperLocal(devs ...string) (Local, *lockedBuffer, *lockedBuffer) {
	var stdout, stderr lockedBuffer
	return Local{
		Executable: os.Args[0], Args: []string{"-test.run=^TestHelperWorker$"},
		Devices: devs, Stdout: &stdout, Stderr: &stderr,
	}, &stdout, &stderr
}

func TestLocalRelaysAndReports(t *testing.T) {
	t.Setenv(envHelper, "1")
	l, stdout, stderr := helperLocal("0", "GPU-7f3a", "fail")
	err := l.Run(context.Background())

	var we *WorkerError
	var exit *exec.ExitError
	if !errors.As(err, &we) || we.Device != "fail" || !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("Run = %v; want the worker on gpu fail exiting with status 3", err)
	}
	if n := len(strings.Split(err.Error(), "\n")); n != 1 {
		t.Errorf("error names %d workers, want 1: %v", n, err)
	}
	out := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	slices.Sort(out)
	want := []string{
		"[gpu 0] hello from 0", "[gpu 0] in pieces",
		"[gpu GPU-7f3a] hello from GPU-7f3a", "[gpu GPU-7f3a] in pieces",
		"[gpu fail] hello from fail", "[gpu fail] in pieces",
	}
	if !slices.Equal(out, want) {
		t.Errorf("stdout lines\n%q\nwant\n%q", out, want)
	}
	for _, dev := range []string{"0", "GPU-7f3a", "fail"} {
		for _, line := range []string{"[gpu " + dev + "] warning on " + dev + "\n", "[gpu " + dev + "] no newline\n"} {
			if !strings.Contains(stderr.String(), line) {
				t.Errorf("stderr lacks %q:\n%s", line, stderr)
			}
		}
	}
}

func TestLocalCancel(t *testing.T) {
	t.Setenv(envHelper, "1")
	l, stdout, _ := helperLocal("wait", "0")
	l.Grace = 10 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Run(ctx) }()
	// Cancel once the waiting worker has started.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stdout.String(), "[gpu wait] in pieces"); {
		if time.Now().After(deadline) {
			t.Fatal("the worker did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	cancel()
	err := <-done
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 4 {
		t.Errorf("Run = %v; want the waiting worker to exit with 4 on SIGTERM", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %s after the cancel; SIGTERM should stop the worker at once", d)
	}
}

func TestLocalMissingExecutable(t *testing.T) {
	l := Local{Executable: "/nonexistent/kvcascade", Devices: []string{"0", "1"}}
	err := l.Run(context.Background())
	var we *WorkerError
	if !errors.As(err, &we) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Run = %v; want WorkerErrors wrapping ErrNotExist", err)
	}
	if err := (Local{Executable: os.Args[0]}).Run(context.Background()); err == nil {
		t.Error("Run with no devices succeeded")
	}
}

func TestLineWriter(t *testing.T) {
	for _, tt := range []struct {
		name   string
		writes []string
		want   string
	}{
		{"whole lines", []string{"a\nb\n"}, "> a\n> b\n"},
		{"split", []string{"a", "b\nc", "\n"}, "> ab\n> c\n"},
		{"partial at the end", []string{"a\nb"}, "> a\n> b\n"},
		{"empty lines", []string{"\n\n"}, "> \n> \n"},
		{"nothing", nil, ""},
		{"carriage return kept", []string{"a\rb\n"}, "> a\rb\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			lw := &lineWriter{mu: new(sync.Mutex), w: &b, prefix: "> "}
			for _, w := range tt.writes {
				if n, err := lw.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			lw.Flush()
			if b.String() != tt.want {
				t.Errorf("got %q, want %q", b.String(), tt.want)
			}
		})
	}
}

func TestParseDevices(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
		err  string
	}{
		{"0", []string{"0"}, ""},
		{"0,1,2,3", []string{"0", "1", "2", "3"}, ""},
		{"GPU-5a1c,MIG-2f", []string{"GPU-5a1c", "MIG-2f"}, ""},
		{"", nil, "no GPUs"},
		{" ", nil, "no GPUs"},
		{"0,,1", nil, "item 2 is empty"},
		{"0,", nil, "item 2 is empty"},
		{"0, 1", nil, "space"},
		{"0,1,0", nil, "named twice"},
		{"[0]", nil, "bracket"},
	} {
		got, err := ParseDevices(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseDevices(%q) = %q, %v; want an error containing %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseDevices(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// FuzzParseDevices checks that no input makes ParseDevices panic and that
// what it accepts joins back into the input, with distinct, clean items.
func FuzzParseDevices(f *testing.F) {
	for _, s := range []string{"0,1", "GPU-1", "0,,1", "0,0", " "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		devs, err := ParseDevices(s)
		if err != nil {
			return
		}
		if strings.Join(devs, ",") != s {
			t.Errorf("ParseDevices(%q) = %q", s, devs)
		}
		seen := map[string]bool{}
		for _, d := range devs {
			if d == "" || seen[d] || strings.ContainsAny(d, " \t\n[]") {
				t.Errorf("ParseDevices(%q) accepted item %q", s, d)
			}
			seen[d] = true
		}
	})
}
