package runner

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"kvcascade/experiments/sweep"
	"kvcascade/results"
)

// progress reports finished points: a bar with an ETA redrawn in place on a
// terminal, one plain line per point otherwise.
type progress struct {
	mu      sync.Mutex
	w       io.Writer
	tty     bool
	width   int // terminal columns the bar may fill
	total   int
	done    int
	failed  int
	start   time.Time
	running map[string]time.Time
}

func newProgress(w io.Writer, tty bool, width, total int, start time.Time) *progress {
	if w == nil {
		w = io.Discard
	}
	if width <= 0 {
		width = 80
	}
	p := &progress{w: w, tty: tty, width: width, total: total, start: start, running: map[string]time.Time{}}
	if total == 0 {
		fmt.Fprintln(w, "nothing to run: every point of the sweep is already done (use --force to run them again)")
	}
	return p
}

func describe(pt sweep.Point) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", pt.Experiment, pt.Label)
	for _, k := range []string{"length", "depth_bin", "tokens"} {
		if v, ok := pt.ExperimentParams[k]; ok {
			fmt.Fprintf(&b, " %s=%v", k, v)
		}
	}
	return b.String()
}

func (p *progress) begin(pt sweep.Point) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running[pt.Hash] = time.Now()
	if p.tty {
		p.bar(describe(pt))
	}
}

func (p *progress) end(pt sweep.Point, o results.Outcome) {
	p.mu.Lock()
	defer p.mu.Unlock()
	took := time.Since(p.running[pt.Hash])
	delete(p.running, pt.Hash)
	p.done++
	status := "done"
	if len(o.Metrics) > 0 {
		// An experiment's first metric is its main one (accuracy,
		// perplexity, seconds, …).
		m := o.Metrics[0]
		status = fmt.Sprintf("%s %.4g", m.Name, m.Value)
		if m.Unit != "" {
			status += " " + m.Unit
		}
	}
	if o.Err != nil {
		p.failed++
		status = "FAILED: " + firstLine(o.Err.Error())
	}
	line := fmt.Sprintf("[%d/%d] %s (%s) %s", p.done, p.total, describe(pt), took.Round(10*time.Millisecond), status)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s\n", line)
		p.bar("")
		return
	}
	fmt.Fprintln(p.w, line)
}

// bar redraws the progress bar line, cut to the terminal's width so that
// it never wraps (a wrapped line is not redrawn in place).
func (p *progress) bar(current string) {
	width := min(30, max(p.width/4, 5))
	frac := 0.0
	if p.total > 0 {
		frac = float64(p.done) / float64(p.total)
	}
	fill := int(frac * float64(width))
	eta := "?"
	if p.done > 0 {
		el := time.Since(p.start)
		eta = (time.Duration(float64(el)/frac) - el).Round(time.Second).String()
	}
	line := fmt.Sprintf("[%s%s] %d/%d  failed %d  ETA %s  %s", strings.Repeat("#", fill), strings.Repeat(".", width-fill), p.done, p.total, p.failed, eta, current)
	fmt.Fprintf(p.w, "\r\033[K%s", fit(line, p.width-1))
}

// fit cuts s to at most n runes, marking a cut with "…".
func fit(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	if n < 1 {
		return ""
	}
	return string(r[:n-1]) + "…"
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.total > 0 {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
