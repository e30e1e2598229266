package sweep

import (
	"math"

	"kvcascade/runtime/backend"
)

// backendKeys are the keys a [backend] table takes.
var backendKeys = []string{"name", "device", "dtype", "no_flash", "no_cublas", "host_policies"}

// backend reads the top-level backend: absent (the CPU), a name
// (backend = "cuda") or a [backend] table of a name and options, which
// start from the named backend's defaults (backend.DefaultSpec).
func (c *checker) backend(root table) backend.Spec {
	at := keyPath{"backend"}
	switch v := root.m["backend"].(type) {
	case nil:
		return backend.DefaultSpec(DefaultBackend)
	case string:
		s := backend.DefaultSpec(v)
		if err := s.Check(); err != nil {
			c.errorf(at, "%v", err)
		}
		return s
	case map[string]any:
		t := table{at, v}
		errs := len(c.errs)
		c.known(t, backendKeys...)
		name, ok := c.str(t, "name", true)
		if !ok {
			return backend.DefaultSpec(DefaultBackend)
		}
		s := backend.DefaultSpec(name)
		if x, ok := v["device"]; ok {
			n, err := toInt(x)
			switch {
			case err != nil:
				c.errorf(at.with("device"), "%v", err)
			case n < 0 || n > math.MaxInt32:
				c.errorf(at.with("device"), "%d is not a device number", n)
			default:
				s.Device = n
			}
		}
		if d, ok := c.str(t, "dtype", false); ok {
			dt, err := backend.ParseDType(d)
			if err != nil {
				c.errorf(at.with("dtype"), "%v", err)
			}
			s.DType = dt
		}
		for _, o := range []struct {
			key string
			dst *bool
		}{{"no_flash", &s.NoFlash}, {"no_cublas", &s.NoCUBLAS}, {"host_policies", &s.HostPolicies}} {
			if x, ok := v[o.key]; ok {
				b, isBool := x.(bool)
				if !isBool {
					c.errorf(at.with(o.key), "want a boolean, got %s", tomlType(x))
				}
				*o.dst = b
			}
		}
		if err := s.Check(); err != nil && len(c.errs) == errs {
			c.errorf(at, "%v", err)
		}
		return s
	default:
		c.errorf(at, "want a backend name or a [backend] table, got %s", tomlType(v))
		return backend.DefaultSpec(DefaultBackend)
	}
}
