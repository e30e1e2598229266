package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"kvcascade/experiments"
	"kvcascade/models"
	"kvcascade/policies"
	"kvcascade/runtime/model"
	"kvcascade/runtime/tokenizer"
)

// paramFlag collects repeated -p key=value policy parameters.
type paramFlag map[string]any

func (p paramFlag) String() string { return fmt.Sprint(map[string]any(p)) }

func (p paramFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	p[k] = parseScalar(v)
	return nil
}

// parsePolicy reads the one syntax every command takes for a policy and its
// parameters: NAME[:key=value,...], as in "cascade:sinks=4,size=256".
func parsePolicy(v string) (name string, params map[string]any, err error) {
	name, rest, _ := strings.Cut(v, ":")
	if name == "" {
		return "", nil, fmt.Errorf("policy %q: want NAME[:key=value,...]", v)
	}
	params = map[string]any{}
	if rest != "" {
		for _, kv := range strings.Split(rest, ",") {
			k, val, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return "", nil, fmt.Errorf("policy %s: want key=value, got %q", name, kv)
			}
			if _, dup := params[k]; dup {
				return "", nil, fmt.Errorf("policy %s: parameter %s given twice", name, k)
			}
			params[k] = parseScalar(val)
		}
	}
	return name, params, nil
}

// parseScalar reads a command-line value as an integer, a float, a bool or
// else a string, as TOML would type it.
func parseScalar(v string) any {
	if i, err := strconv.ParseInt(v, 10, 64); err == nil {
		return i
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return f
	}
	if b, err := strconv.ParseBool(v); err == nil {
		return b
	}
	return v
}

func runGenerate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("model", "", "Hugging Face model directory (config.json, *.safetensors, tokenizer.json), or the name of an embedded model ("+strings.Join(models.Names(), ", ")+")")
	policy := fs.String("policy", "full", "cache policy and its parameters, NAME[:key=value,...] (see kvcascade policies)")
	params := paramFlag{}
	fs.Var(params, "p", "one more policy parameter key=value (repeatable; the older form of --policy NAME:key=value)")
	prompt := fs.String("prompt", "", "prompt text")
	maxNew := fs.Int("max-new", 32, "tokens to generate at most")
	chunk := fs.Int("chunk", 512, "prefill chunk size in tokens")
	bf := addBackendFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kvcascade generate --model DIR|"+strings.Join(models.Names(), "|")+" [--policy NAME[:key=value,...]] --prompt TEXT\n\n"+
			"Greedy generation from a prompt through a cache policy; prints the continuation and,\n"+
			"on standard error, the token counts, the time and the cache's size.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (the prompt goes after --prompt)", fs.Arg(0))
	}
	switch {
	case *dir == "":
		return fmt.Errorf("--model is required")
	case *chunk < 1:
		return fmt.Errorf("--chunk must be at least 1 token, got %d", *chunk)
	case *maxNew < 1:
		return fmt.Errorf("--max-new must be at least 1 token, got %d", *maxNew)
	}
	if _, err := bf.spec(); err != nil {
		return err
	}
	policyName, policyParams, err := parsePolicy(*policy)
	if err != nil {
		return fmt.Errorf("--policy: %w", err)
	}
	for k, v := range params {
		if _, dup := policyParams[k]; dup {
			return fmt.Errorf("policy parameter %s given twice (in --policy and -p)", k)
		}
		policyParams[k] = v
	}
	if _, err := os.Stat(*dir); err != nil {
		if d, embErr := models.Dir(*dir); embErr == nil {
			*dir = d
		}
	}
	f, err := policies.New(policyName, policyParams)
	if err != nil {
		return err
	}
	b, err := bf.open()
	if err != nil {
		return err
	}
	if c, ok := b.(io.Closer); ok {
		defer c.Close()
	}
	m, err := model.Load(*dir, b)
	if err != nil {
		return err
	}
	tok, err := tokenizer.Load(filepath.Join(*dir, "tokenizer.json"))
	if err != nil {
		return err
	}
	env := &experiments.Env{Model: m, Tokenizer: tok, Policy: f, Chunk: *chunk}
	// a policy given as a ratio of the prompt is resolved here
	resolved, ids, _, err := env.ForPrompt(tok.Encode(*prompt, true))
	if err != nil {
		return err
	}
	env.Policy = resolved
	cache, err := env.NewCache()
	if err != nil {
		return err
	}
	defer cache.Free()
	sess := m.NewSession(cache, *chunk)
	defer sess.Close()
	start := time.Now()
	out, err := sess.Generate(context.Background(), ids, *maxNew, m.EOS)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok.Decode(out, true))
	fmt.Fprintf(stderr, "%d prompt tokens, %d generated, %.2fs, cache %.1f MiB\n", len(ids), len(out), time.Since(start).Seconds(), float64(cache.Bytes())/(1<<20))
	return nil
}
