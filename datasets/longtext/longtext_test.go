package longtext

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func collect(t *testing.T, c *Corpus) ([]Chunk, error) {
	t.Helper()
	var out []Chunk
	for ch, err := range c.Chunks() {
		if err != nil {
			return out, err
		}
		out = append(out, ch)
	}
	return out, nil
}

// checkChunks checks the invariants every chunk sequence keeps.
func checkChunks(t *testing.T, chunks []Chunk, maxBytes int) {
	t.Helper()
	var off int64
	for i, ch := range chunks {
		if len(ch.Text) == 0 || len(ch.Text) > maxBytes {
			t.Errorf("chunk %d has %d bytes, want 1..%d", i, len(ch.Text), maxBytes)
		}
		if !utf8.ValidString(ch.Text) {
			t.Errorf("chunk %d is not valid UTF-8", i)
		}
		if ch.Offset != off {
			t.Errorf("chunk %d at offset %d, want %d", i, ch.Offset, off)
		}
		off += int64(len(ch.Text))
		if ch.Last {
			off = 0
		}
		if i > 0 && !chunks[i-1].Last && chunks[i-1].Doc != ch.Doc {
			t.Errorf("chunk %d starts document %d before document %d ended", i, ch.Doc, chunks[i-1].Doc)
		}
	}
	if n := len(chunks); n > 0 && !chunks[n-1].Last {
		t.Error("last chunk not marked Last")
	}
}

func TestFolder(t *testing.T) {
	c, err := Open("testdata/pg19", Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join("testdata/pg19", "10.txt"), filepath.Join("testdata/pg19", "20.txt")}
	if got := c.Files(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Files = %q, want %q", got, want)
	}
	for _, size := range []int{64, 100, 1 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			c, err := Open("testdata/pg19", Options{ChunkBytes: size})
			if err != nil {
				t.Fatal(err)
			}
			chunks, err := collect(t, c)
			if err != nil {
				t.Fatal(err)
			}
			checkChunks(t, chunks, size)
			docs := map[int]string{}
			for _, ch := range chunks {
				docs[ch.Doc] += ch.Text
				if ch.Name != want[ch.Doc] {
					t.Errorf("chunk of document %d named %q, want %q", ch.Doc, ch.Name, want[ch.Doc])
				}
			}
			for i, path := range want {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if docs[i] != string(b) {
					t.Errorf("document %d differs from %s", i, path)
				}
			}
		})
	}
}

func TestChunkCuts(t *testing.T) {
	tests := []struct {
		name string
		text string
		size int
		want []string
	}{
		{
			name: "at line break",
			text: strings.Repeat("a", 40) + "\n" + strings.Repeat("b", 30) + "\n",
			size: 64,
			want: []string{strings.Repeat("a", 40) + "\n", strings.Repeat("b", 30) + "\n"},
		},
		{
			name: "at space when no line break in the second half",
			text: "x\n" + strings.Repeat("c", 50) + " " + strings.Repeat("d", 30),
			size: 64,
			want: []string{"x\n" + strings.Repeat("c", 50) + " ", strings.Repeat("d", 30)},
		},
		{
			name: "at character boundary",
			text: strings.Repeat("é", 40), // 80 bytes, no spaces
			size: 65,
			want: []string{strings.Repeat("é", 32), strings.Repeat("é", 8)},
		},
		{
			name: "exact fit",
			text: strings.Repeat("z", 64),
			size: 64,
			want: []string{strings.Repeat("z", 64)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, format := range []Format{Text, JSONL} {
				path := filepath.Join(t.TempDir(), "doc")
				data := []byte(tc.text)
				if format == JSONL {
					data = []byte(fmt.Sprintf("{\"text\": %q}\n", tc.text))
				}
				if err := os.WriteFile(path, data, 0o644); err != nil {
					t.Fatal(err)
				}
				c, err := Open(path, Options{Format: format, ChunkBytes: tc.size})
				if err != nil {
					t.Fatal(err)
				}
				chunks, err := collect(t, c)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, ch := range chunks {
					got = append(got, ch.Text)
				}
				if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tc.want) {
					t.Errorf("%s: chunks %q, want %q", format, got, tc.want)
				}
			}
		})
	}
}

