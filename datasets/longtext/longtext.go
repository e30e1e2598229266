// Package longtext streams long plain text, such as the PG19 books used for
// streaming perplexity, without loading a whole corpus into memory.
//
// A corpus is one of:
//   - a UTF-8 text file: one document;
//   - a folder: its *.txt files (not its subfolders), sorted by name, one
//     document each, as in the PG19 release (pg19/test/*.txt);
//   - a JSON Lines file (*.jsonl): one document per non-blank line, an object
//     whose string field (default "text") holds the document;
//   - "embedded:NAME": a text compiled into the binary, one document (see
//     Embedded; the names are listed in embedded/README.md with their
//     sources and licences).
//
// Text arrives in chunks of at most Options.ChunkBytes bytes. A chunk ends
// at a line break when one lies in the second half of the chunk, else at a
// space, else at a character boundary, so that tokenizing chunk by chunk
// splits words as rarely as possible.
//
// Invalid UTF-8 is an error, never replaced: for a text file the error
// names the file and the byte offset of the first bad byte; for JSON Lines
// it names the file, the line and the byte offset within the line.
// (Escapes such as "\ud800" inside JSON strings are valid JSON and decode to
// U+FFFD, as encoding/json does.)
package longtext

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"kvcascade/datasets/internal/lines"
)

// Format names how a file is read.
type Format string

// The formats.
const (
	// Auto reads *.jsonl files as JSONL and everything else as Text.
	Auto Format = ""
	// Text reads a file as one document.
	Text Format = "text"
	// JSONL reads a file as one document per non-blank line.
	JSONL Format = "jsonl"
)

// Options configure Open. The zero value is ready to use.
type Options struct {
	// Format forces the format of every file; Auto decides by extension.
	Format Format
	// Field is the JSONL field that holds the text; default "text".
	Field string
	// ChunkBytes bounds the size of a chunk; default 1 MiB, at least 64.
	ChunkBytes int
	// MaxLineBytes bounds one JSONL line; default 256 MiB.
	MaxLineBytes int
}

// Chunk is a piece of one document.
type Chunk struct {
	// Doc numbers the documents of the corpus from 0, in reading order;
	// documents without text have no chunks and take no number.
	Doc int
	// Name names the document: the file path, or "path:line" for JSONL.
	Name string
	// Offset is the byte offset of the chunk in the document's text.
	Offset int64
	// Text is valid UTF-8.
	Text string
	// Last is set on the document's last chunk.
	Last bool
}

// Document is a whole document.
type Document struct {
	// Doc and Name are those of the document's chunks.
	Doc  int
	Name string
	// Text is the document's text, valid UTF-8.
	Text string
}

// Corpus is a set of files read in order.
type Corpus struct {
	files []file
	opt   Options
}

type file struct {
	path     string
	format   Format
	embedded bool // path is "embedded:NAME", read from the binary
}

// Open prepares the corpus at path (a file, a folder of *.txt files or an
// embedded text, "embedded:NAME"). Files are opened only while they are
// read.
func Open(path string, opt Options) (*Corpus, error) {
	switch opt.Format {
	case Auto, Text, JSONL:
	default:
		return nil, fmt.Errorf("longtext: unknown format %q (want %q or %q)", opt.Format, Text, JSONL)
	}
	if opt.Field == "" {
		opt.Field = "text"
	}
	if opt.ChunkBytes == 0 {
		opt.ChunkBytes = 1 << 20
	}
	if opt.ChunkBytes < 64 {
		return nil, fmt.Errorf("longtext: chunk size %d bytes is below 64", opt.ChunkBytes)
	}
	if opt.MaxLineBytes == 0 {
		opt.MaxLineBytes = 256 << 20
	}
	c := &Corpus{opt: opt}
	if name, ok := strings.CutPrefix(path, EmbeddedPrefix); ok {
		if _, err := embeddedText(name); err != nil {
			return nil, err
		}
		c.files = []file{{path: path, format: Text, embedded: true}}
		return c, nil
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("longtext: %w", err)
	}
	if !info.IsDir() {
		c.files = []file{{path: path, format: formatOf(path, opt.Format)}}
		return c, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("longtext: %w", err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".txt") {
			p := filepath.Join(path, e.Name())
			c.files = append(c.files, file{path: p, format: formatOf(p, opt.Format)})
		}
	}
	if len(c.files) == 0 {
		return nil, fmt.Errorf("longtext: no *.txt files in %s", path)
	}
	slices.SortFunc(c.files, func(a, b file) int { return strings.Compare(a.path, b.path) })
	return c, nil
}

