package longtext

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// EmbeddedPrefix starts the path of a text compiled into the binary:
// "embedded:NAME" names embedded/NAME.txt.
const EmbeddedPrefix = "embedded:"

//go:embed embedded/*.txt
var embeddedFS embed.FS

// Embedded returns the names of the embedded texts, sorted; each is opened
// as EmbeddedPrefix+name.
func Embedded() []string {
	entries, _ := fs.ReadDir(embeddedFS, "embedded") // the directory is compiled in
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".txt"))
	}
	slices.Sort(names)
	return names
}

// IsEmbedded reports whether path names an embedded text (it starts with
// EmbeddedPrefix), which is then no file on disk.
func IsEmbedded(path string) bool { return strings.HasPrefix(path, EmbeddedPrefix) }

// EmbeddedText returns the text that path ("embedded:NAME") names, or an
// error listing the names there are.
func EmbeddedText(path string) (string, error) {
	return embeddedText(strings.TrimPrefix(path, EmbeddedPrefix))
}

// embeddedText returns the embedded text called name, or an error listing
// the names there are.
func embeddedText(name string) (string, error) {
	b, err := embeddedFS.ReadFile(path.Join("embedded", name+".txt"))
	if err != nil || name == "" || strings.ContainsAny(name, "/\\") {
		return "", fmt.Errorf("longtext: no embedded text %q (embedded: %s)", name, strings.Join(Embedded(), ", "))
	}
	return string(b), nil
}

// embedded streams the embedded text named by p ("embedded:NAME") as one
// document.
func (c *Corpus) embedded(p string, doc *int, yield func(Chunk, error) bool) (bool, error) {
	text, err := embeddedText(strings.TrimPrefix(p, EmbeddedPrefix))
	if err != nil {
		return false, err
	}
	return c.readText(strings.NewReader(text), p, doc, yield)
}