func TestJSONL(t *testing.T) {
	c, err := Open("testdata/docs.jsonl", Options{ChunkBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	var docs []Document
	for d, err := range c.Documents(1 << 20) {
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, d)
	}
	want := []Document{
		{0, "testdata/docs.jsonl:1", "First document.\nIt has two lines."},
		{1, "testdata/docs.jsonl:4", "Third document with unicode: 日本語 and émigré."},
	}
	if fmt.Sprintf("%#v", docs) != fmt.Sprintf("%#v", want) {
		t.Errorf("documents %#v\nwant      %#v", docs, want)
	}

	path := filepath.Join(t.TempDir(), "body.jsonl")
	if err := os.WriteFile(path, []byte("{\"body\": \"one\"}\r\n{\"body\": \"two\", \"text\": 3}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err = Open(path, Options{Field: "body"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for d, err := range c.Documents(0) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, d.Text)
	}
	if fmt.Sprint(got) != "[one two]" {
		t.Errorf("field body: documents %q, want [one two]", got)
	}
}

func TestDocumentTooLong(t *testing.T) {
	c, err := Open("testdata/pg19", Options{ChunkBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range c.Documents(100) {
		if err == nil || !strings.Contains(err.Error(), "10.txt") {
			t.Errorf("error %v, want one naming 10.txt", err)
		}
		break
	}
}

func TestBreak(t *testing.T) {
	for _, path := range []string{"testdata/pg19", "testdata/docs.jsonl"} {
		c, err := Open(path, Options{ChunkBytes: 64})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, err := range c.Chunks() {
			if err != nil {
				t.Fatal(err)
			}
			n++
			if n == 2 {
				break
			}
		}
		if n != 2 {
			t.Errorf("%s: %d chunks before break", path, n)
		}
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name   string
		file   string // written to a temp file of this name; "" for no file
		data   string
		opt    Options
		openEr bool
		has    []string
	}{
		{name: "invalid utf8 text", file: "a.txt", data: "hello\nwor\xffld", has: []string{"a.txt", "invalid UTF-8", "byte offset 9"}},
		{name: "invalid utf8 late in text", file: "a.txt", data: strings.Repeat("ab ", 40) + "\xc3(", opt: Options{ChunkBytes: 64}, has: []string{"a.txt", "byte offset 120"}},
		{name: "truncated rune at end", file: "a.txt", data: "abc\xe2\x82", has: []string{"byte offset 3"}},
		{name: "invalid utf8 jsonl", file: "a.jsonl", data: "{\"text\": \"ok\"}\n{\"text\": \"b\xffd\"}\n", has: []string{"a.jsonl:2", "invalid UTF-8", "byte 11"}},
		{name: "bad json", file: "a.jsonl", data: "{\"text\": \"ok\"}\n\n{\"text\": \"unterminated}\n", has: []string{"a.jsonl:3", "not a JSON object"}},
		{name: "not an object", file: "a.jsonl", data: "[1, 2]\n", has: []string{"a.jsonl:1", "not a JSON object"}},
		{name: "missing field", file: "a.jsonl", data: "{\"body\": \"x\"}\n", has: []string{"a.jsonl:1", `no field "text"`}},
		{name: "number field", file: "a.jsonl", data: "{\"text\": 5}\n", has: []string{"a.jsonl:1", `field "text" is not a string`}},
		{name: "null field", file: "a.jsonl", data: "{\"text\": null}\n", has: []string{"a.jsonl:1", `field "text" is not a string`}},
		{name: "line too long", file: "a.jsonl", data: "{\"text\": \"ok\"}\n{\"text\": \"" + strings.Repeat("x", 200) + "\"}\n", opt: Options{MaxLineBytes: 100}, has: []string{"a.jsonl:2", "longer than 100 bytes"}},
		{name: "missing path", openEr: true, has: []string{"missing"}},
		{name: "empty folder", file: "sub/", openEr: true, has: []string{"no *.txt files"}},
		{name: "unknown format", file: "a.txt", data: "x", opt: Options{Format: "csv"}, openEr: true, has: []string{"unknown format"}},
		{name: "tiny chunks", file: "a.txt", data: "x", opt: Options{ChunkBytes: 10}, openEr: true, has: []string{"below 64"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "missing")
			switch {
			case strings.HasSuffix(tc.file, "/"):
				path = filepath.Join(dir, tc.file)
				if err := os.Mkdir(path, 0o755); err != nil {
					t.Fatal(err)
				}
			case tc.file != "":
				path = filepath.Join(dir, tc.file)
				if err := os.WriteFile(path, []byte(tc.data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			c, err := Open(path, tc.opt)
			if err == nil && tc.openEr {
				t.Fatal("Open: no error")
			}
			if err == nil {
				_, err = collect(t, c)
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range tc.has {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

// FuzzText checks that text streaming either returns the input unchanged in
// valid chunks or reports the first invalid byte.
func FuzzText(f *testing.F) {
	f.Add([]byte("hello world\nsecond line"), 64)
	f.Add([]byte(strings.Repeat("é", 100)), 65)
	f.Add([]byte("ab\xffcd"), 64)
	f.Fuzz(func(t *testing.T, data []byte, size int) {
		size = 64 + abs(size)%256
		c := &Corpus{opt: Options{ChunkBytes: size}}
		var got bytes.Buffer
		var chunks []Chunk
		doc := 0
		_, err := c.readText(bytes.NewReader(data), "fuzz.txt", &doc, func(ch Chunk, err error) bool {
			chunks = append(chunks, ch)
			got.WriteString(ch.Text)
			return true
		})
		if utf8.Valid(data) {
			if err != nil {
				t.Fatalf("valid input: %v", err)
			}
			if !bytes.Equal(got.Bytes(), data) {
				t.Fatal("chunks do not reassemble the input")
			}
			checkChunks(t, chunks, size)
			return
		}
		if err == nil {
			t.Fatal("invalid UTF-8 without error")
		}
		want := fmt.Sprintf("byte offset %d", invalidUTF8(data))
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q, want %q", err, want)
		}
	})
}

// FuzzJSONL checks that JSON Lines reading never panics and that every
// chunk it yields is valid UTF-8 within the size bound.
func FuzzJSONL(f *testing.F) {
	f.Add([]byte("{\"text\": \"a b c\"}\n\n{\"text\": \"d\"}"))
	f.Add([]byte("{\"text\": 1}"))
	f.Add([]byte("{\"text\": \"\\ud800\"}\n[]\n"))
	f.Add([]byte("\xff\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &Corpus{opt: Options{Field: "text", ChunkBytes: 64, MaxLineBytes: 1 << 12}}
		var chunks []Chunk
		doc := 0
		_, err := c.readJSONL(bytes.NewReader(data), "fuzz.jsonl", &doc, func(ch Chunk, err error) bool {
			chunks = append(chunks, ch)
			return true
		})
		if err != nil && !strings.HasPrefix(err.Error(), "longtext: fuzz.jsonl:") {
			t.Errorf("error %q does not name the file and line", err)
		}
		if err == nil {
			checkChunks(t, chunks, 64)
		}
	})
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func BenchmarkChunks(b *testing.B) {
	path := filepath.Join(b.TempDir(), "book.txt")
	line := "It was a quiet morning in the village, and the baker had already opened his shop. Café.\n"
	data := []byte(strings.Repeat(line, (8<<20)/len(line)))
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	c, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		for _, err := range c.Chunks() {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}
