package safetensors

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// metadataKey is the header key that holds free-form string metadata
// instead of a tensor.
const metadataKey = "__metadata__"

// ParseHeader parses and validates the header of a safetensors file.
// data is the whole file or a prefix of it that holds at least the 8-byte
// length and the JSON header; fileSize is the size of the whole file, against
// which the data offsets are checked. ParseHeader reads only data.
//
// It returns the tensors sorted by name and the "__metadata__" entry (nil
// when absent). The header is rejected when it is longer than the file or
// than MaxHeaderSize, is not a JSON object in UTF-8, repeats a key, or has a
// tensor entry with a field other than dtype, shape and data_offsets, an
// unknown dtype, a negative or overflowing shape, data_offsets that are not
// two increasing values inside the data region or that disagree with
// dtype and shape, or a byte range that overlaps another tensor's. Gaps
// between tensors are allowed. A tensor with no elements may not lie strictly
// inside another tensor's range.
//
// Errors name the tensor and field at fault but not the file; callers add it.
func ParseHeader(data []byte, fileSize int64) ([]Info, map[string]string, error) {
	if fileSize < int64(len(data)) {
		return nil, nil, fmt.Errorf("file size %d is less than the %d bytes given", fileSize, len(data))
	}
	if fileSize < 8 {
		return nil, nil, fmt.Errorf("file is %d bytes, too short for the 8-byte header length", fileSize)
	}
	if len(data) < 8 {
		return nil, nil, fmt.Errorf("%d bytes given, too few for the 8-byte header length", len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if n > MaxHeaderSize {
		return nil, nil, fmt.Errorf("header length %d exceeds the limit of %d bytes", n, MaxHeaderSize)
	}
	if n > uint64(fileSize-8) {
		return nil, nil, fmt.Errorf("header length %d runs past the end of the %d-byte file", n, fileSize)
	}
	if n > uint64(len(data)-8) {
		return nil, nil, fmt.Errorf("header length %d but only %d header bytes given", n, len(data)-8)
	}
	header := data[8 : 8+n]
	dataStart := 8 + int64(n)
	dataLen := uint64(fileSize - dataStart)

	entries, meta, err := decodeHeader(header)
	if err != nil {
		return nil, nil, err
	}
	for i := range entries {
		if err := entries[i].check(dataLen); err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %w", entries[i].name, err)
		}
	}
	if err := checkOverlap(entries); err != nil {
		return nil, nil, err
	}

	infos := make([]Info, len(entries))
	for i, e := range entries {
		infos[i] = Info{
			Name:   e.name,
			DType:  e.dtype,
			Shape:  e.shape,
			Offset: dataStart + int64(e.begin),
			Size:   int64(e.end - e.begin),
		}
	}
	slices.SortFunc(infos, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	return infos, meta, nil
}

// entry is one tensor of a header as decoded, before validation.
type entry struct {
	name       string
	dtype      string
	shape      []int
	begin, end uint64 // relative to the data region
}

// check validates e against a data region of dataLen bytes.
func (e *entry) check(dataLen uint64) error {
	size, ok := DTypeSize(e.dtype)
	if !ok {
		return fmt.Errorf("dtype: unknown dtype %q", e.dtype)
	}
	nbytes := uint64(size)
	for _, d := range e.shape {
		hi, lo := bits.Mul64(nbytes, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return fmt.Errorf("shape %v: size in bytes overflows", e.shape)
		}
		nbytes = lo
	}
	if e.begin > e.end {
		return fmt.Errorf("data_offsets [%d, %d]: begin is after end", e.begin, e.end)
	}
	if e.end > dataLen {
		return fmt.Errorf("data_offsets [%d, %d]: end is beyond the %d-byte data region", e.begin, e.end, dataLen)
	}
	if e.end-e.begin != nbytes {
		return fmt.Errorf("data_offsets [%d, %d]: span %d bytes, but %s %v needs %d",
			e.begin, e.end, e.end-e.begin, e.dtype, e.shape, nbytes)
	}
	return nil
}

// checkOverlap reports the first two entries whose byte ranges overlap.
// It reorders entries.
func checkOverlap(entries []entry) error {
	slices.SortFunc(entries, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.begin, b.begin), cmp.Compare(a.end, b.end))
	})
	var maxEnd uint64
	var owner string
	for _, e := range entries {
		if e.begin < maxEnd {
			return fmt.Errorf("tensor %q: data_offsets [%d, %d] overlap tensor %q", e.name, e.begin, e.end, owner)
		}
		if e.end > maxEnd {
			maxEnd, owner = e.end, e.name
		}
	}
	return nil
}