func formatOf(path string, f Format) Format {
	if f != Auto {
		return f
	}
	if strings.HasSuffix(path, ".jsonl") {
		return JSONL
	}
	return Text
}

// Files returns the paths of the corpus files in reading order.
func (c *Corpus) Files() []string {
	out := make([]string, len(c.files))
	for i, f := range c.files {
		out[i] = f.path
	}
	return out
}

// Chunks returns the text of the corpus in chunks, documents in order. On
// an error it yields the error once and stops. Breaking out of the loop
// closes the open file.
func (c *Corpus) Chunks() iter.Seq2[Chunk, error] {
	return func(yield func(Chunk, error) bool) {
		doc := 0
		for _, f := range c.files {
			var ok bool
			var err error
			switch {
			case f.embedded:
				ok, err = c.embedded(f.path, &doc, yield)
			case f.format == JSONL:
				ok, err = c.jsonl(f.path, &doc, yield)
			default:
				ok, err = c.text(f.path, &doc, yield)
			}
			if err != nil {
				yield(Chunk{}, err)
				return
			}
			if !ok {
				return
			}
		}
	}
}

// Documents returns whole documents, each assembled from its chunks. A
// document longer than maxBytes (if maxBytes > 0) is an error naming it.
func (c *Corpus) Documents(maxBytes int) iter.Seq2[Document, error] {
	return func(yield func(Document, error) bool) {
		var b strings.Builder
		for ch, err := range c.Chunks() {
			if err != nil {
				yield(Document{}, err)
				return
			}
			if maxBytes > 0 && b.Len()+len(ch.Text) > maxBytes {
				yield(Document{}, fmt.Errorf("longtext: %s: document longer than %d bytes", ch.Name, maxBytes))
				return
			}
			b.WriteString(ch.Text)
			if ch.Last {
				if !yield(Document{Doc: ch.Doc, Name: ch.Name, Text: b.String()}, nil) {
					return
				}
				b = strings.Builder{}
			}
		}
	}
}

// text streams one text file as one document. It reports false when the
// consumer stopped.
func (c *Corpus) text(path string, doc *int, yield func(Chunk, error) bool) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("longtext: %w", err)
	}
	defer f.Close()
	return c.readText(f, path, doc, yield)
}

// readText streams r, named path, as one document.
func (c *Corpus) readText(f io.Reader, path string, doc *int, yield func(Chunk, error) bool) (bool, error) {
	// One byte beyond the chunk size tells whether the input ends with
	// the chunk, so that its last chunk is marked without a further read.
	buf := make([]byte, 0, c.opt.ChunkBytes+1)
	var off int64 // offset of buf[0] in the file
	eof := false
	emitted := false
	for {
		for !eof && len(buf) < cap(buf) {
			n, err := f.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			if err == io.EOF {
				eof = true
			} else if err != nil {
				return false, fmt.Errorf("longtext: %s at byte %d: %w", path, off+int64(len(buf)), err)
			}
		}
		if len(buf) == 0 {
			break
		}
		end := eof && len(buf) <= c.opt.ChunkBytes
		k := cut(buf[:min(len(buf), c.opt.ChunkBytes)], end)
		if i := invalidUTF8(buf[:k]); i >= 0 {
			return false, fmt.Errorf("longtext: %s: invalid UTF-8 at byte offset %d", path, off+int64(i))
		}
		last := end && k == len(buf)
		if !yield(Chunk{Doc: *doc, Name: path, Offset: off, Text: string(buf[:k]), Last: last}, nil) {
			return false, nil
		}
		emitted = true
		n := copy(buf, buf[k:])
		buf = buf[:n]
		off += int64(k)
		if last {
			break
		}
	}
	if emitted {
		*doc++
	}
	return true, nil
}

