// Package results stores the outcome of sweeps in an SQLite database.
//
// A sweep (a named TOML configuration) expands into points, one per cell of
// its parameter grid, each identified by a stable hash of its resolved
// parameters. Workers claim pending points, run them and finish them with
// their metrics and samples; a point is either wholly stored (status done or
// failed, with all its metrics and samples) or not at all, because Finish
// writes everything in one transaction.
//
// A point's settings (chunk, backend), its experiment's parameters and its
// policy's parameters are stored apart, each a JSON object, with the kinds
// of figure its experiment draws; Flatten joins the parameters into the one
// flat object the export writes.
//
// # Versions
//
// A sweep is identified by its name. Each configuration text registered
// under a name (EnsureSweep) is a version of the sweep with its own points;
// the version registered last is the current one. CarryOver fills a new
// version's points from the done points of other versions with the same
// hash, and readers (Filter, Export, Sweeps) see the current version of each
// sweep unless they pick another (NAME@N), never several at once.
//
// The database runs in WAL mode and is safe for many goroutines and many
// processes on one host writing at once: every write transaction starts with
// BEGIN IMMEDIATE, so writers queue on SQLite's busy timeout instead of
// deadlocking when a reader upgrades to a writer. Across hosts (Slurm job
// arrays) give every task its own database file and fold the shards together
// with Merge; SQLite's WAL mode does not work on network file systems.
//
// # Stale points
//
// A claimed point carries a heartbeat timestamp, set by Claim and refreshed by
// Heartbeat. A worker that runs a point for longer than a few minutes calls
// Heartbeat periodically (say every 30 s); ResetStale puts 'running' points
// whose heartbeat is older than a given age back to pending. Every claim
// increments the point's attempt counter, and Finish, Heartbeat and
// AddTelemetry succeed only while the point is still running under the
// attempt the worker claimed, so a worker that was wrongly declared dead gets
// ErrClaimLost instead of writing over a later attempt. Process ids are not
// used: they are reused, differ across PID namespaces and hosts, and a hung
// process is alive without making progress.
package results

import (
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3" // the "sqlite3" driver and its error codes
)

// applicationID marks a kvcascade results database (PRAGMA application_id):
// "kvca" in ASCII.
const applicationID = 0x6b766361

// timeLayout is how timestamps are stored: fixed width UTC, so that text
// order is time order and SQLite's date functions read it.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// DB is an open results database. Its methods are safe for concurrent use.
type DB struct {
	path string // as given to Open, for messages
	abs  string // absolute
	// w runs writes: one connection, every transaction BEGIN IMMEDIATE.
	w *sql.DB
	// r runs reads; its transactions are deferred snapshots.
	r *sql.DB
	// now is the clock; tests replace it.
	now func() time.Time
	// opt is what OpenWith was given; Merge opens its sources with it.
	opt Options
}

// Open opens the results database at path, creating it if it does not exist,
// checks that it is an intact SQLite database (PRAGMA quick_check) written by
// this package, and applies any schema migrations it lacks, each in its own
// transaction. A database written by a newer version of this package is
// refused. Errors name the path.
//
// A database of schema 3 or older whose points hold parameters is refused:
// splitting them needs the experiments' declarations (OpenWith).
func Open(path string) (*DB, error) { return OpenWith(path, Options{}) }

// OpenWith is Open with options: the experiments' declarations that the
// migration to schema 4 splits old points' parameters with.
func OpenWith(path string, opt Options) (*DB, error) {
	// Processes that open a new file at the same moment race to switch it
	// to WAL mode and to migrate it; SQLite answers the losers "database is
	// locked" at once rather than through the busy handler, so such an open
	// is tried again, with backoff, for up to about half a minute.
	var err error
	for attempt := 0; attempt < 40; attempt++ {
		var db *DB
		if db, err = open(path, opt); err == nil || !isLocked(err) {
			return db, err
		}
		time.Sleep(time.Duration(min(attempt+1, 20)) * 40 * time.Millisecond)
	}
	return nil, err
}

// isLocked reports whether err is SQLite's busy or locked condition.
func isLocked(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) && (se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked) {
		return true
	}
	return strings.Contains(err.Error(), "database is locked")
}

