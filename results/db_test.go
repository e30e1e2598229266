package results

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// schemaOf returns the schema text and version of an open database.
func schemaOf(t *testing.T, db *DB) (string, int) {
	t.Helper()
	rows, err := db.r.Query(`SELECT type, name, coalesce(sql, '') FROM sqlite_schema ORDER BY type, name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var typ, name, sql string
		if err := rows.Scan(&typ, &name, &sql); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %s %s\n", typ, name, sql)
	}
	v, err := db.SchemaVersion()
	if err != nil {
		t.Fatal(err)
	}
	return b.String(), v
}

func TestMigrations(t *testing.T) {
	latest := len(migrations)
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string) // makes the file before Open
		wantErr string                          // "" if Open must succeed
	}{
		{name: "fresh", prepare: func(*testing.T, string) {}},
		{name: "empty file", prepare: func(t *testing.T, path string) {
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "reopen", prepare: func(t *testing.T, path string) {
			db, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.EnsureSweep("kept", testConfig); err != nil {
				t.Fatal(err)
			}
			db.Close()
		}},
		{name: "newer schema", prepare: func(t *testing.T, path string) {
			db, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			db.Close()
			rawExec(t, path, fmt.Sprintf("PRAGMA user_version = %d", latest+1))
		}, wantErr: "newer than this program supports"},
		{name: "foreign database", prepare: func(t *testing.T, path string) {
			rawExec(t, path, "CREATE TABLE other (x)")
		}, wantErr: "not a results database"},
		{name: "foreign application id", prepare: func(t *testing.T, path string) {
			rawExec(t, path, "PRAGMA application_id = 42")
		}, wantErr: "not a results database"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "r.db")
			tt.prepare(t, path)
			db, err := Open(path)
			if tt.wantErr != "" {
				if err == nil {
					db.Close()
					t.Fatalf("Open succeeded; want an error containing %q", tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("Open: %v; want an error containing %q and the path", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			schema, v := schemaOf(t, db)
			if v != latest {
				t.Errorf("schema version %d, want %d", v, latest)
			}
			var appID int
			if err := db.r.QueryRow("PRAGMA application_id").Scan(&appID); err != nil || appID != applicationID {
				t.Errorf("application id %#x (%v), want %#x", appID, err, applicationID)
			}
			db.Close()

			// Opening again changes nothing.
			db, err = Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			schema2, v2 := schemaOf(t, db)
			if schema2 != schema || v2 != v {
				t.Errorf("reopening changed the schema:\n%s\nversion %d\nto\n%s\nversion %d", schema, v, schema2, v2)
			}
		})
	}
}

func TestOpenCorrupt(t *testing.T) {
	// realDB writes a results database of a few hundred kilobytes.
	realDB := func(t *testing.T, path string) []byte {
		db, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		id, err := db.EnsureSweep("s", testConfig)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.AddPoints(id, specs(50)); err != nil {
			t.Fatal(err)
		}
		if err := work(db, id, "w", 8, 512, func(string) {}); err != nil {
			t.Fatal(err)
		}
		db.Close()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name string
		make func(t *testing.T, path string) []byte // returns the file's bytes
	}{
		{"random bytes", func(t *testing.T, path string) []byte {
			b := make([]byte, 64<<10)
			r := rand.New(rand.NewPCG(1, 2))
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			return b
		}},
		{"text", func(*testing.T, string) []byte { return []byte("experiment = \"passkey\"\n") }},
		{"truncated to half", func(t *testing.T, path string) []byte {
			b := realDB(t, path)
			return b[:len(b)/2]
		}},
		{"truncated to one page and a bit", func(t *testing.T, path string) []byte {
			b := realDB(t, path)
			return b[:4096+100]
		}},
		{"truncated header", func(t *testing.T, path string) []byte {
			b := realDB(t, path)
			return b[:50]
		}},
		{"zeroed pages", func(t *testing.T, path string) []byte {
			b := realDB(t, path)
			clear(b[len(b)/3 : 2*len(b)/3])
			return b
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.db")
			b := tt.make(t, path)
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			db, err := Open(path)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded on a damaged file")
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the path", err)
			}
			t.Log(err)
		})
	}

	t.Run("directory", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), dir) {
			t.Errorf("Open(directory): %v; want an error naming it", err)
		}
	})
}

func TestOddPath(t *testing.T) {
	// Characters that mean something in a file: URI must still name the
	// file literally.
	dir := t.TempDir()
	path := filepath.Join(dir, "a b?c#d%41&e=f.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	sweep, err := db.EnsureSweep("odd", testConfig)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.AddPoints(sweep, specs(3)); err != nil {
		t.Fatal(err)
	}
	if err := work(db, sweep, "w", 1, 1, func(string) {}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != filepath.Base(path) {
		t.Fatalf("directory holds %v, want only %q", entries, filepath.Base(path))
	}
	dest := openTemp(t, "dest.db")
	if added, err := dest.Merge(path); err != nil || added != 3 {
		t.Errorf("Merge: %d, %v; want 3 points", added, err)
	}
}