// jsonl streams one JSON Lines file, a document per non-blank line.
func (c *Corpus) jsonl(path string, doc *int, yield func(Chunk, error) bool) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("longtext: %w", err)
	}
	defer f.Close()
	return c.readJSONL(f, path, doc, yield)
}

// readJSONL streams r, named path, as JSON Lines.
func (c *Corpus) readJSONL(f io.Reader, path string, doc *int, yield func(Chunk, error) bool) (bool, error) {
	lr := lines.NewReader(f, c.opt.MaxLineBytes)
	for {
		line, err := lr.Next()
		if err == io.EOF {
			return true, nil
		}
		if errors.Is(err, lines.ErrTooLong) {
			return false, fmt.Errorf("longtext: %s:%d: line longer than %d bytes", path, lr.Line(), c.opt.MaxLineBytes)
		}
		if err != nil {
			return false, fmt.Errorf("longtext: %s:%d: %w", path, lr.Line(), err)
		}
		name := fmt.Sprintf("%s:%d", path, lr.Line())
		text, err := Field(line, c.opt.Field)
		if err != nil {
			return false, fmt.Errorf("longtext: %s: %w", name, err)
		}
		if text == "" {
			continue
		}
		var off int64
		for len(text) > 0 {
			k := len(text)
			if k > c.opt.ChunkBytes {
				k = cut(text[:c.opt.ChunkBytes], false)
			}
			last := k == len(text)
			if !yield(Chunk{Doc: *doc, Name: name, Offset: off, Text: text[:k], Last: last}, nil) {
				return false, nil
			}
			off += int64(k)
			text = text[k:]
		}
		*doc++
	}
}

// Field returns the string field name of the JSON object on one JSON Lines
// line. A blank line gives "" and no error. Errors name the field and, for
// invalid UTF-8, the byte offset within the line.
func Field(line []byte, name string) (string, error) {
	if len(bytes.TrimSpace(line)) == 0 {
		return "", nil
	}
	if i := invalidUTF8(line); i >= 0 {
		return "", fmt.Errorf("invalid UTF-8 at byte %d of the line", i)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(line, &obj); err != nil {
		return "", fmt.Errorf("not a JSON object: %w", err)
	}
	raw, ok := obj[name]
	if !ok {
		return "", fmt.Errorf("no field %q", name)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return "", fmt.Errorf("field %q is not a string", name)
	}
	return s, nil
}

// cut returns where to end a chunk of buf: all of it at the end of the
// input, else after the last line break in its second half, else after the
// last space there, else at the last character boundary.
func cut[T string | []byte](buf T, atEOF bool) int {
	if atEOF {
		return len(buf)
	}
	half := len(buf) / 2
	for _, sep := range []byte{'\n', ' '} {
		for i := len(buf) - 1; i >= half; i-- {
			if buf[i] == sep {
				return i + 1
			}
		}
	}
	for i := len(buf) - 1; i > 0 && i >= len(buf)-utf8.UTFMax; i-- {
		if utf8.RuneStart(buf[i]) {
			if fullRune(buf[i:]) {
				return len(buf)
			}
			return i
		}
	}
	return len(buf) // no character boundary near the end: validation reports it
}

func fullRune[T string | []byte](b T) bool {
	if s, ok := any(b).(string); ok {
		return utf8.FullRuneInString(s)
	}
	return utf8.FullRune(any(b).([]byte))
}

// invalidUTF8 returns the offset of the first byte of b that is not part of
// valid UTF-8, or -1.
func invalidUTF8(b []byte) int {
	if utf8.Valid(b) {
		return -1
	}
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}
