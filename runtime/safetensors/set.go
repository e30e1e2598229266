package safetensors

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

// Names of the weight files in a model directory, as Hugging Face
// transformers writes them.
const (
	singleName = "model.safetensors"
	indexName  = "model.safetensors.index.json"
)

// Set is all the weight files of one model directory, read as one
// collection of uniquely named tensors.
type Set struct {
	dir   string
	files []*File          // sorted by path
	owner map[string]*File // tensor name to the file holding it
	names []string         // sorted
}

// OpenDir opens the weights of the model in dir: model.safetensors if it
// exists, as transformers prefers, otherwise the shards named by the
// "weight_map" of model.safetensors.index.json. Every shard the index names
// must exist and hold exactly the tensors the index assigns to it.
func OpenDir(dir string) (*Set, error) {
	single := filepath.Join(dir, singleName)
	if _, err := os.Stat(single); err == nil {
		f, err := Open(single)
		if err != nil {
			return nil, err
		}
		return newSet(dir, []*File{f}, nil, nil)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("safetensors: %w", err)
	}

	indexPath := filepath.Join(dir, indexName)
	index, err := readIndex(indexPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("safetensors: %s: neither %s nor %s exists", dir, singleName, indexName)
	}
	if err != nil {
		return nil, err
	}

	shards := slices.Compact(slices.Sorted(maps.Values(index)))
	files := make([]*File, 0, len(shards))
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	for _, shard := range shards {
		f, err := Open(filepath.Join(dir, shard))
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("safetensors: %s: weight_map shard %q: %w", indexPath, shard, err)
		}
		files = append(files, f)
	}
	s, err := newSet(dir, files, shards, index)
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("safetensors: %s: %w", indexPath, err)
	}
	return s, nil
}

// readIndex reads and parses a sharded model's index file.
func readIndex(path string) (map[string]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > MaxHeaderSize {
		return nil, fmt.Errorf("safetensors: %s: %d bytes exceeds the limit of %d", path, st.Size(), MaxHeaderSize)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	index, err := parseIndex(data)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	return index, nil
}

// parseIndex parses the JSON of model.safetensors.index.json and returns its
// weight_map, from tensor name to shard file name. Keys other than
// weight_map, such as "metadata", are skipped.
func parseIndex(data []byte) (map[string]string, error) {
	dec := newDecoder(data)
	if err := dec.expectDelim('{', "index"); err != nil {
		return nil, err
	}
	var index map[string]string
	seen := make(map[string]bool)
	for dec.More() {
		k, err := dec.key("index")
		if err != nil {
			return nil, err
		}
		if seen[k] {
			return nil, fmt.Errorf("key %q appears twice", k)
		}
		seen[k] = true
		if k != "weight_map" {
			if err := dec.skip(k); err != nil {
				return nil, err
			}
			continue
		}
		if index, err = dec.stringMap("weight_map"); err != nil {
			return nil, err
		}
	}
	if err := dec.expectDelim('}', "index"); err != nil {
		return nil, err
	}
	if err := dec.end(); err != nil {
		return nil, err
	}
	if index == nil {
		return nil, fmt.Errorf("no weight_map")
	}
	if len(index) == 0 {
		return nil, fmt.Errorf("weight_map is empty")
	}
	for _, name := range slices.Sorted(maps.Keys(index)) {
		if shard := index[name]; !filepath.IsLocal(shard) {
			return nil, fmt.Errorf("weight_map[%q]: shard %q is not a file name inside the model directory", name, shard)
		}
	}
	return index, nil
}

// newSet gathers files into a Set. With a non-nil index, files[i] is the
// shard the index calls shards[i], and each file's tensors must be exactly
// those the index assigns to it; without one, the files must not share
// tensor names.
func newSet(dir string, files []*File, shards []string, index map[string]string) (*Set, error) {
	s := &Set{dir: dir, files: files, owner: make(map[string]*File)}
	byShard := make(map[string]*File, len(files))
	for i, f := range files {
		var shard string
		if index != nil {
			shard = shards[i]
			byShard[shard] = f
		}
		for _, name := range f.names {
			if index != nil && index[name] != shard {
				if want, ok := index[name]; ok {
					return nil, fmt.Errorf("tensor %q is in %s but weight_map names %s", name, shard, want)
				}
				return nil, fmt.Errorf("tensor %q is in %s but not in weight_map", name, shard)
			}
			if other, dup := s.owner[name]; dup {
				return nil, fmt.Errorf("tensor %q is in both %s and %s", name, other.path, f.path)
			}
			s.owner[name] = f
			s.names = append(s.names, name)
		}
	}
	if index != nil {
		var missing []string
		for name, shard := range index {
			if _, ok := byShard[shard].infos[name]; !ok {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			name := missing[0]
			return nil, fmt.Errorf("weight_map puts tensor %q in %s, which does not hold it (%d such tensors)",
				name, index[name], len(missing))
		}
	}
	slices.Sort(s.names)
	return s, nil
}

// Dir returns the model directory the Set was opened from.
func (s *Set) Dir() string { return s.dir }

// Has reports whether the Set holds the named tensor.
func (s *Set) Has(name string) bool {
	_, ok := s.owner[name]
	return ok
}

// Info returns the description of the named tensor and whether it exists.
// Info.Offset is relative to the file holding the tensor.
func (s *Set) Info(name string) (Info, bool) {
	f, ok := s.owner[name]
	if !ok {
		return Info{}, false
	}
	return f.Info(name)
}

// Names returns the names of all tensors of the Set, sorted.
func (s *Set) Names() []string { return slices.Clone(s.names) }

// Bytes returns the raw little-endian bytes of the named tensor, with the
// restrictions of File.Bytes.
func (s *Set) Bytes(name string) ([]byte, error) {
	f, ok := s.owner[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: no tensor %q", s.dir, name)
	}
	return f.Bytes(name)
}

// Float32 returns the named tensor converted to float32, row-major. It
// converts F32, BF16 and F16 and returns an error for other dtypes. dst is
// reused when its capacity suffices; otherwise a new slice is allocated.
func (s *Set) Float32(name string, dst []float32) ([]float32, error) {
	f, ok := s.owner[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: no tensor %q", s.dir, name)
	}
	in := f.infos[name]
	raw, err := f.Bytes(name)
	if err != nil {
		return nil, err
	}
	out, err := decodeFloat32(in.DType, raw, dst)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: tensor %q: %w", f.path, name, err)
	}
	return out, nil
}

// Close closes every file of the Set and returns the errors joined.
func (s *Set) Close() error {
	var errs []error
	for _, f := range s.files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}
