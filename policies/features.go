package policies

import (
	"fmt"

	"kvcascade/runtime/backend"
)

// need is an optional attention feature (backend.Feature) that a value of
// one of a policy's parameters asks the backend for.
type need struct {
	param, value string
	feature      backend.Feature
}

// needs returns the features policy name asks for with parameters v,
// resolved: the official variants of the baselines and the official
// scoring, which only some backends compute.
func needs(name string, v Values) []need {
	var out []need
	add := func(param, value string, f backend.Feature) {
		if v.Has(param) && v.String(param) == value {
			out = append(out, need{param, value, f})
		}
	}
	switch name {
	case "cascade":
		add("scoring", "reference", backend.FlashReferenceMass)
	case "h2o":
		add("reduction", h2oQueryMax, backend.GroupMaxMass)
	case "snapkv", "pyramidkv":
		add("select", selectQueryHead, backend.QueryHeadViews)
	}
	return out
}

// CheckBackend returns an error naming the parameter when policy name,
// with parameters v (as Spec.Resolve returns them), needs an attention
// feature that the backend called backendName lacks; has says which it
// has (backend.Spec.Has). A sweep calls it before it runs anything, so
// that such a point is refused where it is written rather than when its
// cache is built.
func CheckBackend(name string, v Values, backendName string, has func(backend.Feature) bool) error {
	s, ok := Lookup(name)
	if !ok {
		return fmt.Errorf("unknown policy %q", name)
	}
	for _, n := range needs(s.Name, v) {
		if !has(n.feature) {
			return paramError(s.Name, n.param, "%q needs %s, which the %s backend's attention does not compute (the cpu backend does)", n.value, n.feature, backendName)
		}
	}
	return nil
}

// checkFeature returns an error unless b has feature f, which policy's
// parameter param asks for: the runtime counterpart of CheckBackend, for
// a cache built outside a sweep.
func checkFeature(policy, param, value string, f backend.Feature, b backend.Backend) error {
	if backend.Supports(b, f) {
		return nil
	}
	return paramError(policy, param, "%q needs %s, which the %s backend's attention does not compute (the cpu backend does)", value, f, b.Name())
}