// decodeHeader decodes the JSON header into entries, in file order, and
// the metadata. It checks syntax and field types only.
func decodeHeader(header []byte) ([]entry, map[string]string, error) {
	if !utf8.Valid(header) {
		return nil, nil, errors.New("header is not valid UTF-8")
	}
	if len(header) == 0 || header[0] != '{' {
		return nil, nil, errors.New("header does not start with '{'")
	}
	dec := newDecoder(header)
	if err := dec.expectDelim('{', "header"); err != nil {
		return nil, nil, err
	}
	var (
		entries []entry
		meta    map[string]string
		hasMeta bool
		seen    = make(map[string]bool)
	)
	for dec.More() {
		name, err := dec.key("header")
		if err != nil {
			return nil, nil, err
		}
		if name == metadataKey {
			if hasMeta {
				return nil, nil, fmt.Errorf("%s appears twice", metadataKey)
			}
			hasMeta = true
			if meta, err = dec.stringMap(metadataKey); err != nil {
				return nil, nil, err
			}
			continue
		}
		if seen[name] {
			return nil, nil, fmt.Errorf("tensor %q appears twice", name)
		}
		seen[name] = true
		e, err := dec.tensor(name)
		if err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		entries = append(entries, e)
	}
	if err := dec.expectDelim('}', "header"); err != nil {
		return nil, nil, err
	}
	if err := dec.end(); err != nil {
		return nil, nil, err
	}
	return entries, meta, nil
}

// decoder walks JSON token by token, so that repeated keys, unknown fields
// and values of the wrong type are caught rather than silently dropped.
type decoder struct {
	d *json.Decoder
}

func newDecoder(data []byte) decoder {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	return decoder{d}
}

// More reports whether the current array or object has another element.
func (dec decoder) More() bool { return dec.d.More() }

// token returns the next token, with end of input reported as an error.
func (dec decoder) token() (json.Token, error) {
	tok, err := dec.d.Token()
	if err == io.EOF {
		return nil, fmt.Errorf("invalid JSON: %w", io.ErrUnexpectedEOF)
	}
	if err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, fmt.Errorf("invalid JSON at byte %d: %w", syn.Offset, err)
		}
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	return tok, nil
}

// expectDelim consumes delim or fails naming what was being read.
func (dec decoder) expectDelim(delim json.Delim, what string) error {
	tok, err := dec.token()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != delim {
		return fmt.Errorf("%s: got %s, want %q", what, describe(tok), string(delim))
	}
	return nil
}

// key reads an object key.
func (dec decoder) key(what string) (string, error) {
	tok, err := dec.token()
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	k, ok := tok.(string)
	if !ok { // json.Decoder reports non-string keys as syntax errors.
		return "", fmt.Errorf("%s: got %s, want a key", what, describe(tok))
	}
	return k, nil
}

// end checks that nothing but white space follows the top-level value.
func (dec decoder) end() error {
	tok, err := dec.d.Token()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return fmt.Errorf("after header object: invalid JSON: %w", err)
	}
	return fmt.Errorf("after header object: unexpected %s", describe(tok))
}

// skip consumes one value of any kind.
func (dec decoder) skip(what string) error {
	var raw json.RawMessage
	if err := dec.d.Decode(&raw); err != nil {
		return fmt.Errorf("%s: invalid JSON: %w", what, err)
	}
	return nil
}

// stringMap reads an object whose values are all strings.
func (dec decoder) stringMap(what string) (map[string]string, error) {
	if err := dec.expectDelim('{', what); err != nil {
		return nil, err
	}
	m := make(map[string]string)
	for dec.More() {
		k, err := dec.key(what)
		if err != nil {
			return nil, err
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("%s: key %q appears twice", what, k)
		}
		tok, err := dec.token()
		if err != nil {
			return nil, fmt.Errorf("%s[%q]: %w", what, k, err)
		}
		v, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("%s[%q]: got %s, want a string", what, k, describe(tok))
		}
		m[k] = v
	}
	return m, dec.expectDelim('}', what)
}

