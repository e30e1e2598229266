package results

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// Status is the state of a point.
type Status string

// The states of a point. A point starts pending, is running while a worker
// holds it and ends done or failed.
const (
	Pending Status = "pending"
	Running Status = "running"
	Done    Status = "done"
	Failed  Status = "failed"
)

// ErrClaimLost is returned (wrapped) by Finish, Heartbeat and AddTelemetry
// when the point is no longer running under the caller's claim: it was put
// back to pending by ResetStale or ResetPoints, claimed again, or filled in by
// Merge.
var ErrClaimLost = errors.New("point is no longer claimed by this worker")

// PointSpec describes a point to add to a sweep.
type PointSpec struct {
	// Hash identifies the point within its sweep: a stable hash of its
	// resolved parameters.
	Hash       string
	Experiment string
	Model      string
	Policy     string
	// Params are the resolved parameters, stored as a JSON object.
	Params map[string]any
}

// Point is a point claimed by a worker.
type Point struct {
	ID         int64
	SweepID    int64
	Hash       string
	Experiment string
	Model      string
	Policy     string
	// Params is the JSON object of the resolved parameters.
	Params json.RawMessage
	Worker string
	// Attempt counts the claims of this point, this one included.
	Attempt int
	// Started is when this claim was made.
	Started time.Time
}

// Metric is one named scalar result of a point.
type Metric struct {
	Name  string
	Value float64
	Unit  string
}

// Outcome is what a worker reports when it finishes a point.
type Outcome struct {
	Metrics []Metric
	// Samples are per-sample records (one JSON value each), stored in order.
	Samples []json.RawMessage
	// Err, if not nil, marks the point failed with Err's text. Metrics and
	// samples are stored either way.
	Err        error
	Provenance Provenance
}

// Telemetry is one time-stamped measurement taken while a point runs, such
// as a GPU's memory or power.
type Telemetry struct {
	// TimeS is the time in seconds since the point started.
	TimeS float64
	Name  string
	Value float64
}

// Counts are the number of points of a sweep in each state.
type Counts struct {
	Pending, Running, Done, Failed int
}

// Total returns the number of points.
func (c Counts) Total() int { return c.Pending + c.Running + c.Done + c.Failed }

