// Package lines reads a byte stream line by line with a bound on the length
// of one line, keeping the line number and byte offset that error messages
// about the line need.
package lines

import (
	"bufio"
	"errors"
	"io"
)

// ErrTooLong is returned by Reader.Next for a line longer than the limit.
var ErrTooLong = errors.New("line too long")

// Reader returns the lines of an io.Reader one at a time.
type Reader struct {
	br       *bufio.Reader
	maxBytes int
	line     int   // number of the line last returned, 1-based
	start    int64 // byte offset of the line last returned
	next     int64 // byte offset of the line to come
	buf      []byte
}

// NewReader returns a Reader of r whose lines may hold at most maxBytes
// bytes, terminator excluded.
func NewReader(r io.Reader, maxBytes int) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 64<<10), maxBytes: maxBytes}
}

// Next returns the next line without its "\n" or "\r\n" terminator. The
// slice is valid until the next call. At the end of the stream Next returns
// io.EOF; a last line without terminator is still returned first. A line
// over the limit gives ErrTooLong, after which the Reader must not be used.
func (r *Reader) Next() ([]byte, error) {
	frag, err := r.br.ReadSlice('\n')
	line := frag
	if err == bufio.ErrBufferFull {
		r.buf = append(r.buf[:0], frag...)
		for err == bufio.ErrBufferFull {
			if len(r.buf) > r.maxBytes+2 {
				r.line++
				return nil, ErrTooLong
			}
			frag, err = r.br.ReadSlice('\n')
			r.buf = append(r.buf, frag...)
		}
		line = r.buf
	}
	if err != nil && err != io.EOF {
		r.line++
		return nil, err
	}
	if err == io.EOF && len(line) == 0 {
		return nil, io.EOF
	}
	r.line++
	r.start = r.next
	r.next += int64(len(line))
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
	}
	if len(line) > r.maxBytes {
		return nil, ErrTooLong
	}
	return line, nil
}

// Line returns the 1-based number of the line last returned, or of the line
// that caused the last error.
func (r *Reader) Line() int { return r.line }

// Offset returns the byte offset in the stream of the line last returned.
func (r *Reader) Offset() int64 { return r.start }