func open(path string, opt Options) (*DB, error) {
	if path == "" {
		return nil, errors.New("results: open: empty path")
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("results: open %s: is a directory", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("results: open %s: %w", path, err)
	}
	base := "file:" + (&url.URL{Path: abs}).EscapedPath() +
		"?_journal_mode=WAL&_busy_timeout=10000&_foreign_keys=on"
	w, err := sql.Open("sqlite3", base+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("results: open %s: %w", path, err)
	}
	r, err := sql.Open("sqlite3", base+"&_txlock=deferred")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("results: open %s: %w", path, err)
	}
	// In-process writers queue on the pool rather than spinning on SQLite's
	// busy handler; other processes still wait on the busy timeout.
	w.SetMaxOpenConns(1)
	r.SetMaxOpenConns(4)
	db := &DB{path: path, abs: abs, w: w, r: r, now: time.Now, opt: opt}
	if err := db.check(); err != nil {
		db.Close()
		return nil, fmt.Errorf("results: open %s: %w", path, err)
	}
	if err := db.migrate(); err != nil {
		db.Close()
		return nil, fmt.Errorf("results: open %s: %w", path, err)
	}
	return db, nil
}

// Path returns the path the database was opened with.
func (db *DB) Path() string { return db.path }

// Close closes the database.
func (db *DB) Close() error {
	return errors.Join(db.w.Close(), db.r.Close())
}

// check verifies that the file is an intact SQLite database that this
// package may use.
func (db *DB) check() error {
	// The first connection reads the header and switches to WAL; a file
	// that is not a database fails here.
	if err := db.w.Ping(); err != nil {
		var serr sqlite3.Error
		if errors.As(err, &serr) && (serr.Code == sqlite3.ErrNotADB || serr.Code == sqlite3.ErrCorrupt) {
			return fmt.Errorf("not an intact SQLite database: %w", err)
		}
		return err
	}
	rows, err := db.r.Query("PRAGMA quick_check(3)")
	if err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return fmt.Errorf("integrity check: %w", err)
		}
		if s != "ok" {
			problems = append(problems, strings.ReplaceAll(s, "\n", "; "))
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("database is corrupt: %s", strings.Join(problems, "; "))
	}
	// One statement, so one snapshot: read separately, another process's
	// migration could commit between the reads and show tables without
	// their schema version.
	var appID, version, tables int
	err = db.r.QueryRow(`SELECT (SELECT application_id FROM pragma_application_id),
		(SELECT user_version FROM pragma_user_version), (SELECT count(*) FROM sqlite_schema)`).Scan(&appID, &version, &tables)
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	switch {
	case appID != 0 && appID != applicationID:
		return fmt.Errorf("not a results database (application id %#x)", appID)
	case appID == 0 && version == 0 && tables > 0:
		return errors.New("not a results database (it has tables but no results schema version)")
	case version > len(migrations):
		return fmt.Errorf("schema version %d is newer than this program supports (%d); use a newer kvcascade", version, len(migrations))
	}
	return nil
}

// SchemaVersion returns the database's schema version (PRAGMA user_version).
func (db *DB) SchemaVersion() (int, error) {
	var v int
	if err := db.r.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("%s: read schema version: %w", db.path, err)
	}
	return v, nil
}

// migrate applies the missing migrations, one transaction each. Several
// processes may open a new database at once: each step re-reads the version
// inside its write transaction, so every step runs exactly once.
func (db *DB) migrate() error {
	for {
		done, err := db.migrateStep()
		if err != nil || done {
			return err
		}
	}
}

// migrateStep applies the next missing migration and reports whether the
// schema was already current.
func (db *DB) migrateStep() (current bool, err error) {
	tx, err := db.w.Begin()
	if err != nil {
		return false, fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		return false, fmt.Errorf("migrate: read schema version: %w", err)
	}
	switch {
	case v > len(migrations):
		return false, fmt.Errorf("schema version %d is newer than this program supports (%d); use a newer kvcascade", v, len(migrations))
	case v == len(migrations):
		return true, nil
	}
	if _, err := tx.Exec(migrations[v]); err != nil {
		return false, fmt.Errorf("migrate to schema version %d: %w", v+1, err)
	}
	if v+1 == splitVersion {
		if err := splitParams(tx, db.opt); err != nil {
			return false, fmt.Errorf("migrate to schema version %d: %w", v+1, err)
		}
	}
	if _, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
		return false, fmt.Errorf("migrate to schema version %d: %w", v+1, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migrate to schema version %d: %w", v+1, err)
	}
	return false, nil
}

// write runs fn in one write transaction (BEGIN IMMEDIATE) and commits it,
// or rolls it back if fn fails.
func (db *DB) write(fn func(tx *sql.Tx) error) error {
	tx, err := db.w.Begin()
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// stamp formats t for storage.
func stamp(t time.Time) string { return t.UTC().Format(timeLayout) }

// parseStamp reads a stored timestamp; NULL or empty is the zero time.
func parseStamp(s sql.NullString) (time.Time, error) {
	if !s.Valid || s.String == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(timeLayout, s.String)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad timestamp %q: %w", s.String, err)
	}
	return t, nil
}
