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
	// Params are the point's settings (chunk, backend, …), stored as a JSON
	// object.
	Params map[string]any
	// ExperimentParams and PolicyParams are the JSON objects of the
	// experiment's and the policy's resolved parameters, stored apart and
	// as written (the experiment's in the order it declares them); nil
	// stores {}.
	ExperimentParams, PolicyParams json.RawMessage
	// Figures are the kinds of figure the point's experiment draws.
	Figures []string
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

// EnsureSweep returns the id of the version of the sweep name whose
// configuration text is config, creating it if there is none, and makes it
// the sweep's current version (the one Filter selects by name). A sweep is
// identified by its name; each text it has been run with is a version of
// it, so an edited file is a new version of the same sweep, and CarryOver
// brings its finished points over.
func (db *DB) EnsureSweep(name, config string) (int64, error) {
	if name == "" {
		return 0, fmt.Errorf("%s: ensure sweep: empty name", db.path)
	}
	hash := configHash(config)
	var id int64
	err := db.write(func(tx *sql.Tx) error {
		const next = `(SELECT coalesce(max(seq), 0) + 1 FROM sweeps)`
		_, err := tx.Exec(`INSERT INTO sweeps (name, config, config_hash, created, seq) VALUES (?, ?, ?, ?, `+next+`)
			ON CONFLICT (name, config_hash) DO NOTHING`, name, config, hash, stamp(db.now()))
		if err != nil {
			return err
		}
		if err := tx.QueryRow(`SELECT id FROM sweeps WHERE name = ? AND config_hash = ?`, name, hash).Scan(&id); err != nil {
			return err
		}
		// A version run again after a newer one becomes current again.
		_, err = tx.Exec(`UPDATE sweeps SET seq = `+next+` WHERE id = ? AND seq < (SELECT max(seq) FROM sweeps WHERE name = ?)`, id, name)
		return err
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
	cols := make([][4]string, len(pts)) // params, experiment_params, policy_params, figures
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
		cols[i][0] = string(b)
		for c, x := range []struct {
			name string
			raw  json.RawMessage
		}{{"experiment params", p.ExperimentParams}, {"policy params", p.PolicyParams}} {
			var obj map[string]json.RawMessage
			switch {
			case x.raw == nil:
				cols[i][c+1] = "{}"
			case json.Unmarshal(x.raw, &obj) != nil || obj == nil:
				return 0, fmt.Errorf("%s: add points: point %s: %s: want a JSON object, got %.40q", db.path, p.Hash, x.name, x.raw)
			default:
				cols[i][c+1] = string(x.raw)
			}
		}
		figs, err := json.Marshal(p.Figures)
		if err != nil || p.Figures == nil {
			figs = []byte("[]")
		}
		cols[i][3] = string(figs)
	}
	err = db.write(func(tx *sql.Tx) error {
		if err := sweepExists(tx, sweep); err != nil {
			return err
		}
		stmt, err := tx.Prepare(`INSERT INTO points (sweep_id, hash, experiment, model, policy, params,
				experiment_params, policy_params, figures)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sweep_id, hash) DO NOTHING`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i, p := range pts {
			res, err := stmt.Exec(sweep, p.Hash, p.Experiment, p.Model, p.Policy, cols[i][0], cols[i][1], cols[i][2], cols[i][3])
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

// carriedColumns are the columns of a finished point that CarryOver copies:
// its outcome and provenance, not what identifies it in its version.
const carriedColumns = `status, error, started, finished, duration_s,
	host, cpu, gpu, driver, go_version, git_revision, worker, attempt, heartbeat`

// CarryOver fills each pending point of a sweep version with the outcome of
// a done point of the same hash in another version of the sweep (same
// name): its status, provenance, metrics, samples and telemetry, from the
// most recently finished such point. It returns how many points it filled.
// Finished points are so found by their hash: a version that differs from
// an earlier one only in comments runs nothing, and one that adds a policy
// runs only the new points. Failed points are not carried over; they run
// again.
func (db *DB) CarryOver(sweep int64) (int, error) {
	n := 0
	err := db.write(func(tx *sql.Tx) error {
		rows, err := tx.Query(`SELECT p.id, (SELECT o.id FROM points o JOIN sweeps os ON os.id = o.sweep_id
				WHERE os.name = s.name AND o.sweep_id != p.sweep_id AND o.hash = p.hash AND o.status = 'done'
				ORDER BY o.finished DESC, o.id DESC LIMIT 1)
			FROM points p JOIN sweeps s ON s.id = p.sweep_id
			WHERE p.sweep_id = ? AND p.status = 'pending' ORDER BY p.id`, sweep)
		if err != nil {
			return err
		}
		var pairs [][2]int64
		for rows.Next() {
			var dst int64
			var src sql.NullInt64
			if err := rows.Scan(&dst, &src); err != nil {
				rows.Close()
				return err
			}
			if src.Valid {
				pairs = append(pairs, [2]int64{dst, src.Int64})
			}
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		for _, pr := range pairs {
			dst, src := pr[0], pr[1]
			if err := clearResults(tx, dst); err != nil {
				return err
			}
			for _, q := range []string{
				`UPDATE points SET (` + carriedColumns + `) = (SELECT ` + carriedColumns + ` FROM points WHERE id = ?2) WHERE id = ?1`,
				`INSERT INTO metrics (point_id, name, value, unit) SELECT ?1, name, value, unit FROM metrics WHERE point_id = ?2`,
				`INSERT INTO samples (point_id, idx, data) SELECT ?1, idx, data FROM samples WHERE point_id = ?2`,
				`INSERT INTO telemetry (point_id, t_s, name, value) SELECT ?1, t_s, name, value FROM telemetry WHERE point_id = ?2 ORDER BY rowid`,
			} {
				if _, err := tx.Exec(q, dst, src); err != nil {
					return fmt.Errorf("carry point %d over to %d: %w", src, dst, err)
				}
			}
		}
		n = len(pairs)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("%s: carry finished points over to sweep %d: %w", db.path, sweep, err)
	}
	return n, nil
}

// DoneHashes returns the hashes of the done points of every version of the
// sweep name: the points a run of any version would not run again.
func (db *DB) DoneHashes(name string) (map[string]bool, error) {
	rows, err := db.r.Query(`SELECT DISTINCT p.hash FROM points p JOIN sweeps s ON s.id = p.sweep_id
		WHERE s.name = ? AND p.status = 'done'`, name)
	if err != nil {
		return nil, fmt.Errorf("%s: done points of sweep %q: %w", db.path, name, err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, fmt.Errorf("%s: done points of sweep %q: %w", db.path, name, err)
		}
		out[h] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: done points of sweep %q: %w", db.path, name, err)
	}
	return out, nil
}

// Release puts a point this worker holds back to pending at once, as if it
// had never been claimed (its telemetry is discarded): for a run that is
// interrupted. It returns an error wrapping ErrClaimLost if p is no longer
// running under this claim.
func (db *DB) Release(p *Point) error {
	if p == nil {
		return fmt.Errorf("%s: release: nil point", db.path)
	}
	err := db.write(func(tx *sql.Tx) error {
		if err := checkClaim(tx, p); err != nil {
			return err
		}
		if err := clearResults(tx, p.ID); err != nil {
			return err
		}
		_, err := tx.Exec(`UPDATE points SET status = 'pending', heartbeat = NULL WHERE id = ?`, p.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: release point %s: %w", db.path, p.Hash, err)
	}
	return nil
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

// ResetFailed puts the failed points of a sweep whose hash is in hashes
// (every failed point when hashes is nil) back to pending, so that a new run
// tries them again, and returns how many it reset.
func (db *DB) ResetFailed(sweep int64, hashes []string) (int, error) {
	return db.reset(sweep, hashes, `('failed')`)
}

// ResetPoints puts done and failed points of a sweep back to pending,
// deleting their metrics, samples and telemetry, so that they run again; it
// returns how many it reset. A nil hashes resets every done or failed point
// of the sweep. Pending and running points, and hashes the sweep does not
// have, are left alone.
func (db *DB) ResetPoints(sweep int64, hashes []string) (int, error) {
	return db.reset(sweep, hashes, `('done', 'failed')`)
}

// reset puts the points of a sweep in one of statuses (an SQL list) back to
// pending; see ResetPoints.
func (db *DB) reset(sweep int64, hashes []string, statuses string) (int, error) {
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
		q := `SELECT id FROM points WHERE sweep_id = ? AND status IN ` + statuses
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
