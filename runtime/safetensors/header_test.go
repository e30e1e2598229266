package safetensors

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

// rawFile returns a file with header length n, the given header text and
// dataLen zero bytes of data.
func rawFile(n uint64, header string, dataLen int) []byte {
	b := binary.LittleEndian.AppendUint64(nil, n)
	b = append(b, header...)
	return append(b, make([]byte, dataLen)...)
}

// headerFile returns a file whose header length is that of header.
func headerFile(header string, dataLen int) []byte {
	return rawFile(uint64(len(header)), header, dataLen)
}

// tensorJSON returns one header entry.
func tensorJSON(name, dtype, shape, offsets string) string {
	return fmt.Sprintf(`%q:{"dtype":%q,"shape":%s,"data_offsets":%s}`, name, dtype, shape, offsets)
}

// badFile is an invalid file; want is part of the error, naming the field.
type badFile struct {
	name string
	data []byte
	want string
}

// badFiles returns invalid files, one for each check of ParseHeader.
func badFiles() []badFile {
	return []badFile{
		{"empty file", nil, "too short"},
		{"short file", []byte{2, 0, 0}, "too short"},
		{"lying header length", rawFile(1000, "{}", 16), "header length 1000 runs past the end"},
		{"absurd header length", rawFile(1<<62, "{}", 16), "exceeds the limit"},
		{"header length just past the file", rawFile(3, "{}", 0), "runs past the end"},
		{"empty header", rawFile(0, "", 8), "does not start with '{'"},
		{"invalid JSON", headerFile(`{"w": {"dtype": `, 0), "invalid JSON"},
		{"unterminated object", headerFile(`{"w":{"dtype":"F32","shape":[],"data_offsets":[0,4]}`, 4), "header: invalid JSON: unexpected EOF"},
		{"not an object", headerFile(`[1, 2]`, 0), "does not start with '{'"},
		{"leading space", headerFile(` {}`, 0), "does not start with '{'"},
		{"trailing value", headerFile(`{} {}`, 0), "after header object"},
		{"trailing garbage", headerFile(`{}x`, 0), "after header object"},
		{"invalid UTF-8", headerFile("{\"\xff\":1}", 0), "UTF-8"},
		{"tensor not an object", headerFile(`{"w":[1]}`, 0), `tensor "w": entry: got "[", want "{"`},
		{"unknown dtype", headerFile("{"+tensorJSON("w", "Q4", "[2]", "[0,2]")+"}", 2), `tensor "w": dtype: unknown dtype "Q4"`},
		{"dtype not a string", headerFile(`{"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, 4), `tensor "w": dtype: got number 4`},
		{"lower-case dtype", headerFile("{"+tensorJSON("w", "f32", "[1]", "[0,4]")+"}", 4), `unknown dtype "f32"`},
		{"negative shape", headerFile("{"+tensorJSON("w", "F32", "[2,-3]", "[0,24]")+"}", 24), `tensor "w": shape[1] = -3 is negative`},
		{"overflowing shape", headerFile("{"+tensorJSON("w", "F32", "[4294967296,4294967296]", "[0,4]")+"}", 4), `tensor "w": shape [4294967296 4294967296]: size in bytes overflows`},
		{"overflowing shape with zero", headerFile("{"+tensorJSON("w", "U8", "[4294967296,4294967296,0]", "[0,0]")+"}", 4), `tensor "w": shape`},
		{"huge dimension", headerFile("{"+tensorJSON("w", "F32", "[99999999999999999999]", "[0,4]")+"}", 4), `tensor "w": shape[0] = 99999999999999999999 overflows`},
		{"fractional dimension", headerFile("{"+tensorJSON("w", "F32", "[1.5]", "[0,4]")+"}", 4), `tensor "w": shape[0] = 1.5 is not an integer`},
		{"exponent dimension", headerFile("{"+tensorJSON("w", "F32", "[1e0]", "[0,4]")+"}", 4), `tensor "w": shape[0] = 1e0 is not an integer`},
		{"shape not an array", headerFile("{"+tensorJSON("w", "F32", "3", "[0,12]")+"}", 12), `tensor "w": shape: got number 3`},
		{"shape of strings", headerFile("{"+tensorJSON("w", "F32", `["3"]`, "[0,12]")+"}", 12), `tensor "w": shape[0]: got string "3"`},
		{"one offset", headerFile("{"+tensorJSON("w", "F32", "[1]", "[4]")+"}", 4), `tensor "w": data_offsets has 1 values, want 2`},
		{"three offsets", headerFile("{"+tensorJSON("w", "F32", "[1]", "[0,4,8]")+"}", 8), `tensor "w": data_offsets has more than 2 values`},
		{"offsets not an array", headerFile("{"+tensorJSON("w", "F32", "[1]", `{"a":0}`)+"}", 4), `tensor "w": data_offsets: got "{"`},
		{"negative offset", headerFile("{"+tensorJSON("w", "F32", "[1]", "[-4,0]")+"}", 4), `tensor "w": data_offsets[0] = -4 is negative`},
		{"huge offset", headerFile("{"+tensorJSON("w", "F32", "[1]", "[0,18446744073709551616]")+"}", 4), `tensor "w": data_offsets[1] = 18446744073709551616 overflows`},
		{"begin after end", headerFile("{"+tensorJSON("w", "F32", "[1]", "[8,4]")+"}", 8), `tensor "w": data_offsets [8, 4]: begin is after end`},
		{"end beyond data", headerFile("{"+tensorJSON("w", "F32", "[2]", "[0,8]")+"}", 4), `tensor "w": data_offsets [0, 8]: end is beyond the 4-byte data region`},
		{"size mismatch", headerFile("{"+tensorJSON("w", "F32", "[3]", "[0,8]")+"}", 12), `tensor "w": data_offsets [0, 8]: span 8 bytes, but F32 [3] needs 12`},
		{"overlap", headerFile("{"+tensorJSON("a", "F32", "[2]", "[0,8]")+","+tensorJSON("b", "F32", "[2]", "[4,12]")+"}", 12), `tensor "b": data_offsets [4, 12] overlap tensor "a"`},
		{"same range", headerFile("{"+tensorJSON("a", "F32", "[2]", "[0,8]")+","+tensorJSON("b", "I32", "[2]", "[0,8]")+"}", 8), `overlap tensor`},
		{"empty tensor inside another", headerFile("{"+tensorJSON("a", "F32", "[2]", "[0,8]")+","+tensorJSON("e", "F32", "[0]", "[4,4]")+"}", 8), `tensor "e": data_offsets [4, 4] overlap tensor "a"`},
		{"duplicate tensor", headerFile("{"+tensorJSON("w", "F32", "[1]", "[0,4]")+","+tensorJSON("w", "F32", "[1]", "[4,8]")+"}", 8), `tensor "w" appears twice`},
		{"duplicate field", headerFile(`{"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}`, 4), `tensor "w": field "dtype" appears twice`},
		{"unknown field", headerFile(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"foo":1}}`, 4), `tensor "w": unknown field "foo"`},
		{"missing field", headerFile(`{"w":{"dtype":"F32","shape":[1]}}`, 4), `tensor "w": missing field "data_offsets"`},
		{"metadata value not a string", headerFile(`{"__metadata__":{"k":1}}`, 0), `__metadata__["k"]: got number 1, want a string`},
		{"metadata value an object", headerFile(`{"__metadata__":{"k":{"x":"y"}}}`, 0), `__metadata__["k"]: got "{", want a string`},
		{"metadata not an object", headerFile(`{"__metadata__":"pt"}`, 0), `__metadata__: got string "pt"`},
		{"metadata null", headerFile(`{"__metadata__":null}`, 0), `__metadata__: got null`},
		{"metadata twice", headerFile(`{"__metadata__":{},"__metadata__":{}}`, 0), `__metadata__ appears twice`},
		{"metadata key twice", headerFile(`{"__metadata__":{"k":"a","k":"b"}}`, 0), `__metadata__: key "k" appears twice`},
	}
}

func TestParseHeaderErrors(t *testing.T) {
	for _, tt := range badFiles() {
		t.Run(tt.name, func(t *testing.T) {
			infos, _, err := ParseHeader(tt.data, int64(len(tt.data)))
			if err == nil {
				t.Fatalf("ParseHeader succeeded with %d tensors, want error containing %q", len(infos), tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseHeader error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseHeader(t *testing.T) {
	tests := []struct {
		name     string
		header   string
		dataLen  int
		extra    int64  // bytes of the file beyond those given
		want     []Info // Offset relative to the data region
		wantMeta map[string]string
	}{
		{
			name:   "no tensors",
			header: "{}",
		},
		{
			name:     "padded with spaces",
			header:   `{"__metadata__":{"format":"pt"}}       `,
			wantMeta: map[string]string{"format": "pt"},
		},
		{
			name:     "white space inside",
			header:   "{ \"__metadata__\" : { } ,\n\t\"w\" : {\"shape\": [ 1 ], \"data_offsets\": [0, 1], \"dtype\": \"BOOL\"} }\n",
			dataLen:  1,
			want:     []Info{{Name: "w", DType: "BOOL", Shape: []int{1}, Offset: 0, Size: 1}},
			wantMeta: map[string]string{},
		},
		{
			name: "sorted by name, gaps allowed",
			header: "{" + tensorJSON("z", "BF16", "[2,2]", "[0,8]") + "," +
				tensorJSON("a", "I64", "[1]", "[16,24]") + "}",
			dataLen: 32,
			want: []Info{
				{Name: "a", DType: "I64", Shape: []int{1}, Offset: 16, Size: 8},
				{Name: "z", DType: "BF16", Shape: []int{2, 2}, Offset: 0, Size: 8},
			},
		},
		{
			name: "scalar and empty tensors",
			header: "{" + tensorJSON("s", "F64", "[]", "[0,8]") + "," +
				tensorJSON("e", "F32", "[0,3]", "[8,8]") + "," +
				tensorJSON("f", "F32", "[3,0]", "[8,8]") + "," +
				tensorJSON("g", "F32", "[0]", "[0,0]") + "}",
			dataLen: 8,
			want: []Info{
				{Name: "e", DType: "F32", Shape: []int{0, 3}, Offset: 8, Size: 0},
				{Name: "f", DType: "F32", Shape: []int{3, 0}, Offset: 8, Size: 0},
				{Name: "g", DType: "F32", Shape: []int{0}, Offset: 0, Size: 0},
				{Name: "s", DType: "F64", Shape: []int{}, Offset: 0, Size: 8},
			},
		},
		{
			name:    "every dtype",
			header:  "{" + tensorJSON("a", "F8_E5M2", "[3]", "[0,3]") + "," + tensorJSON("b", "C64", "[1]", "[3,11]") + "," + tensorJSON("c", "U16", "[2]", "[11,15]") + "}",
			dataLen: 15,
			want: []Info{
				{Name: "a", DType: "F8_E5M2", Shape: []int{3}, Offset: 0, Size: 3},
				{Name: "b", DType: "C64", Shape: []int{1}, Offset: 3, Size: 8},
				{Name: "c", DType: "U16", Shape: []int{2}, Offset: 11, Size: 4},
			},
		},
		{
			name:   "prefix of a larger file",
			header: "{" + tensorJSON("w", "F8_E4M3", "[1000]", "[0,1000]") + "}",
			extra:  1000,
			want:   []Info{{Name: "w", DType: "F8_E4M3", Shape: []int{1000}, Offset: 0, Size: 1000}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := headerFile(tt.header, tt.dataLen)
			infos, meta, err := ParseHeader(data, int64(len(data))+tt.extra)
			if err != nil {
				t.Fatalf("ParseHeader: %v", err)
			}
			want := slices.Clone(tt.want)
			for i := range want {
				want[i].Offset += 8 + int64(len(tt.header))
			}
			if !slices.EqualFunc(infos, want, infoEqual) {
				t.Errorf("infos = %+v, want %+v", infos, want)
			}
			if !maps.Equal(meta, tt.wantMeta) || (meta == nil) != (tt.wantMeta == nil) {
				t.Errorf("metadata = %#v, want %#v", meta, tt.wantMeta)
			}
		})
	}
}

func infoEqual(a, b Info) bool {
	return a.Name == b.Name && a.DType == b.DType && slices.Equal(a.Shape, b.Shape) &&
		a.Offset == b.Offset && a.Size == b.Size
}

func TestParseHeaderPrefix(t *testing.T) {
	data := headerFile("{}", 0)
	if _, _, err := ParseHeader(data[:6], 10); err == nil || !strings.Contains(err.Error(), "too few") {
		t.Errorf("6-byte prefix: err = %v, want too few bytes", err)
	}
	if _, _, err := ParseHeader(data[:9], 10); err == nil || !strings.Contains(err.Error(), "only 1 header bytes given") {
		t.Errorf("9-byte prefix: err = %v, want header bytes missing", err)
	}
	if _, _, err := ParseHeader(data, 4); err == nil || !strings.Contains(err.Error(), "less than") {
		t.Errorf("file size below len(data): err = %v", err)
	}
}

func FuzzParseHeader(f *testing.F) {
	for _, tt := range badFiles() {
		f.Add(tt.data)
	}
	var buf bytes.Buffer
	if err := Write(&buf, goldenTensors(), map[string]string{"format": "pt"}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(headerFile("{"+tensorJSON("z", "BF16", "[2,2]", "[0,8]")+","+tensorJSON("a", "I64", "[1]", "[16,24]")+"}", 32))
	f.Add(headerFile("{"+tensorJSON("e", "F32", "[0]", "[8,8]")+","+tensorJSON("s", "F64", "[]", "[0,8]")+"}", 8))

	f.Fuzz(checkParseHeader)
}

// FuzzHeaderJSON fuzzes the JSON header alone, with a correct length
// prefix and dataLen bytes of data, to reach the checks past the length.
func FuzzHeaderJSON(f *testing.F) {
	for _, tt := range badFiles() {
		if len(tt.data) >= 8 {
			f.Add(tt.data[8:], uint16(0))
		}
	}
	f.Add([]byte("{"+tensorJSON("z", "BF16", "[2,2]", "[0,8]")+","+tensorJSON("a", "I64", "[1]", "[16,24]")+"}"), uint16(32))
	f.Add([]byte("{"+tensorJSON("e", "F32", "[0]", "[8,8]")+","+tensorJSON("s", "F64", "[]", "[0,8]")+"}"), uint16(8))
	f.Add([]byte(`{"__metadata__":{"format":"pt"},"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}   `), uint16(4))
	f.Fuzz(func(t *testing.T, header []byte, dataLen uint16) {
		checkParseHeader(t, append(headerFile(string(header), 0), make([]byte, dataLen)...))
	})
}

// checkParseHeader parses data as a whole file and checks that whatever
// ParseHeader accepts is consistent: known dtypes, sizes that match the
// shapes, byte ranges inside the data region that do not overlap.
func checkParseHeader(t *testing.T, data []byte) {
	t.Helper()
	fileSize := int64(len(data))
	infos, _, err := ParseHeader(data, fileSize)
	if err != nil {
		if infos != nil {
			t.Fatalf("ParseHeader returned %d tensors with error %v", len(infos), err)
		}
		return
	}
	dataStart := 8 + int64(binary.LittleEndian.Uint64(data))
	for i, in := range infos {
		if i > 0 && infos[i-1].Name >= in.Name {
			t.Fatalf("names not sorted and unique: %q, %q", infos[i-1].Name, in.Name)
		}
		size, ok := DTypeSize(in.DType)
		if !ok {
			t.Fatalf("tensor %q: accepted unknown dtype %q", in.Name, in.DType)
		}
		n := int64(size)
		for _, d := range in.Shape {
			if d < 0 {
				t.Fatalf("tensor %q: accepted shape %v", in.Name, in.Shape)
			}
			n *= int64(d)
		}
		if n != in.Size {
			t.Fatalf("tensor %q: size %d, but %s %v needs %d", in.Name, in.Size, in.DType, in.Shape, n)
		}
		if in.Offset < dataStart || in.Size < 0 || in.Offset+in.Size > fileSize {
			t.Fatalf("tensor %q: bytes [%d, %d) outside the data region [%d, %d)",
				in.Name, in.Offset, in.Offset+in.Size, dataStart, fileSize)
		}
	}
	for i, a := range infos {
		for _, b := range infos[i+1:] {
			if max(a.Offset, b.Offset) < min(a.Offset+a.Size, b.Offset+b.Size) {
				t.Fatalf("tensors %q and %q overlap", a.Name, b.Name)
			}
		}
	}
}
