// Package safetensors reads and writes Hugging Face safetensors files.
//
// A safetensors file is an 8-byte little-endian header length N, N bytes of
// JSON describing every tensor, and a data region holding the raw
// little-endian tensor bytes:
//
//	{"__metadata__": {"format": "pt"},
//	 "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}
//
// data_offsets are relative to the start of the data region, byte 8+N of the
// file. Open maps a file read-only and validates its header strictly before
// any tensor is handed out; OpenDir opens the one or several files of a model
// directory. Write produces files in the layout of the reference writer.
package safetensors

// MaxHeaderSize is the largest JSON header accepted, in bytes. Longer headers
// are taken to be corrupt rather than read into memory.
const MaxHeaderSize = 100 << 20

// Info describes one tensor of a file.
type Info struct {
	// Name is the tensor's key in the header.
	Name string
	// DType is the element type as the header spells it: "F32", "BF16", ...
	DType string
	// Shape holds the dimensions, outermost first. A scalar has none.
	Shape []int
	// Offset is the position of the tensor's first byte from the start of
	// the file (not of the data region).
	Offset int64
	// Size is the length of the tensor's data in bytes.
	Size int64
}

// Numel returns the number of elements of the tensor.
func (in Info) Numel() int64 {
	n := int64(1)
	for _, d := range in.Shape {
		n *= int64(d)
	}
	return n
}

// DTypeSize returns the size in bytes of one element of dtype, and whether
// dtype is a type this package knows.
func DTypeSize(dtype string) (int, bool) {
	switch dtype {
	case "BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0":
		return 1, true
	case "I16", "U16", "F16", "BF16":
		return 2, true
	case "I32", "U32", "F32":
		return 4, true
	case "I64", "U64", "F64", "C64":
		return 8, true
	}
	return 0, false
}
