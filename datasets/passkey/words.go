package passkey

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"kvcascade/datasets/passkey/words"
)

// EmbeddedWords names the word list used when Config.Words is empty in
// messages: the filler list compiled into the binary (package
// datasets/passkey/words: SCOWL's American English list, the source of
// Debian's wamerican that the reference code reads, kept to the words of
// the letters a–z).
const EmbeddedWords = "the embedded SCOWL word list"

// Embedded returns the embedded word list (see EmbeddedWords). The list is
// shared and must not be modified.
func Embedded() []string {
	embeddedOnce.Do(func() {
		var err error
		embedded, err = readWords(strings.NewReader(words.Text), "embedded")
		if err != nil {
			panic("passkey: embedded word list: " + err.Error()) // a build defect, caught by the tests
		}
	})
	return embedded
}

var (
	embeddedOnce sync.Once
	embedded     []string
)

// maxWordLine bounds one line of a word list.
const maxWordLine = 1 << 16

// LoadWords reads the word list at path, one word a line, and keeps the
// plain lowercase ASCII words (only the letters a–z, so no proper nouns,
// possessives or accented words), in file order. Surrounding spaces and
// "\r" are trimmed. A missing file, a line over 64 KiB or a list without a
// single usable word is an error.
func LoadWords(path string) ([]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("passkey: word list %s not found (leave words unset for %s): %w", path, EmbeddedWords, err)
	}
	if err != nil {
		return nil, fmt.Errorf("passkey: word list: %w", err)
	}
	defer f.Close()
	words, err := readWords(f, path)
	if err != nil {
		return nil, err
	}
	return words, nil
}

func readWords(r io.Reader, path string) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxWordLine)
	var words []string
	line := 0
	for sc.Scan() {
		line++
		if w := trimSpace(sc.Bytes()); plain(w) {
			words = append(words, string(w))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("passkey: word list %s:%d: %w", path, line+1, err)
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("passkey: word list %s: no plain lowercase ASCII words (a-z) in %d lines", path, line)
	}
	return words, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for n := len(b); n > 0 && (b[n-1] == ' ' || b[n-1] == '\t' || b[n-1] == '\r'); n = len(b) {
		b = b[:n-1]
	}
	return b
}

// plain reports whether w is a non-empty run of the letters a–z.
func plain(w []byte) bool {
	for _, c := range w {
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return len(w) > 0
}

// Words is a cache of word lists read by LoadWords, keyed by cleaned path.
// The zero value is ready for use and it is safe for concurrent use. The
// lists it returns are shared and must not be modified.
type Words struct {
	mu    sync.Mutex
	lists map[string][]string
}

// Load returns the word list at path ("" means the embedded list, see
// Embedded), reading it on first use.
func (w *Words) Load(path string) ([]string, error) {
	if path == "" {
		return Embedded(), nil
	}
	path = filepath.Clean(path)
	w.mu.Lock()
	defer w.mu.Unlock()
	if l, ok := w.lists[path]; ok {
		return l, nil
	}
	l, err := LoadWords(path)
	if err != nil {
		return nil, err
	}
	if w.lists == nil {
		w.lists = make(map[string][]string)
	}
	w.lists[path] = l
	return l, nil
}
