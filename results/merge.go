package results

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
)

// pointColumns are the columns of points that Merge copies (all but id and
// sweep_id).
const pointColumns = `hash, experiment, model, policy, params, status, error, started, finished, duration_s,
	host, cpu, gpu, driver, go_version, git_revision, worker, attempt, heartbeat, backend, dtype,
	experiment_params, policy_params, figures`

// Merge folds the results database at src (a shard written by another task)
// into db, in one transaction, and returns how many points it copied. Sweeps
// are matched by name and configuration hash (missing ones are created),
// points by sweep and hash. Only done and failed points of src are copied,
// with their metrics, samples and telemetry:
//   - a point db lacks is added;
//   - a point that is pending or running in db is replaced by src's;
//   - a point that failed in db is replaced if it is done in src;
//   - a point that is done in db is kept.
//
// Merging the same source again therefore changes nothing. src is checked and
// migrated like Open does (with db's options); it is otherwise only read.
func (db *DB) Merge(src string) (added int, err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("%s: merge %s: %w", db.path, src, err)
		}
	}()
	fi, err := os.Stat(src)
	if err != nil {
		return 0, err
	}
	if self, err := os.Stat(db.abs); err == nil && os.SameFile(fi, self) {
		return 0, errors.New("cannot merge a database into itself")
	}
	s, err := OpenWith(src, db.opt)
	if err != nil {
		return 0, err
	}
	if err := s.Close(); err != nil {
		return 0, err
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return 0, err
	}

	ctx := context.Background()
	conn, err := db.w.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `ATTACH DATABASE ? AS src`, "file:"+(&url.URL{Path: abs}).EscapedPath()); err != nil {
		return 0, fmt.Errorf("attach: %w", err)
	}
	defer func() {
		if _, derr := conn.ExecContext(ctx, `DETACH DATABASE src`); derr != nil {
			// Do not hand a connection with the source attached back to the
			// pool.
			conn.Raw(func(any) error { return driver.ErrBadConn })
			err = errors.Join(err, fmt.Errorf("detach: %w", derr))
		}
	}()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	added, err = mergeAttached(tx)
	if err != nil {
		tx.Rollback()
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	return added, nil
}

// mergeAttached merges the database attached as src into main within tx.
func mergeAttached(tx *sql.Tx) (int, error) {
	// A version new here comes after every version here, in src's order.
	if _, err := tx.Exec(`INSERT INTO main.sweeps (name, config, config_hash, created, seq)
		SELECT name, config, config_hash, created, (SELECT coalesce(max(seq), 0) FROM main.sweeps) + seq
		FROM src.sweeps WHERE true ORDER BY seq
		ON CONFLICT (name, config_hash) DO NOTHING`); err != nil {
		return 0, fmt.Errorf("copy sweeps: %w", err)
	}
	type candidate struct {
		src, sweep int64
		dst        sql.NullInt64
		srcStatus  Status
		dstStatus  sql.NullString
	}
	rows, err := tx.Query(`SELECT sp.id, d.id, sp.status, dp.id, dp.status
		FROM src.points sp
		JOIN src.sweeps ss ON ss.id = sp.sweep_id
		JOIN main.sweeps d ON d.name = ss.name AND d.config_hash = ss.config_hash
		LEFT JOIN main.points dp ON dp.sweep_id = d.id AND dp.hash = sp.hash
		WHERE sp.status IN ('done', 'failed')
		ORDER BY sp.id`)
	if err != nil {
		return 0, fmt.Errorf("list points: %w", err)
	}
	var cands []candidate
	for rows.Next() {
		var c candidate
		var status string
		if err := rows.Scan(&c.src, &c.sweep, &status, &c.dst, &c.dstStatus); err != nil {
			rows.Close()
			return 0, fmt.Errorf("list points: %w", err)
		}
		c.srcStatus = Status(status)
		cands = append(cands, c)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, fmt.Errorf("list points: %w", err)
	}

	added := 0
	for _, c := range cands {
		var dst int64
		switch {
		case !c.dst.Valid:
			err := tx.QueryRow(`INSERT INTO main.points (sweep_id, `+pointColumns+`)
				SELECT ?, `+pointColumns+` FROM src.points WHERE id = ? RETURNING id`, c.sweep, c.src).Scan(&dst)
			if err != nil {
				return 0, fmt.Errorf("copy point %d: %w", c.src, err)
			}
		case replaces(c.srcStatus, Status(c.dstStatus.String)):
			dst = c.dst.Int64
			if _, err := tx.Exec(`UPDATE main.points SET (`+pointColumns+`) =
				(SELECT `+pointColumns+` FROM src.points WHERE id = ?) WHERE id = ?`, c.src, dst); err != nil {
				return 0, fmt.Errorf("copy point %d: %w", c.src, err)
			}
			if err := clearResults(tx, dst); err != nil {
				return 0, err
			}
		default:
			continue
		}
		for _, q := range []string{
			`INSERT INTO main.metrics (point_id, name, value, unit) SELECT ?, name, value, unit FROM src.metrics WHERE point_id = ?`,
			`INSERT INTO main.samples (point_id, idx, data) SELECT ?, idx, data FROM src.samples WHERE point_id = ?`,
			`INSERT INTO main.telemetry (point_id, t_s, name, value) SELECT ?, t_s, name, value FROM src.telemetry WHERE point_id = ? ORDER BY rowid`,
		} {
			if _, err := tx.Exec(q, dst, c.src); err != nil {
				return 0, fmt.Errorf("copy results of point %d: %w", c.src, err)
			}
		}
		added++
	}
	return added, nil
}

// replaces reports whether a finished point of a source replaces the
// destination's point in state dst.
func replaces(src, dst Status) bool {
	switch dst {
	case Pending, Running:
		return true
	case Failed:
		return src == Done
	}
	return false
}
