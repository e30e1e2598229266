// Package longbench reads LongBench (THUDM/LongBench, version 1) and scores
// predictions on it the way its official evaluation does.
//
// The data are JSON Lines, one sample an object with the fields "input",
// "context", "answers" (a list of strings), "all_classes" (a list of strings
// or null), "length", "dataset" and "_id". Tasks returns, per subset, the
// official prompt template (config/dataset2prompt.json), the generation
// length (config/dataset2maxlen.json), the metric (eval.py's
// dataset2metric) and the post-processing of eval.py. A prompt is built by
// filling the template, truncating it in the middle to the model's token
// limit (pred.py) and, for the subsets where pred.py does so, wrapping it in
// the model's chat template.
//
// The English subsets and the Chinese subsets whose metrics need no word
// segmentation (lsht, passage_retrieval_zh) are covered; multifieldqa_zh,
// dureader and vcsum need the jieba segmenter and are left out.
package longbench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"unicode/utf8"

	"kvcascade/datasets/internal/lines"
)

// Sample is one LongBench record.
type Sample struct {
	// Input is the question or instruction; empty in some subsets.
	Input string
	// Context is the long document the prompt is built around.
	Context string
	// Answers are the reference answers; a prediction scores the maximum
	// over them.
	Answers []string
	// AllClasses lists the labels of the classification subsets (trec,
	// lsht); nil where the record has null.
	AllClasses []string
	// Length is the record's length field (words, or characters for the
	// Chinese subsets); 0 when absent.
	Length int
	// Dataset is the subset name and ID the record's _id.
	Dataset string
	ID      string

	// File and Line say where the record was read.
	File string
	Line int
}

// MaxLineBytes bounds one JSON line; the longest LongBench records are a
// few megabytes.
const MaxLineBytes = 64 << 20

// Reader reads Samples from LongBench JSON Lines.
type Reader struct {
	lr   *lines.Reader
	name string
}

// NewReader returns a Reader of r; name (usually the file path) prefixes
// error messages and fills Sample.File.
func NewReader(r io.Reader, name string) *Reader {
	return &Reader{lr: lines.NewReader(r, MaxLineBytes), name: name}
}

// Next returns the next sample, skipping blank lines, or io.EOF after the
// last. Errors name the file, the line and, where one is at fault, the
// field. Required fields are input, context and answers (a non-empty list
// of strings); all_classes may be null or absent; length, dataset and _id
// may be absent. Other fields are ignored.
func (r *Reader) Next() (Sample, error) {
	for {
		line, err := r.lr.Next()
		if err == io.EOF {
			return Sample{}, io.EOF
		}
		if errors.Is(err, lines.ErrTooLong) {
			return Sample{}, fmt.Errorf("longbench: %s:%d: line longer than %d bytes", r.name, r.lr.Line(), MaxLineBytes)
		}
		if err != nil {
			return Sample{}, fmt.Errorf("longbench: %s:%d: %w", r.name, r.lr.Line(), err)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		s, err := decode(line)
		if err != nil {
			return Sample{}, fmt.Errorf("longbench: %s:%d: %w", r.name, r.lr.Line(), err)
		}
		s.File, s.Line = r.name, r.lr.Line()
		return s, nil
	}
}

// ReadFile reads all samples of the LongBench file at path.
func ReadFile(path string) ([]Sample, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("longbench: %w", err)
	}
	defer f.Close()
	r := NewReader(f, path)
	var out []Sample
	for {
		s, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
}

// decode parses one record.
func decode(line []byte) (Sample, error) {
	if !utf8.Valid(line) {
		for i := 0; i < len(line); {
			r, n := utf8.DecodeRune(line[i:])
			if r == utf8.RuneError && n == 1 {
				return Sample{}, fmt.Errorf("invalid UTF-8 at byte %d of the line", i)
			}
			i += n
		}
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(line, &obj); err != nil {
		return Sample{}, fmt.Errorf("not a JSON object: %w", err)
	}
	var s Sample
	fields := []struct {
		name     string
		dst      any
		required bool
	}{
		{"input", &s.Input, true},
		{"context", &s.Context, true},
		{"answers", &s.Answers, true},
		{"all_classes", &s.AllClasses, false},
		{"length", &s.Length, false},
		{"dataset", &s.Dataset, false},
		{"_id", &s.ID, false},
	}
	for _, f := range fields {
		raw, ok := obj[f.name]
		null := ok && bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
		if !ok || null {
			if f.required {
				return Sample{}, fmt.Errorf("field %q: missing", f.name)
			}
			if null && f.name != "all_classes" {
				return Sample{}, fmt.Errorf("field %q: null", f.name)
			}
			continue
		}
		if err := json.Unmarshal(raw, f.dst); err != nil {
			return Sample{}, fmt.Errorf("field %q: %s", f.name, typeError(err))
		}
	}
	if len(s.Answers) == 0 {
		return Sample{}, errors.New(`field "answers": empty list`)
	}
	return s, nil
}

// typeError shortens encoding/json's messages about a value of the wrong
// type.
func typeError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("cannot use a JSON %s as %s", te.Value, te.Type)
	}
	return err.Error()
}
