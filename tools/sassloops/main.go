// Command sassloops summarises the loops of CUDA kernels from their SASS:
// for each function in the output of `cuobjdump -sass` (a file named on the
// command line, or standard input), every backward branch marks a loop,
// printed with its address range, its static instruction count and its
// most frequent opcodes. A static count weighs a loop's body once, so
// nested loops are listed each on its own line.
//
// It is for reading kernels without a GPU: compile them with NVRTC
// (gpu's TestKernelsCompile writes the images where
// $KVCASCADE_KERNEL_DUMP names a folder), disassemble them with cuobjdump
// from a CUDA toolkit of the same major release, and compare the loops of
// two versions:
//
//	cuobjdump -sass -fun decode_attention decode.cubin | go run ./tools/sassloops
//	go run ./tools/sassloops -full -top 40 flash.sass
//
// Usage:
//
//	sassloops [-top N] [-full] [-min N] [file.sass]
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

func main() {
	top := flag.Int("top", 12, "opcodes listed per loop")
	full := flag.Bool("full", false, "count opcodes with their modifiers (IMAD.WIDE), not by base (IMAD)")
	minLen := flag.Int("min", 4, "skip loops of fewer instructions")
	flag.Parse()
	in := io.Reader(os.Stdin)
	name := "standard input"
	if flag.NArg() > 1 {
		fmt.Fprintln(os.Stderr, "usage: sassloops [-top N] [-full] [-min N] [file.sass]")
		os.Exit(2)
	}
	if flag.NArg() == 1 {
		name = flag.Arg(0)
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, "sassloops:", err)
			os.Exit(1)
		}
		defer f.Close()
		in = f
	}
	funcs, err := parse(in)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sassloops: %s: %v\n", name, err)
		os.Exit(1)
	}
	if len(funcs) == 0 {
		fmt.Fprintf(os.Stderr, "sassloops: %s: no SASS instructions (is it cuobjdump -sass output?)\n", name)
		os.Exit(1)
	}
	report(os.Stdout, funcs, *top, *full, *minLen)
}

// instr is one SASS instruction: its address and its text without the
// predicate.
type instr struct {
	addr int
	op   string // the opcode with its modifiers, e.g. IMAD.WIDE.U32
	text string
}

// function is a kernel's (or device function's) instructions in order.
type function struct {
	name   string
	instrs []instr
}

var (
	funcLine  = regexp.MustCompile(`^\s*Function\s*:\s*(\S+)`)
	instrLine = regexp.MustCompile(`^\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;`)
	branch    = regexp.MustCompile(`\bBRA(?:\.\S+)?\s+(?:` + "`" + `\(\S+\)\s*)?0x([0-9a-f]+)`)
)

// parse reads cuobjdump -sass output. Instructions before any Function
// line go to a function named "?".
func parse(r io.Reader) ([]*function, error) {
	var funcs []*function
	var cur *function
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		t := sc.Text()
		if m := funcLine.FindStringSubmatch(t); m != nil {
			cur = &function{name: m[1]}
			funcs = append(funcs, cur)
			continue
		}
		m := instrLine.FindStringSubmatch(t)
		if m == nil {
			continue
		}
		addr, err := strconv.ParseInt(m[1], 16, 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: address %q: %v", line, m[1], err)
		}
		text := m[2]
		fields := strings.Fields(text)
		if len(fields) > 0 && strings.HasPrefix(fields[0], "@") {
			fields = fields[1:]
		}
		if len(fields) == 0 {
			return nil, fmt.Errorf("line %d: no opcode in %q", line, t)
		}
		if cur == nil {
			cur = &function{name: "?"}
			funcs = append(funcs, cur)
		}
		cur.instrs = append(cur.instrs, instr{addr: int(addr), op: fields[0], text: text})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %v", line, err)
	}
	var out []*function
	for _, f := range funcs {
		if len(f.instrs) > 0 {
			out = append(out, f)
		}
	}
	return out, nil
}

// loop is the instructions from a backward branch's target to the branch.
type loop struct{ from, to int } // indices into function.instrs, inclusive

// loops returns f's loops in the order of their branches.
func (f *function) loops() []loop {
	at := make(map[int]int, len(f.instrs))
	for i, in := range f.instrs {
		at[in.addr] = i
	}
	var ls []loop
	for i, in := range f.instrs {
		m := branch.FindStringSubmatch(in.text)
		if m == nil {
			continue
		}
		target, err := strconv.ParseInt(m[1], 16, 64)
		if err != nil || int(target) > in.addr {
			continue
		}
		if j, ok := at[int(target)]; ok {
			ls = append(ls, loop{j, i})
		}
	}
	return ls
}

// report prints each function's instruction count and its loops.
func report(w io.Writer, funcs []*function, top int, full bool, minLen int) {
	for _, f := range funcs {
		fmt.Fprintf(w, "%s: %d instructions\n", f.name, len(f.instrs))
		for _, l := range f.loops() {
			body := f.instrs[l.from : l.to+1]
			if len(body) < minLen {
				continue
			}
			fmt.Fprintf(w, "  loop %#05x-%#05x: %d instructions: %s\n", body[0].addr, body[len(body)-1].addr, len(body), histogram(body, top, full))
		}
	}
}

// histogram lists the top most frequent opcodes of body, most first (ties
// by name), and how many others there are.
func histogram(body []instr, top int, full bool) string {
	n := map[string]int{}
	for _, in := range body {
		op := in.op
		if !full {
			op, _, _ = strings.Cut(op, ".")
		}
		n[op]++
	}
	ops := make([]string, 0, len(n))
	for op := range n {
		ops = append(ops, op)
	}
	sort.Slice(ops, func(i, j int) bool {
		if n[ops[i]] != n[ops[j]] {
			return n[ops[i]] > n[ops[j]]
		}
		return ops[i] < ops[j]
	})
	var b strings.Builder
	rest := 0
	for i, op := range ops {
		if i >= top {
			rest += n[op]
			continue
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", op, n[op])
	}
	if rest > 0 {
		fmt.Fprintf(&b, "; %d others", rest)
	}
	return b.String()
}
