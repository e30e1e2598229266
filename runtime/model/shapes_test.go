package model

import "testing"

func TestBuiltinShapes(t *testing.T) {
	names := BuiltinShapes()
	if len(names) == 0 {
		t.Fatal("no built-in shapes")
	}
	for _, n := range names {
		c, ok, err := BuiltinShape(n)
		if !ok || err != nil {
			t.Fatalf("shape %s: ok %v, %v", n, ok, err)
		}
		if c.Layers <= 0 || c.Params() <= 0 {
			t.Errorf("shape %s: %d layers, %d parameters", n, c.Layers, c.Params())
		}
	}
	c, _, _ := BuiltinShape("llama-3.1-8b")
	if c == nil || c.Layers != 32 || c.KVHeads != 8 || c.Params() < 8.0e9 || c.Params() > 8.1e9 {
		t.Errorf("llama-3.1-8b: %+v", c)
	}
	if _, ok, _ := BuiltinShape("nope"); ok {
		t.Error("shape nope exists")
	}
	if _, ok, _ := BuiltinShape("../config"); ok {
		t.Error("shape ../config exists")
	}
}
