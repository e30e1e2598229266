package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Local runs one worker process per GPU of this host. Every worker is the
// same command with CUDA_VISIBLE_DEVICES set to its device, and all of them
// claim points from one results database, so a worker that dies loses only
// the point it was running, which goes back to pending once its heartbeat is
// stale.
type Local struct {
	// Executable and Args are the command of every worker (Args without
	// the program name).
	Executable string
	Args       []string
	// Devices holds one CUDA_VISIBLE_DEVICES value per worker.
	Devices []string
	// Stdout and Stderr receive the workers' output line by line, each
	// line prefixed "[gpu DEVICE] "; nil discards it.
	Stdout, Stderr io.Writer
	// Grace is how long a worker has to stop after ctx is done, between
	// SIGTERM and SIGKILL (default 30 s).
	Grace time.Duration
}

// WorkerError is the failure of one worker process.
type WorkerError struct {
	Device string
	Err    error // from exec.Cmd.Wait: an *exec.ExitError when it ran
}

// Error names the worker's GPU and what went wrong.
func (e *WorkerError) Error() string { return fmt.Sprintf("worker on gpu %s: %v", e.Device, e.Err) }

// Unwrap returns the error of exec.Cmd.
func (e *WorkerError) Unwrap() error { return e.Err }

// Run starts every worker, relays its output and waits for all of them. It
// returns the failures of the workers that did not exit with status 0, each
// a *WorkerError, joined.
func (l Local) Run(ctx context.Context) error {
	if len(l.Devices) == 0 {
		return errors.New("cluster: no devices")
	}
	grace := l.Grace
	if grace <= 0 {
		grace = 30 * time.Second
	}
	var mu sync.Mutex // one line at a time, whichever worker wrote it
	errs := make([]error, len(l.Devices))
	var wg sync.WaitGroup
	for i, dev := range l.Devices {
		prefix := "[gpu " + dev + "] "
		stdout := &lineWriter{mu: &mu, w: l.Stdout, prefix: prefix}
		stderr := &lineWriter{mu: &mu, w: l.Stderr, prefix: prefix}
		cmd := exec.CommandContext(ctx, l.Executable, l.Args...)
		cmd.Env = append(os.Environ(), "CUDA_VISIBLE_DEVICES="+dev)
		cmd.Stdout, cmd.Stderr = stdout, stderr
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = grace
		if err := cmd.Start(); err != nil {
			errs[i] = &WorkerError{Device: dev, Err: err}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := cmd.Wait()
			stdout.Flush()
			stderr.Flush()
			if err != nil {
				errs[i] = &WorkerError{Device: dev, Err: err}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// lineWriter writes whole lines to w, each with a prefix, holding mu for
// each line; a trailing partial line waits for its end or for Flush.
type lineWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (lw *lineWriter) Write(p []byte) (int, error) {
	lw.buf = append(lw.buf, p...)
	for {
		i := bytes.IndexByte(lw.buf, '\n')
		if i < 0 {
			break
		}
		lw.emit(lw.buf[:i+1])
		lw.buf = lw.buf[i+1:]
	}
	return len(p), nil
}

// Flush writes a trailing partial line, ending it.
func (lw *lineWriter) Flush() {
	if len(lw.buf) > 0 {
		lw.emit(append(lw.buf, '\n'))
		lw.buf = nil
	}
}

func (lw *lineWriter) emit(line []byte) {
	if lw.w == nil {
		return
	}
	lw.mu.Lock()
	defer lw.mu.Unlock()
	// A write error of the relay must not stop the worker: its results
	// go to the database, not to this output.
	io.WriteString(lw.w, lw.prefix)
	lw.w.Write(line)
}

// ParseDevices reads a list of GPUs, "0,1,2,3", as CUDA_VISIBLE_DEVICES
// values, one per worker: device indices, or UUIDs such as "GPU-…" or
// "MIG-…". Empty items, spaces and repeats are errors.
func ParseDevices(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("no GPUs given; want a list such as 0,1,2,3")
	}
	devs := strings.Split(s, ",")
	seen := make(map[string]bool, len(devs))
	for i, d := range devs {
		switch {
		case d == "":
			return nil, fmt.Errorf("%q: item %d is empty", s, i+1)
		case strings.ContainsFunc(d, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '[' || r == ']' }):
			return nil, fmt.Errorf("%q: item %q has a space, control character or bracket", s, d)
		case seen[d]:
			return nil, fmt.Errorf("%q: GPU %s is named twice (several points at once on one GPU: --workers)", s, d)
		}
		seen[d] = true
	}
	return devs, nil
}
