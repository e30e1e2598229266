package results

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
)

// Filter selects points. Empty fields match everything.
type Filter struct {
	Sweep      string // sweep name
	Experiment string
	Model      string
	Policy     string
	Status     Status
}

// where returns the SQL condition (over points p and sweeps s) and its
// arguments.
func (f Filter) where() (string, []any) {
	var conds []string
	var args []any
	add := func(col, v string) {
		if v != "" {
			conds = append(conds, col+" = ?")
			args = append(args, v)
		}
	}
	add("s.name", f.Sweep)
	add("p.experiment", f.Experiment)
	add("p.model", f.Model)
	add("p.policy", f.Policy)
	add("p.status", string(f.Status))
	if len(conds) == 0 {
		return "1", nil
	}
	return strings.Join(conds, " AND "), args
}

// PointRow is a stored point with everything recorded about it.
type PointRow struct {
	ID         int64
	SweepID    int64
	Sweep      string // sweep name
	Hash       string
	Experiment string
	Model      string
	Policy     string
	Params     json.RawMessage // JSON object of the resolved parameters
	Status     Status
	Error      string
	// Started is when the point was last claimed, Finished when it was
	// finished; zero if it never was.
	Started, Finished time.Time
	Duration          time.Duration
	Provenance        Provenance
	Worker            string
	Attempt           int
	Heartbeat         time.Time
}

// Points returns the points that f selects, ordered by sweep and then in the
// order they were added.
func (db *DB) Points(f Filter) ([]PointRow, error) {
	where, args := f.where()
	rows, err := db.r.Query(`SELECT p.id, p.sweep_id, s.name, p.hash, p.experiment, p.model, p.policy, p.params,
			p.status, p.error, p.started, p.finished, p.duration_s,
			p.host, p.cpu, p.gpu, p.driver, p.go_version, p.git_revision, p.worker, p.attempt, p.heartbeat,
			p.backend, p.dtype
		FROM points p JOIN sweeps s ON s.id = p.sweep_id
		WHERE `+where+` ORDER BY p.sweep_id, p.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: points: %w", db.path, err)
	}
	defer rows.Close()
	var out []PointRow
	for rows.Next() {
		var r PointRow
		var params, status string
		var started, finished, heartbeat sql.NullString
		var duration sql.NullFloat64
		pv := &r.Provenance
		if err := rows.Scan(&r.ID, &r.SweepID, &r.Sweep, &r.Hash, &r.Experiment, &r.Model, &r.Policy, &params,
			&status, &r.Error, &started, &finished, &duration,
			&pv.Host, &pv.CPU, &pv.GPU, &pv.Driver, &pv.GoVersion, &pv.GitRevision, &r.Worker, &r.Attempt, &heartbeat,
			&pv.Backend, &pv.DType); err != nil {
			return nil, fmt.Errorf("%s: points: %w", db.path, err)
		}
		r.Params, r.Status = json.RawMessage(params), Status(status)
		r.Duration = time.Duration(duration.Float64 * float64(time.Second))
		for _, t := range []struct {
			dst *time.Time
			src sql.NullString
		}{{&r.Started, started}, {&r.Finished, finished}, {&r.Heartbeat, heartbeat}} {
			if *t.dst, err = parseStamp(t.src); err != nil {
				return nil, fmt.Errorf("%s: point %s: %w", db.path, r.Hash, err)
			}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: points: %w", db.path, err)
	}
	return out, nil
}

// MetricRow is one metric of one point, with what identifies the point: the
// long format that exports and plots read.
type MetricRow struct {
	PointID    int64
	Sweep      string // sweep name
	Hash       string
	Experiment string
	Model      string
	Policy     string
	Params     json.RawMessage
	Status     Status
	Metric
}

// Metrics returns one row per metric of the points that f selects, ordered
// by sweep, point (in the order added) and metric name. A NaN value was
// stored as NULL and comes back as NaN.
func (db *DB) Metrics(f Filter) ([]MetricRow, error) {
	where, args := f.where()
	rows, err := db.r.Query(`SELECT p.id, s.name, p.hash, p.experiment, p.model, p.policy, p.params, p.status,
			m.name, m.value, m.unit
		FROM metrics m JOIN points p ON p.id = m.point_id JOIN sweeps s ON s.id = p.sweep_id
		WHERE `+where+` ORDER BY p.sweep_id, p.id, m.name`, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: metrics: %w", db.path, err)
	}
	defer rows.Close()
	var out []MetricRow
	for rows.Next() {
		var r MetricRow
		var params, status string
		var v sql.NullFloat64
		if err := rows.Scan(&r.PointID, &r.Sweep, &r.Hash, &r.Experiment, &r.Model, &r.Policy, &params, &status,
			&r.Name, &v, &r.Unit); err != nil {
			return nil, fmt.Errorf("%s: metrics: %w", db.path, err)
		}
		r.Params, r.Status, r.Value = json.RawMessage(params), Status(status), nullNaN(v)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: metrics: %w", db.path, err)
	}
	return out, nil
}

// nullNaN returns v's value, or NaN if it is NULL.
func nullNaN(v sql.NullFloat64) float64 {
	if !v.Valid {
		return math.NaN()
	}
	return v.Float64
}

// Samples returns the samples of a point in order.
func (db *DB) Samples(point int64) ([]json.RawMessage, error) {
	rows, err := db.r.Query(`SELECT data FROM samples WHERE point_id = ? ORDER BY idx`, point)
	if err != nil {
		return nil, fmt.Errorf("%s: samples of point %d: %w", db.path, point, err)
	}
	defer rows.Close()
	var out []json.RawMessage
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("%s: samples of point %d: %w", db.path, point, err)
		}
		out = append(out, json.RawMessage(s))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: samples of point %d: %w", db.path, point, err)
	}
	return out, nil
}

// SweepRow is a stored sweep.
type SweepRow struct {
	ID      int64
	Name    string
	Config  string // the sweep's TOML
	Created string // RFC 3339
}

// Sweeps returns every sweep, oldest first.
func (db *DB) Sweeps() ([]SweepRow, error) {
	rows, err := db.r.Query(`SELECT id, name, config, created FROM sweeps ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("%s: list sweeps: %w", db.path, err)
	}
	defer rows.Close()
	var out []SweepRow
	for rows.Next() {
		var s SweepRow
		if err := rows.Scan(&s.ID, &s.Name, &s.Config, &s.Created); err != nil {
			return nil, fmt.Errorf("%s: list sweeps: %w", db.path, err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
