package sweep

import (
	"bytes"
	"sort"
	"strconv"
	"strings"
)

// keyPath names a value in a decoded TOML document: table keys (string) and
// array indexes (int), e.g. experiment[1].params.length[0].
type keyPath []any

// with returns a copy of p extended by elems.
func (p keyPath) with(elems ...any) keyPath {
	q := make(keyPath, 0, len(p)+len(elems))
	return append(append(q, p...), elems...)
}

// String writes p as experiment[1].params.length, quoting keys that are not
// bare TOML keys.
func (p keyPath) String() string {
	var b strings.Builder
	for i, e := range p {
		switch e := e.(type) {
		case int:
			b.WriteString("[" + strconv.Itoa(e) + "]")
		case string:
			if i > 0 {
				b.WriteByte('.')
			}
			if isBareKey(e) {
				b.WriteString(e)
			} else {
				b.WriteString(strconv.Quote(e))
			}
		}
	}
	return b.String()
}

func isBareKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// pos is a 1-based line and byte column.
type pos struct{ line, col int }

// locator finds where keys, table headers and array elements of a TOML
// document are written. BurntSushi/toml keeps key positions private, so this
// is a small scanner of its own. It expects a document the TOML parser has
// accepted and does its best on anything else: it never fails, and paths it
// did not see fall back to their nearest recorded parent.
type locator struct {
	src        []byte
	lineStarts []int          // byte offset of each line's start
	at         map[string]pos // keyPath.String() → where it is written
	aot        map[string]int // array-of-tables path → elements seen
	i          int            // scan offset
	depth      int            // nesting of values being scanned
}

// maxDepth bounds the nesting of arrays and inline tables the locator
// follows; deeper values are skipped over without recording their keys.
const maxDepth = 64

func newLocator(src []byte) *locator {
	// The TOML parser drops a UTF-8 byte order mark before counting columns.
	src = bytes.TrimPrefix(src, []byte("\xef\xbb\xbf"))
	l := &locator{src: src, at: map[string]pos{}, aot: map[string]int{}}
	l.lineStarts = append(l.lineStarts, 0)
	for i, c := range src {
		if c == '\n' {
			l.lineStarts = append(l.lineStarts, i+1)
		}
	}
	l.scan()
	return l
}

// find returns where p is written, or where its nearest recorded parent is,
// or line 1 column 1.
func (l *locator) find(p keyPath) pos {
	for k := len(p); k > 0; k-- {
		if at, ok := l.at[p[:k].String()]; ok {
			return at
		}
	}
	return pos{1, 1}
}

// lineCol returns the line and column of byte offset off of src, not
// counting a UTF-8 byte order mark (as the TOML parser does not).
func lineCol(src []byte, off int) pos {
	src = bytes.TrimPrefix(src, []byte("\xef\xbb\xbf"))
	off = min(max(off, 0), len(src))
	line := bytes.Count(src[:off], []byte("\n"))
	return pos{line + 1, off - (bytes.LastIndexByte(src[:off], '\n') + 1) + 1}
}

func (l *locator) posOf(off int) pos {
	line := sort.Search(len(l.lineStarts), func(i int) bool { return l.lineStarts[i] > off }) - 1
	if line < 0 {
		line = 0
	}
	return pos{line + 1, off - l.lineStarts[line] + 1}
}

func (l *locator) record(p keyPath, off int) {
	if l.depth > maxDepth {
		return
	}
	k := p.String()
	if _, ok := l.at[k]; !ok {
		l.at[k] = l.posOf(off)
	}
}

func (l *locator) peek(k int) byte {
	if l.i+k < len(l.src) {
		return l.src[l.i+k]
	}
	return 0
}

func (l *locator) eof() bool { return l.i >= len(l.src) }

// skipSpace skips blanks, and newlines and comments when nl is set.
func (l *locator) skipSpace(nl bool) {
	for !l.eof() {
		switch c := l.src[l.i]; {
		case c == ' ' || c == '\t' || c == '\r':
			l.i++
		case nl && c == '\n':
			l.i++
		case nl && c == '#':
			l.skipLine()
		default:
			return
		}
	}
}

// skipLine moves to the start of the next line.
func (l *locator) skipLine() {
	for !l.eof() && l.src[l.i] != '\n' {
		l.i++
	}
	if !l.eof() {
		l.i++
	}
}

// scan walks the document, recording the position of every table header,
// key and array element.
func (l *locator) scan() {
	var table keyPath
	for !l.eof() {
		l.skipSpace(true)
		if l.eof() {
			return
		}
		start := l.i
		if l.src[l.i] == '[' {
			array := l.peek(1) == '['
			if array {
				l.i += 2
			} else {
				l.i++
			}
			parts, _ := l.key()
			table = l.resolve(parts, array)
			if array && len(table) > 0 { // the array is where its first element is
				l.record(table[:len(table)-1], start)
			}
			l.record(table, start)
			l.skipLine()
			continue
		}
		before := l.i
		l.keyValue(table)
		if l.i == before { // not a key: skip the line rather than loop
			l.skipLine()
		}
	}
}

