package safetensors

import (
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
)

// File is one memory-mapped .safetensors file. Its methods may be called
// from several goroutines at once, but not concurrently with Close.
type File struct {
	path     string
	data     []byte // the whole file; nil once closed
	mapped   bool   // data is a memory mapping
	infos    map[string]Info
	names    []string // sorted
	metadata map[string]string
}

// Open maps the file at path read-only and validates its header. Where the
// file cannot be mapped, Open reads it into memory instead.
//
// The mapping shares the file's pages: a file truncated by another process
// while it is open makes later reads fault, as with any mapped file.
func Open(path string) (*File, error) {
	return open(path, true)
}

// open is Open with the choice of mapping the file or reading it.
func open(path string, tryMmap bool) (*File, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("safetensors: %s: not a regular file", path)
	}
	size := st.Size()
	if size > math.MaxInt {
		return nil, fmt.Errorf("safetensors: %s: %d bytes is too large to address", path, size)
	}

	f := &File{path: path}
	if tryMmap && size > 0 {
		if data, err := mmap(fd, int(size)); err == nil {
			f.data, f.mapped = data, true
		}
	}
	if !f.mapped {
		f.data = make([]byte, size)
		if _, err := io.ReadFull(io.NewSectionReader(fd, 0, size), f.data); err != nil {
			return nil, fmt.Errorf("safetensors: read %s: %w", path, err)
		}
	}

	infos, meta, err := ParseHeader(f.data, size)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	f.metadata = meta
	f.infos = make(map[string]Info, len(infos))
	f.names = make([]string, len(infos))
	for i, in := range infos {
		f.infos[in.Name] = in
		f.names[i] = in.Name
	}
	return f, nil
}

// Path returns the path the file was opened with.
func (f *File) Path() string { return f.path }

// Close releases the file's memory. Slices returned by Bytes must not be
// used afterwards. Closing a closed File does nothing.
func (f *File) Close() error {
	data, mapped := f.data, f.mapped
	f.data, f.mapped = nil, false
	if data == nil || !mapped {
		return nil
	}
	if err := munmap(data); err != nil {
		return fmt.Errorf("safetensors: close %s: %w", f.path, err)
	}
	return nil
}

// Names returns the names of the file's tensors, sorted.
func (f *File) Names() []string { return slices.Clone(f.names) }

// Info returns the description of the named tensor and whether it exists.
func (f *File) Info(name string) (Info, bool) {
	in, ok := f.infos[name]
	in.Shape = slices.Clone(in.Shape)
	return in, ok
}

// Bytes returns the raw little-endian bytes of the named tensor. The slice
// aliases the file's memory: it is read-only (writing to a mapped file
// faults) and valid until Close.
func (f *File) Bytes(name string) ([]byte, error) {
	in, ok := f.infos[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: no tensor %q", f.path, name)
	}
	if f.data == nil {
		return nil, fmt.Errorf("safetensors: %s: tensor %q: file is closed", f.path, name)
	}
	end := in.Offset + in.Size
	return f.data[in.Offset:end:end], nil
}

// Metadata returns a copy of the file's "__metadata__" entry, or nil if it
// has none.
func (f *File) Metadata() map[string]string { return maps.Clone(f.metadata) }