// tensor reads one tensor entry. Errors do not name the tensor.
func (dec decoder) tensor(name string) (entry, error) {
	e := entry{name: name}
	if err := dec.expectDelim('{', "entry"); err != nil {
		return e, err
	}
	var hasDType, hasShape, hasOffsets bool
	for dec.More() {
		field, err := dec.key("entry")
		if err != nil {
			return e, err
		}
		switch field {
		case "dtype":
			if hasDType {
				return e, errors.New(`field "dtype" appears twice`)
			}
			hasDType = true
			tok, err := dec.token()
			if err != nil {
				return e, fmt.Errorf("dtype: %w", err)
			}
			s, ok := tok.(string)
			if !ok {
				return e, fmt.Errorf("dtype: got %s, want a string", describe(tok))
			}
			e.dtype = s
		case "shape":
			if hasShape {
				return e, errors.New(`field "shape" appears twice`)
			}
			hasShape = true
			nums, err := dec.numbers("shape", -1)
			if err != nil {
				return e, err
			}
			e.shape = make([]int, len(nums))
			for i, s := range nums {
				v, err := strconv.ParseInt(s, 10, 0)
				switch {
				case err == nil && v < 0:
					return e, fmt.Errorf("shape[%d] = %s is negative", i, s)
				case errors.Is(err, strconv.ErrRange):
					return e, fmt.Errorf("shape[%d] = %s overflows", i, s)
				case err != nil:
					return e, fmt.Errorf("shape[%d] = %s is not an integer", i, s)
				}
				e.shape[i] = int(v)
			}
		case "data_offsets":
			if hasOffsets {
				return e, errors.New(`field "data_offsets" appears twice`)
			}
			hasOffsets = true
			nums, err := dec.numbers("data_offsets", 2)
			if err != nil {
				return e, err
			}
			if len(nums) != 2 {
				return e, fmt.Errorf("data_offsets has %d values, want 2", len(nums))
			}
			var off [2]uint64
			for i, s := range nums {
				v, err := strconv.ParseUint(s, 10, 64)
				switch {
				case strings.HasPrefix(s, "-"):
					return e, fmt.Errorf("data_offsets[%d] = %s is negative", i, s)
				case errors.Is(err, strconv.ErrRange):
					return e, fmt.Errorf("data_offsets[%d] = %s overflows", i, s)
				case err != nil:
					return e, fmt.Errorf("data_offsets[%d] = %s is not an integer", i, s)
				}
				off[i] = v
			}
			e.begin, e.end = off[0], off[1]
		default:
			return e, fmt.Errorf("unknown field %q", field)
		}
	}
	if err := dec.expectDelim('}', "entry"); err != nil {
		return e, err
	}
	switch {
	case !hasDType:
		return e, errors.New(`missing field "dtype"`)
	case !hasShape:
		return e, errors.New(`missing field "shape"`)
	case !hasOffsets:
		return e, errors.New(`missing field "data_offsets"`)
	}
	return e, nil
}

// numbers reads an array of numbers and returns their literals. With max
// >= 0 it stops with an error after more than max values.
func (dec decoder) numbers(what string, max int) ([]string, error) {
	if err := dec.expectDelim('[', what); err != nil {
		return nil, err
	}
	var nums []string
	for dec.More() {
		if max >= 0 && len(nums) == max {
			return nil, fmt.Errorf("%s has more than %d values", what, max)
		}
		tok, err := dec.token()
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", what, len(nums), err)
		}
		n, ok := tok.(json.Number)
		if !ok {
			return nil, fmt.Errorf("%s[%d]: got %s, want a number", what, len(nums), describe(tok))
		}
		nums = append(nums, string(n))
	}
	return nums, dec.expectDelim(']', what)
}

// describe names a token for an error message.
func describe(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		return strconv.Quote(string(t))
	case string:
		return "string " + strconv.Quote(t)
	case json.Number:
		return "number " + string(t)
	case bool:
		return "boolean " + strconv.FormatBool(t)
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}
