package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"kvcascade/datasets/passkey"
	"kvcascade/internal/atomicfile"
)

// runPasskeyDocs writes passkey training documents, one JSON object a line,
// in exactly the layout the passkey experiment tests, so that a model
// trained on them (tools/train_tiny) sees the evaluation format.
func runPasskeyDocs(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("passkey-docs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 1000, "documents to write")
	minWords := fs.Int("min-words", 16, "fewest filler words")
	maxWords := fs.Int("max-words", 1024, "most filler words")
	seed := fs.Int64("seed", 0, "seed")
	words := fs.String("words", "", "word list file for the filler (default: the embedded SCOWL list)")
	out := fs.String("out", "-", "output file (- for standard output)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kvcascade passkey-docs [flags]\n\nWrites passkey documents (prompt, a space, the key) as JSON lines\n{\"text\", \"key\", \"depth_bin\", \"words\"} for training.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *n < 0 || *minWords < 0 || *maxWords < *minWords {
		return fmt.Errorf("need n ≥ 0 and 0 ≤ min-words ≤ max-words")
	}
	list, err := (&passkey.Words{}).Load(*words)
	if err != nil {
		return err
	}
	if *out == "-" {
		bw := bufio.NewWriter(stdout)
		if err := writeDocs(bw, list, *n, *minWords, *maxWords, *seed); err != nil {
			return err
		}
		return bw.Flush()
	}
	return atomicfile.Write(*out, 0o644, func(w io.Writer) error {
		return writeDocs(w, list, *n, *minWords, *maxWords, *seed)
	})
}

// writeDocs writes n passkey documents as JSON lines.
func writeDocs(w io.Writer, list []string, n, minWords, maxWords int, seed int64) error {
	enc := json.NewEncoder(w)
	for i := 0; i < n; i++ {
		bin := i % passkey.Bins
		rng := passkey.Rand(seed, 0, bin, i)
		nw := minWords + rng.IntN(maxWords-minWords+1)
		parts, err := passkey.Draw(list, nw, bin, rng)
		if err != nil {
			return err
		}
		doc, err := passkey.Document(parts)
		if err != nil {
			return err
		}
		if err := enc.Encode(map[string]any{"text": doc, "key": parts.Key, "depth_bin": bin, "words": nw}); err != nil {
			return err
		}
	}
	return nil
}
