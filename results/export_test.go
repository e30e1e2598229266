package results

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// exportFixture writes two small sweeps whose points cover what an export
// must handle: nested and missing parameters, a parameter named like a fixed
// column, numbers to sort numerically, NaN and infinite metrics, a failed
// point without metrics, pending and running points (pending last, as
// Claim takes points in order). Points are added out of order so the export's order cannot come from row ids.
func exportFixture(t *testing.T) *DB {
	t.Helper()
	db := openTemp(t, "export.db")
	type point struct {
		spec    PointSpec
		status  Status // pending, running, done or failed
		metrics []Metric
	}
	passkey := []point{
		{PointSpec{"h-c-4096-0.5", "passkey", "tiny", "cascade", map[string]any{"length": 4096, "depth": 0.5, "cache": map[string]any{"size": 256, "cascades": 4}}, nil, nil, nil},
			Done, []Metric{{"accuracy", 0.85, "fraction"}, {"prefill", 1.25e3, "ms"}}},
		{PointSpec{"h-c-512-0.5", "passkey", "tiny", "cascade", map[string]any{"length": 512, "depth": 0.5, "cache": map[string]any{"size": 256, "cascades": 4}}, nil, nil, nil},
			Done, []Metric{{"accuracy", 1, "fraction"}, {"prefill", 80, "ms"}}},
		{PointSpec{"h-c-512-0.1", "passkey", "tiny", "cascade", map[string]any{"length": 512, "depth": 0.1, "cache": map[string]any{"size": 256, "cascades": 4}}, nil, nil, nil},
			Done, []Metric{{"accuracy", 0.95, "fraction"}, {"prefill", math.NaN(), "ms"}}},
		{PointSpec{"h-s-4096-0.5", "passkey", "tiny", "sink", map[string]any{"length": 4096, "depth": 0.5, "cache": map[string]any{"size": 256}, "note": "say \"hi\", then <stop>"}, nil, nil, nil},
			Failed, nil},
		{PointSpec{"h-s-512-0.5", "passkey", "tiny", "sink", map[string]any{"length": 512, "depth": 0.5, "cache": map[string]any{"size": 256}, "status": "shadowed"}, nil, nil, nil},
			Done, []Metric{{"accuracy", 0.4, "fraction"}, {"ratio", math.Inf(1), ""}}},
		{PointSpec{"h-s-1024-0.5", "passkey", "tiny", "sink", map[string]any{"length": 1024, "depth": 0.5, "cache": map[string]any{"size": 256}, "layers": []any{0, 1}}, nil, nil, nil},
			Running, nil},
		{PointSpec{"h-s-8192-0.5", "passkey", "tiny", "sink", map[string]any{"length": 8192, "depth": 0.5, "cache": map[string]any{"size": 256}}, nil, nil, nil},
			Pending, nil},
	}
	ppl := []point{
		{PointSpec{"ppl-full", "perplexity", "tiny", "full", map[string]any{"tokens": 65536, "stride": 4096, "enabled": true}, nil, nil, nil},
			Done, []Metric{{"ppl", 12.5, ""}, {"nll", -0.000123, "nats"}}},
		{PointSpec{"ppl-cascade", "perplexity", "tiny", "cascade", map[string]any{"tokens": 65536, "stride": 4096, "enabled": false}, nil, nil, nil},
			Done, []Metric{{"ppl", 13.75, ""}, {"nll", 2.5, "nats"}}},
	}
	for _, sw := range []struct {
		name   string
		points []point
	}{{"passkey-small", passkey}, {"ppl", ppl}} {
		id, err := db.EnsureSweep(sw.name, "# "+sw.name+"\n")
		if err != nil {
			t.Fatal(err)
		}
		var specs []PointSpec
		for _, p := range sw.points {
			specs = append(specs, p.spec)
		}
		if _, err := db.AddPoints(id, specs); err != nil {
			t.Fatal(err)
		}
		for _, p := range sw.points {
			if p.status == Pending {
				continue
			}
			c, err := db.Claim(id, "w")
			if err != nil {
				t.Fatal(err)
			}
			if c.Hash != p.spec.Hash {
				t.Fatalf("claimed %s, expected %s", c.Hash, p.spec.Hash)
			}
			if p.status == Running {
				continue
			}
			o := Outcome{Metrics: p.metrics}
			if p.status == Failed {
				o.Err = errors.New("out of memory")
			}
			if err := db.Finish(c, o); err != nil {
				t.Fatal(err)
			}
		}
	}
	return db
}

