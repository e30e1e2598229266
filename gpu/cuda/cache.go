package cuda

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
)

// cacheFormat changes when the meaning of cached files changes.
const cacheFormat = "kvcascade-cuda-cache-1"

// CacheKey names compiled code: the hex SHA-256 of the source, the
// compiler options, the target architecture and the NVRTC version, each
// length-prefixed so that no two inputs share an encoding.
func CacheKey(src string, opts []string, arch, nvrtcVersion string) string {
	h := sha256.New()
	put := func(s string) {
		var n [8]byte
		for i, l := 0, uint64(len(s)); i < 8; i++ {
			n[i] = byte(l >> (8 * i))
		}
		h.Write(n[:])
		h.Write([]byte(s))
	}
	put(cacheFormat)
	put(src)
	put(arch)
	put(nvrtcVersion)
	for _, o := range opts {
		put(o)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// DefaultKernelDir is kvcascade/cuda under the user cache directory
// ($XDG_CACHE_HOME or ~/.cache on Linux), or "" when there is none.
func DefaultKernelDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "kvcascade", "cuda")
}

func cachePath(dir, key string, ptx bool) string {
	if ptx {
		return filepath.Join(dir, key+".ptx")
	}
	return filepath.Join(dir, key+".cubin")
}

// loadCached returns the code cached under key, preferring a cubin.
func loadCached(dir, key string) (code []byte, ptx, ok bool) {
	if dir == "" {
		return nil, false, false
	}
	for _, ptx := range []bool{false, true} {
		if b, err := os.ReadFile(cachePath(dir, key, ptx)); err == nil && len(b) > 0 {
			return b, ptx, true
		}
	}
	return nil, false, false
}

// storeCached writes code under key atomically (a temporary file renamed),
// so that concurrent processes never read a partial file.
func storeCached(dir, key string, code []byte, ptx bool) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, key+".tmp*")
	if err != nil {
		return err
	}
	_, werr := f.Write(code)
	cerr := f.Close()
	if werr != nil || cerr != nil {
		os.Remove(f.Name())
		if werr != nil {
			return werr
		}
		return cerr
	}
	if err := os.Rename(f.Name(), cachePath(dir, key, ptx)); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}
