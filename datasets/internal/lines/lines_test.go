package lines

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReader(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		max     int
		want    []string
		offsets []int64
		err     error
		errLine int
	}{
		{name: "empty", in: "", max: 10},
		{name: "one unterminated", in: "abc", max: 10, want: []string{"abc"}, offsets: []int64{0}},
		{name: "crlf and blank", in: "a\r\n\nbc\n", max: 10, want: []string{"a", "", "bc"}, offsets: []int64{0, 3, 4}},
		{name: "exact limit", in: "abcd\nef", max: 4, want: []string{"abcd", "ef"}, offsets: []int64{0, 5}},
		{name: "too long", in: "ab\nabcde\n", max: 4, want: []string{"ab"}, offsets: []int64{0}, err: ErrTooLong, errLine: 2},
		{name: "too long past buffer", in: "x\n" + strings.Repeat("y", 200<<10), max: 100 << 10, want: []string{"x"}, offsets: []int64{0}, err: ErrTooLong, errLine: 2},
		{name: "long within limit", in: strings.Repeat("z", 150<<10) + "\nq", max: 200 << 10, want: []string{strings.Repeat("z", 150<<10), "q"}, offsets: []int64{0, 150<<10 + 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tc.in), tc.max)
			var got []string
			var offs []int64
			var err error
			for {
				var b []byte
				b, err = r.Next()
				if err != nil {
					break
				}
				got = append(got, string(b))
				offs = append(offs, r.Offset())
			}
			if tc.err == nil && err != io.EOF {
				t.Fatalf("error %v, want io.EOF", err)
			}
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("error %v, want %v", err, tc.err)
				}
				if r.Line() != tc.errLine {
					t.Errorf("error at line %d, want %d", r.Line(), tc.errLine)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d lines, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if got[i] != tc.want[i] || offs[i] != tc.offsets[i] {
					t.Errorf("line %d = %.20q at %d, want %.20q at %d", i+1, got[i], offs[i], tc.want[i], tc.offsets[i])
				}
			}
		})
	}
}
