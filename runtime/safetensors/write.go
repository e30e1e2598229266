package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Tensor is one tensor to be written by Write.
type Tensor struct {
	Name  string
	DType string // "F32", "BF16", ...; see DTypeSize
	Shape []int
	Data  []byte // little-endian, row-major; exactly Numel·DTypeSize bytes
}

// Write writes tensors and metadata to w in safetensors format. As the
// reference writer does, the header is compact JSON padded with spaces to a
// multiple of 8 bytes, "__metadata__" comes first and is left out when
// metadata is empty, and tensors are stored back to back with no gaps.
// Tensors are ordered by name alone, where the reference writer orders them
// by dtype and then name; both orders are valid files.
//
// Write checks each tensor before writing anything: names must be unique
// and not "__metadata__", dtypes known, and Data as long as dtype and shape
// require.
func Write(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	order := make([]*Tensor, len(tensors))
	for i := range tensors {
		order[i] = &tensors[i]
	}
	slices.SortFunc(order, func(a, b *Tensor) int { return strings.Compare(a.Name, b.Name) })

	var header bytes.Buffer
	header.WriteByte('{')
	if len(metadata) > 0 {
		for k, v := range metadata {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return fmt.Errorf("safetensors: write: %s[%q]: not valid UTF-8", metadataKey, k)
			}
		}
		writeJSONString(&header, metadataKey)
		header.WriteString(":{")
		for i, k := range slices.Sorted(maps.Keys(metadata)) {
			if i > 0 {
				header.WriteByte(',')
			}
			writeJSONString(&header, k)
			header.WriteByte(':')
			writeJSONString(&header, metadata[k])
		}
		header.WriteByte('}')
	}
	var offset uint64
	for i, t := range order {
		if err := t.check(); err != nil {
			return fmt.Errorf("safetensors: write: tensor %q: %w", t.Name, err)
		}
		if i > 0 && order[i-1].Name == t.Name {
			return fmt.Errorf("safetensors: write: tensor %q appears twice", t.Name)
		}
		if i > 0 || len(metadata) > 0 {
			header.WriteByte(',')
		}
		writeJSONString(&header, t.Name)
		header.WriteString(`:{"dtype":`)
		writeJSONString(&header, t.DType)
		header.WriteString(`,"shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				header.WriteByte(',')
			}
			header.WriteString(strconv.Itoa(d))
		}
		end := offset + uint64(len(t.Data))
		fmt.Fprintf(&header, `],"data_offsets":[%d,%d]}`, offset, end)
		offset = end
	}
	header.WriteByte('}')
	for header.Len()%8 != 0 {
		header.WriteByte(' ')
	}
	if header.Len() > MaxHeaderSize {
		return fmt.Errorf("safetensors: write: header of %d bytes exceeds the limit of %d", header.Len(), MaxHeaderSize)
	}

	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(header.Len()))
	if _, err := w.Write(n[:]); err != nil {
		return fmt.Errorf("safetensors: write: %w", err)
	}
	if _, err := w.Write(header.Bytes()); err != nil {
		return fmt.Errorf("safetensors: write: %w", err)
	}
	for _, t := range order {
		if _, err := w.Write(t.Data); err != nil {
			return fmt.Errorf("safetensors: write: tensor %q: %w", t.Name, err)
		}
	}
	return nil
}

// check validates a tensor for writing. Errors do not name the tensor.
func (t *Tensor) check() error {
	if !utf8.ValidString(t.Name) {
		return errors.New("name is not valid UTF-8")
	}
	if t.Name == metadataKey {
		return fmt.Errorf("name %s is reserved", metadataKey)
	}
	size, ok := DTypeSize(t.DType)
	if !ok {
		return fmt.Errorf("unknown dtype %q", t.DType)
	}
	nbytes := uint64(size)
	for i, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("shape[%d] = %d is negative", i, d)
		}
		hi, lo := bits.Mul64(nbytes, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return fmt.Errorf("shape %v: size in bytes overflows", t.Shape)
		}
		nbytes = lo
	}
	if uint64(len(t.Data)) != nbytes {
		return fmt.Errorf("%d bytes of data, but %s %v needs %d", len(t.Data), t.DType, t.Shape, nbytes)
	}
	return nil
}

// writeJSONString writes s as a JSON string, without escaping HTML
// characters, as serde_json does.
func writeJSONString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	enc.Encode(s)               // cannot fail for a string
	buf.Truncate(buf.Len() - 1) // Encode appends a newline
}