// EnsureSweep returns the id of the sweep with this name and configuration
// text, creating it if there is none. Sweeps are identified by name and the
// SHA-256 of config, so editing a configuration makes a new sweep.
func (db *DB) EnsureSweep(name, config string) (int64, error) {
	if name == "" {
		return 0, fmt.Errorf("%s: ensure sweep: empty name", db.path)
	}
	hash := configHash(config)
	var id int64
	err := db.write(func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO sweeps (name, config, config_hash, created) VALUES (?, ?, ?, ?)
			ON CONFLICT (name, config_hash) DO NOTHING`, name, config, hash, stamp(db.now()))
		if err != nil {
			return err
		}
		return tx.QueryRow(`SELECT id FROM sweeps WHERE name = ? AND config_hash = ?`, name, hash).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("%s: ensure sweep %q: %w", db.path, name, err)
	}
	return id, nil
}

// configHash returns the hex SHA-256 of a sweep's configuration text.
func configHash(config string) string {
	h := sha256.Sum256([]byte(config))
	return hex.EncodeToString(h[:])
}

// AddPoints adds points to a sweep as pending, in one transaction, and
// returns how many were new. Points whose hash the sweep already has are left
// as they are, whatever their state. A hash repeated within pts is an error.
func (db *DB) AddPoints(sweep int64, pts []PointSpec) (added int, err error) {
	params := make([]string, len(pts))
	seen := make(map[string]int, len(pts))
	for i, p := range pts {
		if p.Hash == "" {
			return 0, fmt.Errorf("%s: add points: point %d has no hash", db.path, i)
		}
		if j, ok := seen[p.Hash]; ok {
			return 0, fmt.Errorf("%s: add points: points %d and %d have the same hash %s", db.path, j, i, p.Hash)
		}
		seen[p.Hash] = i
		b, err := json.Marshal(p.Params)
		if err != nil {
			return 0, fmt.Errorf("%s: add points: point %s: params: %w", db.path, p.Hash, err)
		}
		if p.Params == nil {
			b = []byte("{}")
		}
		params[i] = string(b)
	}
	err = db.write(func(tx *sql.Tx) error {
		if err := sweepExists(tx, sweep); err != nil {
			return err
		}
		stmt, err := tx.Prepare(`INSERT INTO points (sweep_id, hash, experiment, model, policy, params)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sweep_id, hash) DO NOTHING`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i, p := range pts {
			res, err := stmt.Exec(sweep, p.Hash, p.Experiment, p.Model, p.Policy, params[i])
			if err != nil {
				return fmt.Errorf("point %s: %w", p.Hash, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			added += int(n)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("%s: add points to sweep %d: %w", db.path, sweep, err)
	}
	return added, nil
}

// sweepExists returns an error if there is no sweep with this id.
func sweepExists(tx *sql.Tx, sweep int64) error {
	var n int
	if err := tx.QueryRow(`SELECT count(*) FROM sweeps WHERE id = ?`, sweep).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("no sweep with id %d", sweep)
	}
	return nil
}

// Claim atomically takes the first pending point of a sweep (in the order
// the points were added), marks it running under worker (a name for the
// record, such as "host:pid:gpu0") and returns it. It returns nil, nil when
// the sweep has no pending point. Results left over from earlier attempts of
// the point (telemetry of a crashed worker) are discarded. To re-run finished
// points, put them back with ResetPoints; to take over the points of dead
// workers, use ResetStale.
func (db *DB) Claim(sweep int64, worker string) (*Point, error) {
	return db.ClaimAmong(sweep, worker, nil)
}

// ClaimAmong is Claim restricted to the pending points whose hash is in
// hashes (all pending points when hashes is nil), so that a run of one
// shard of a sweep never takes another shard's points.
func (db *DB) ClaimAmong(sweep int64, worker string, hashes []string) (*Point, error) {
	if worker == "" {
		return nil, fmt.Errorf("%s: claim: empty worker name", db.path)
	}
	var p *Point
	err := db.write(func(tx *sql.Tx) error {
		now := db.now()
		q := &Point{SweepID: sweep, Worker: worker, Started: now.UTC()}
		var params string
		pick := `SELECT id FROM points WHERE sweep_id = ? AND status = 'pending' ORDER BY id LIMIT 1`
		args := []any{worker, stamp(now), stamp(now), sweep}
		if hashes != nil {
			set, err := json.Marshal(hashes)
			if err != nil {
				return err
			}
			pick = `SELECT id FROM points WHERE sweep_id = ? AND status = 'pending'
				AND hash IN (SELECT value FROM json_each(?)) ORDER BY id LIMIT 1`
			args = append(args, string(set))
		}
		err := tx.QueryRow(`UPDATE points SET status = 'running', worker = ?, attempt = attempt + 1,
				started = ?, heartbeat = ?, finished = NULL, duration_s = NULL, error = ''
			WHERE id = (`+pick+`)
			RETURNING id, hash, experiment, model, policy, params, attempt`, args...).
			Scan(&q.ID, &q.Hash, &q.Experiment, &q.Model, &q.Policy, &params, &q.Attempt)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		q.Params = json.RawMessage(params)
		if err := clearResults(tx, q.ID); err != nil {
			return err
		}
		p = q
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: claim a point of sweep %d: %w", db.path, sweep, err)
	}
	return p, nil
}

// clearResults deletes everything stored for a point.
func clearResults(tx *sql.Tx, point int64) error {
	for _, table := range []string{"metrics", "samples", "telemetry"} {
		if _, err := tx.Exec(`DELETE FROM `+table+` WHERE point_id = ?`, point); err != nil {
			return fmt.Errorf("clear %s of point %d: %w", table, point, err)
		}
	}
	return nil
}

// checkClaim returns ErrClaimLost unless p is still running under its claim.
func checkClaim(tx *sql.Tx, p *Point) error {
	var status string
	var attempt int
	err := tx.QueryRow(`SELECT status, attempt FROM points WHERE id = ?`, p.ID).Scan(&status, &attempt)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("no point with id %d", p.ID)
	}
	if err != nil {
		return err
	}
	if Status(status) != Running || attempt != p.Attempt {
		return fmt.Errorf("%w (attempt %d; the point is %s at attempt %d)", ErrClaimLost, p.Attempt, status, attempt)
	}
	return nil
}

// Heartbeat records that the worker holding p is alive. It returns an error
// wrapping ErrClaimLost if p is no longer running under this claim; the
// worker should then abandon the point.
func (db *DB) Heartbeat(p *Point) error {
	if p == nil {
		return fmt.Errorf("%s: heartbeat: nil point", db.path)
	}
	res, err := db.w.Exec(`UPDATE points SET heartbeat = ? WHERE id = ? AND status = 'running' AND attempt = ?`,
		stamp(db.now()), p.ID, p.Attempt)
	if err != nil {
		return fmt.Errorf("%s: heartbeat of point %s: %w", db.path, p.Hash, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("%s: heartbeat of point %s: %w", db.path, p.Hash, err)
	} else if n == 0 {
		return fmt.Errorf("%s: heartbeat of point %s: %w", db.path, p.Hash, ErrClaimLost)
	}
	return nil
}

// Finish stores a point's outcome in one transaction: its metrics and
// samples, its provenance, and its status (done, or failed with o.Err's
// text). After a crash a point is therefore either wholly stored or still
// running. Metric names must be unique within o and samples valid JSON.
// Finish returns an error wrapping ErrClaimLost, and stores nothing, if p is
// no longer running under this claim.
func (db *DB) Finish(p *Point, o Outcome) error {
	if p == nil {
		return fmt.Errorf("%s: finish: nil point", db.path)
	}
	for i, s := range o.Samples {
		if !json.Valid(s) {
			return fmt.Errorf("%s: finish point %s: sample %d is not valid JSON", db.path, p.Hash, i)
		}
	}
	status, errText := Done, ""
	if o.Err != nil {
		status, errText = Failed, o.Err.Error()
	}
	err := db.write(func(tx *sql.Tx) error {
		// Claim cleared earlier attempts' results; telemetry of this one stays.
		if err := checkClaim(tx, p); err != nil {
			return err
		}
		if err := insertMetrics(tx, p.ID, o.Metrics); err != nil {
			return err
		}
		if err := insertSamples(tx, p.ID, o.Samples); err != nil {
			return err
		}
		now := db.now()
		pv := o.Provenance
		_, err := tx.Exec(`UPDATE points SET status = ?, error = ?, finished = ?, duration_s = ?,
				host = ?, cpu = ?, gpu = ?, driver = ?, go_version = ?, git_revision = ?, backend = ?, dtype = ?
			WHERE id = ?`,
			string(status), errText, stamp(now), now.Sub(p.Started).Seconds(),
			pv.Host, pv.CPU, pv.GPU, pv.Driver, pv.GoVersion, pv.GitRevision, pv.Backend, pv.DType, p.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: finish point %s: %w", db.path, p.Hash, err)
	}
	return nil
}

// insertMetrics stores a point's metrics. NaN is stored as NULL.
func insertMetrics(tx *sql.Tx, point int64, ms []Metric) error {
	if len(ms) == 0 {
		return nil
	}
	stmt, err := tx.Prepare(`INSERT INTO metrics (point_id, name, value, unit) VALUES (?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, m := range ms {
		if m.Name == "" {
			return errors.New("metric with empty name")
		}
		v := sql.NullFloat64{Float64: m.Value, Valid: !math.IsNaN(m.Value)}
		if _, err := stmt.Exec(point, m.Name, v, m.Unit); err != nil {
			return fmt.Errorf("metric %q: %w", m.Name, err)
		}
	}
	return nil
}

// insertSamples stores a point's samples in order.
func insertSamples(tx *sql.Tx, point int64, samples []json.RawMessage) error {
	if len(samples) == 0 {
		return nil
	}
	stmt, err := tx.Prepare(`INSERT INTO samples (point_id, idx, data) VALUES (?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for i, s := range samples {
		if _, err := stmt.Exec(point, i, string(s)); err != nil {
			return fmt.Errorf("sample %d: %w", i, err)
		}
	}
	return nil
}

// AddTelemetry appends measurements taken while p runs. Like Finish it
// returns an error wrapping ErrClaimLost if p is no longer running under this
// claim. Telemetry of an attempt that did not finish is discarded when the
// point is claimed again.
func (db *DB) AddTelemetry(p *Point, ts []Telemetry) error {
	if p == nil {
		return fmt.Errorf("%s: add telemetry: nil point", db.path)
	}
	err := db.write(func(tx *sql.Tx) error {
		if err := checkClaim(tx, p); err != nil {
			return err
		}
		stmt, err := tx.Prepare(`INSERT INTO telemetry (point_id, t_s, name, value) VALUES (?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, t := range ts {
			v := sql.NullFloat64{Float64: t.Value, Valid: !math.IsNaN(t.Value)}
			if _, err := stmt.Exec(p.ID, t.TimeS, t.Name, v); err != nil {
				return fmt.Errorf("telemetry %q at %g s: %w", t.Name, t.TimeS, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: add telemetry to point %s: %w", db.path, p.Hash, err)
	}
	return nil
}

// ResetStale puts the running points of a sweep whose last heartbeat is
// older than olderThan back to pending, and returns how many it reset. With
// olderThan 0 every running point is reset, which is right only when no
// worker is alive (after a crash of the only process).
func (db *DB) ResetStale(sweep int64, olderThan time.Duration) (int, error) {
	cutoff := stamp(db.now().Add(-olderThan))
	res, err := db.w.Exec(`UPDATE points SET status = 'pending'
		WHERE sweep_id = ? AND status = 'running' AND (heartbeat IS NULL OR heartbeat <= ?)`, sweep, cutoff)
	if err != nil {
		return 0, fmt.Errorf("%s: reset stale points of sweep %d: %w", db.path, sweep, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("%s: reset stale points of sweep %d: %w", db.path, sweep, err)
	}
	return int(n), nil
}

// ResetPoints puts done and failed points of a sweep back to pending,
// deleting their metrics, samples and telemetry, so that they run again; it
// returns how many it reset. A nil hashes resets every done or failed point
// of the sweep. Pending and running points, and hashes the sweep does not
// have, are left alone.
func (db *DB) ResetPoints(sweep int64, hashes []string) (int, error) {
	var n int
	err := db.write(func(tx *sql.Tx) error {
		var ids []int64
		seen := make(map[int64]bool)
		collect := func(rows *sql.Rows, err error) error {
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var id int64
				if err := rows.Scan(&id); err != nil {
					return err
				}
				if !seen[id] {
					seen[id] = true
					ids = append(ids, id)
				}
			}
			return rows.Err()
		}
		const q = `SELECT id FROM points WHERE sweep_id = ? AND status IN ('done', 'failed')`
		if hashes == nil {
			if err := collect(tx.Query(q+` ORDER BY id`, sweep)); err != nil {
				return err
			}
		} else {
			for _, h := range hashes {
				if err := collect(tx.Query(q+` AND hash = ?`, sweep, h)); err != nil {
					return err
				}
			}
		}
		for _, id := range ids {
			if err := clearResults(tx, id); err != nil {
				return err
			}
			if _, err := tx.Exec(`UPDATE points SET status = 'pending', error = '' WHERE id = ?`, id); err != nil {
				return err
			}
		}
		n = len(ids)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("%s: reset points of sweep %d: %w", db.path, sweep, err)
	}
	return n, nil
}

// Status counts the points of a sweep in each state.
func (db *DB) Status(sweep int64) (Counts, error) {
	var c Counts
	rows, err := db.r.Query(`SELECT status, count(*) FROM points WHERE sweep_id = ? GROUP BY status`, sweep)
	if err != nil {
		return c, fmt.Errorf("%s: status of sweep %d: %w", db.path, sweep, err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return c, fmt.Errorf("%s: status of sweep %d: %w", db.path, sweep, err)
		}
		switch Status(s) {
		case Pending:
			c.Pending = n
		case Running:
			c.Running = n
		case Done:
			c.Done = n
		case Failed:
			c.Failed = n
		}
	}
	if err := rows.Err(); err != nil {
		return c, fmt.Errorf("%s: status of sweep %d: %w", db.path, sweep, err)
	}
	return c, nil
}
