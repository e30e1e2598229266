package model

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

// shapes holds the config.json of each built-in shape: the architecture of
// a published model without its weights, for benchmarks with random
// weights (NewRandom); BuiltinShape reads one.
//
//go:embed shapes/*.json
var shapes embed.FS

// BuiltinShapes returns the names of the built-in shapes, sorted.
func BuiltinShapes() []string {
	entries, err := fs.ReadDir(shapes, "shapes")
	if err != nil {
		panic(fmt.Sprintf("model: built-in shapes: %v", err)) // embedded: cannot fail
	}
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".json"))
	}
	sort.Strings(names)
	return names
}

// BuiltinShape returns the configuration of the named built-in shape
// ("llama-3.1-8b") and whether there is one.
func BuiltinShape(name string) (*Config, bool, error) {
	data, err := shapes.ReadFile("shapes/" + name + ".json")
	if err != nil {
		return nil, false, nil
	}
	c, err := ParseConfig(data, name+" (built in)")
	return c, true, err
}