// resolve turns the parts of a table header into a path, inserting the
// index of the latest element of every array of tables on the way; for an
// [[array]] header it counts a new element.
func (l *locator) resolve(parts []string, array bool) keyPath {
	var p keyPath
	for i, part := range parts {
		p = p.with(part)
		k := p.String()
		if array && i == len(parts)-1 {
			n := l.aot[k]
			l.aot[k] = n + 1
			return p.with(n)
		}
		if n := l.aot[k]; n > 0 {
			p = p.with(n - 1)
		}
	}
	return p
}

// keyValue scans `dotted.key = value` in table, recording each key part.
func (l *locator) keyValue(table keyPath) {
	parts, offs := l.key()
	if len(parts) == 0 {
		return
	}
	p := table
	if l.depth <= maxDepth {
		for j, part := range parts {
			p = p.with(part)
			l.record(p, offs[j])
		}
	}
	l.skipSpace(false)
	if l.peek(0) != '=' {
		return
	}
	l.i++
	l.skipSpace(false)
	l.value(p)
}

// key scans a possibly dotted, possibly quoted key and returns its parts and
// the offset where each starts.
func (l *locator) key() (parts []string, offs []int) {
	for {
		l.skipSpace(false)
		if l.eof() {
			return
		}
		start := l.i
		var part string
		switch c := l.src[l.i]; c {
		case '"', '\'':
			part = l.str()
		default:
			for !l.eof() && !strings.ContainsRune(" \t\r\n.=[]\"'#,{}", rune(l.src[l.i])) {
				l.i++
			}
			part = string(l.src[start:l.i])
		}
		if l.i == start {
			return
		}
		parts, offs = append(parts, part), append(offs, start)
		l.skipSpace(false)
		if l.peek(0) != '.' {
			return
		}
		l.i++
	}
}

// str scans a basic, literal or multi-line string and returns its value
// (escapes decoded where strconv agrees with TOML; raw text otherwise).
func (l *locator) str() string {
	q := l.src[l.i]
	if l.peek(1) == q && l.peek(2) == q { // multi-line
		l.i += 3
		start := l.i
		for !l.eof() {
			if q == '"' && l.src[l.i] == '\\' {
				l.i += 2
				continue
			}
			if l.src[l.i] == q && l.peek(1) == q && l.peek(2) == q {
				// Up to two more quotes may belong to the string.
				for l.peek(3) == q {
					l.i++
				}
				s := string(l.src[start:min(l.i, len(l.src))])
				l.i += 3
				return s
			}
			l.i++
		}
		return string(l.src[start:])
	}
	start := l.i
	l.i++
	for !l.eof() && l.src[l.i] != q && l.src[l.i] != '\n' {
		if q == '"' && l.src[l.i] == '\\' {
			l.i++
		}
		l.i++
	}
	end := min(l.i, len(l.src))
	if !l.eof() && l.src[l.i] == q {
		l.i++
	}
	raw := string(l.src[start+1 : end])
	if q == '"' {
		if s, err := strconv.Unquote(`"` + raw + `"`); err == nil {
			return s
		}
	}
	return raw
}

// value scans one value at p: arrays and inline tables record their
// elements and keys.
func (l *locator) value(p keyPath) {
	if l.eof() {
		return
	}
	l.depth++
	defer func() { l.depth-- }()
	switch l.src[l.i] {
	case '"', '\'':
		l.str()
	case '[':
		l.i++
		for n := 0; ; n++ {
			l.skipSpace(true)
			if l.eof() || l.src[l.i] == ']' {
				break
			}
			q := p
			if l.depth <= maxDepth {
				q = p.with(n)
				l.record(q, l.i)
			}
			before := l.i
			l.value(q)
			l.skipSpace(true)
			if l.peek(0) == ',' {
				l.i++
			} else if l.i == before {
				l.i++ // unexpected byte: step over it
			}
		}
		if !l.eof() {
			l.i++
		}
	case '{':
		l.i++
		for {
			l.skipSpace(true)
			if l.eof() || l.src[l.i] == '}' {
				break
			}
			before := l.i
			l.keyValue(p)
			l.skipSpace(true)
			if l.peek(0) == ',' {
				l.i++
			} else if l.i == before {
				l.i++
			}
		}
		if !l.eof() {
			l.i++
		}
	default: // number, boolean, date: up to a delimiter
		for !l.eof() && !strings.ContainsRune(",]}\n#", rune(l.src[l.i])) {
			l.i++
		}
	}
}