func TestExportGolden(t *testing.T) {
	db := exportFixture(t)
	tests := []struct {
		format, sweep, golden string
	}{
		{"csv", "", "export.csv"},
		{"json", "", "export.json"},
		{"csv", "ppl", "export_ppl.csv"},
		{"json", "ppl", "export_ppl.json"},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			var b bytes.Buffer
			if err := db.Export(&b, tt.format, tt.sweep); err != nil {
				t.Fatal(err)
			}
			if tt.format == "json" {
				var rows []map[string]any
				if err := json.Unmarshal(b.Bytes(), &rows); err != nil {
					t.Fatalf("export is not valid JSON: %v", err)
				}
			}
			path := filepath.Join("testdata", tt.golden)
			if *update {
				if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			if got := b.String(); got != string(want) {
				t.Errorf("export differs from %s (run go test -update to accept):\n%s", path, got)
			}
		})
	}
}

func TestExportErrors(t *testing.T) {
	db := exportFixture(t)
	tests := []struct {
		name, format, sweep, wantErr string
	}{
		{"unknown format", "xlsx", "", "unknown format"},
		{"unknown sweep", "csv", "nope", `no sweep named "nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			err := db.Export(&b, tt.format, tt.sweep)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Export: %v; want an error containing %q", err, tt.wantErr)
			}
			if b.Len() != 0 {
				t.Errorf("Export wrote %q before failing", b.String())
			}
		})
	}
}

func TestExportEmpty(t *testing.T) {
	db := openTemp(t, "empty.db")
	for format, want := range map[string]string{
		"csv":  "sweep,experiment,model,policy,metric,value,unit,status,hash\n",
		"json": "[]\n",
	} {
		var b bytes.Buffer
		if err := db.Export(&b, format, ""); err != nil {
			t.Fatal(err)
		}
		if b.String() != want {
			t.Errorf("%s export of an empty database = %q, want %q", format, b.String(), want)
		}
	}
}

func TestFlattenParams(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]string // key → CSV cell
		wantErr bool
	}{
		{in: `{}`, want: map[string]string{}},
		{in: `{"a":1,"b":{"c":"x","d":{"e":true}},"f":[1,{"g":2}],"h":null,"n":1e400}`,
			want: map[string]string{"a": "1", "b.c": "x", "b.d.e": "true", "f": `[1,{"g":2}]`, "h": "", "n": "1e400"}},
		{in: `{"b":{}}`, want: map[string]string{}},
		{in: `[1]`, wantErr: true},
		{in: `{"a":1} {}`, wantErr: true},
		{in: `{"a":`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := flattenParams([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("flattenParams: %v, want error %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if c := csvParam(got[k]); c != v {
					t.Errorf("%s = %q, want %q", k, c, v)
				}
			}
		})
	}
}

func TestCompareParam(t *testing.T) {
	n := func(s string) json.Number { return json.Number(s) }
	// Each value sorts before the next.
	ordered := []any{nil, false, true, n("-3"), n("2"), n("2.0"), n("10"), n("1e3"), "10", "a", []any{1}}
	for i := range ordered {
		for j := range ordered {
			got := compareParam(ordered[i], true, ordered[j], true)
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got != want {
				t.Errorf("compareParam(%v, %v) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
		if compareParam(nil, false, ordered[i], true) != -1 {
			t.Errorf("a missing value does not sort before %v", ordered[i])
		}
	}
}

func FuzzFlattenParams(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":{"c":"x"}}`))
	f.Add([]byte(`{"a":[1,2],"b":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := flattenParams(data)
		if err != nil {
			return
		}
		for k, v := range m {
			if _, nested := v.(map[string]any); nested {
				t.Errorf("%s is still nested", k)
			}
			csvParam(v)
		}
	})
}
