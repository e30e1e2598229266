package tokenizer

import "unicode/utf8"

// byteTable is the GPT-2 byte-to-unicode mapping used by byte-level BPE.
// Printable Latin-1 bytes map to themselves; the other 68 bytes (controls,
// space, DEL, NBSP, soft hyphen) map, in increasing order, to U+0100 onward,
// so that every byte becomes a visible rune.
type byteTable struct {
	toRune  [256]rune
	encoded [256]string // toRune as UTF-8, to build mapped strings fast
	toByte  map[rune]byte
}

func newByteTable() *byteTable {
	t := &byteTable{toByte: make(map[rune]byte, 256)}
	next := rune(256)
	for b := 0; b < 256; b++ {
		printable := (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
		r := rune(b)
		if !printable {
			r = next
			next++
		}
		t.toRune[b] = r
		t.encoded[b] = string(r)
		t.toByte[r] = byte(b)
	}
	return t
}

// mapBytes returns s with every byte replaced by its rune.
func (t *byteTable) mapBytes(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		n += len(t.encoded[s[i]])
	}
	buf := make([]byte, 0, n)
	for i := 0; i < len(s); i++ {
		buf = append(buf, t.encoded[s[i]]...)
	}
	return string(buf)
}

// unmapToken appends the bytes that token stands for to dst. A token with a
// rune outside the table (an added token such as "<|eot_id|>" is fine, being
// printable ASCII, but "résumé" is not) is appended as its own UTF-8 bytes,
// as the tokenizers library does.
func (t *byteTable) unmapToken(dst []byte, token string) []byte {
	start := len(dst)
	for _, r := range token {
		b, ok := t.toByte[r]
		if !ok {
			return append(dst[:start], token...)
		}
		dst = append(dst, b)
	}
	return dst
}

// appendLossy appends b to dst as valid UTF-8, replacing each maximal
// ill-formed subsequence by one U+FFFD, the rule Rust's
// String::from_utf8_lossy (and so the tokenizers library) follows.
func appendLossy(dst []byte, b []byte) []byte {
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			dst = append(dst, b[i])
			i++
			continue
		}
		r, w := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || w > 1 {
			dst = append(dst, b[i:i+w]...)
			i += w
			continue
		}
		dst = append(dst, "\uFFFD"...)
		i += maximalPrefix(b[i:])
	}
	return dst
}

// maximalPrefix returns the length (at least 1) of the longest prefix of b
// that starts a well-formed UTF-8 sequence, b itself being ill-formed at 0.
func maximalPrefix(b []byte) int {
	lead := b[0]
	var n int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case lead >= 0xC2 && lead <= 0xDF:
		n = 2
	case lead == 0xE0:
		n, lo = 3, 0xA0
	case lead >= 0xE1 && lead <= 0xEC, lead == 0xEE, lead == 0xEF:
		n = 3
	case lead == 0xED:
		n, hi = 3, 0x9F
	case lead == 0xF0:
		n, lo = 4, 0x90
	case lead >= 0xF1 && lead <= 0xF3:
		n = 4
	case lead == 0xF4:
		n, hi = 4, 0x8F
	default:
		return 1
	}
	i := 1
	for ; i < n && i < len(b); i++ {
		if b[i] < lo || b[i] > hi {
			break
		}
		lo, hi = 0x80, 0xBF
	}
	return i
}
