package results

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Filter selects points. Empty fields match everything.
//
// Points come from one version of each sweep, never from several: the
// current version (the one last run) unless Sweep picks another. Sweep is a
// sweep's name, or NAME@N for its Nth version (versions are numbered from 1
// in the order they were first run; see Versions); SweepID, when not 0,
// picks a version by id instead.
type Filter struct {
	Sweep      string
	SweepID    int64
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
	switch name, version := SplitVersion(f.Sweep); {
	case f.SweepID != 0:
		conds = append(conds, "s.id = ?")
		args = append(args, f.SweepID)
	case version > 0:
		conds = append(conds, "s.id = (SELECT id FROM sweeps WHERE name = ? ORDER BY id LIMIT 1 OFFSET ?)")
		args = append(args, name, version-1)
	case name != "":
		conds = append(conds, "s.id = (SELECT id FROM sweeps WHERE name = ? ORDER BY seq DESC, id DESC LIMIT 1)")
		args = append(args, name)
	default:
		conds = append(conds, "s.seq = (SELECT max(seq) FROM sweeps c WHERE c.name = s.name)")
	}
	add("p.experiment", f.Experiment)
	add("p.model", f.Model)
	add("p.policy", f.Policy)
	add("p.status", string(f.Status))
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
	Params     json.RawMessage // JSON object of the point's settings (chunk, backend, …)
	// ExperimentParams and PolicyParams are the JSON objects of the
	// experiment's and the policy's resolved parameters.
	ExperimentParams, PolicyParams json.RawMessage
	// Figures are the kinds of figure the point's experiment draws.
	Figures []string
	Status  Status
	Error   string
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
			p.experiment_params, p.policy_params, p.figures, p.status, p.error, p.started, p.finished, p.duration_s,
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
		var params, expParams, polParams, figures, status string
		var started, finished, heartbeat sql.NullString
		var duration sql.NullFloat64
		pv := &r.Provenance
		if err := rows.Scan(&r.ID, &r.SweepID, &r.Sweep, &r.Hash, &r.Experiment, &r.Model, &r.Policy, &params,
			&expParams, &polParams, &figures, &status, &r.Error, &started, &finished, &duration,
			&pv.Host, &pv.CPU, &pv.GPU, &pv.Driver, &pv.GoVersion, &pv.GitRevision, &r.Worker, &r.Attempt, &heartbeat,
			&pv.Backend, &pv.DType); err != nil {
			return nil, fmt.Errorf("%s: points: %w", db.path, err)
		}
		r.Params, r.Status = json.RawMessage(params), Status(status)
		r.ExperimentParams, r.PolicyParams = json.RawMessage(expParams), json.RawMessage(polParams)
		if err := json.Unmarshal([]byte(figures), &r.Figures); err != nil {
			return nil, fmt.Errorf("%s: point %s: figures: %w", db.path, r.Hash, err)
		}
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
	// Params, ExperimentParams, PolicyParams and Figures are as in
	// PointRow.
	Params                         json.RawMessage
	ExperimentParams, PolicyParams json.RawMessage
	Figures                        []string
	Status                         Status
	Metric
}

// Metrics returns one row per metric of the points that f selects, ordered
// by sweep, point (in the order added) and metric name. A NaN value was
// stored as NULL and comes back as NaN.
func (db *DB) Metrics(f Filter) ([]MetricRow, error) {
	where, args := f.where()
	rows, err := db.r.Query(`SELECT p.id, s.name, p.hash, p.experiment, p.model, p.policy, p.params,
			p.experiment_params, p.policy_params, p.figures, p.status, m.name, m.value, m.unit
		FROM metrics m JOIN points p ON p.id = m.point_id JOIN sweeps s ON s.id = p.sweep_id
		WHERE `+where+` ORDER BY p.sweep_id, p.id, m.name`, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: metrics: %w", db.path, err)
	}
	defer rows.Close()
	var out []MetricRow
	for rows.Next() {
		var r MetricRow
		var params, expParams, polParams, figures, status string
		var v sql.NullFloat64
		if err := rows.Scan(&r.PointID, &r.Sweep, &r.Hash, &r.Experiment, &r.Model, &r.Policy, &params,
			&expParams, &polParams, &figures, &status, &r.Name, &v, &r.Unit); err != nil {
			return nil, fmt.Errorf("%s: metrics: %w", db.path, err)
		}
		r.Params, r.Status, r.Value = json.RawMessage(params), Status(status), nullNaN(v)
		r.ExperimentParams, r.PolicyParams = json.RawMessage(expParams), json.RawMessage(polParams)
		if err := json.Unmarshal([]byte(figures), &r.Figures); err != nil {
			return nil, fmt.Errorf("%s: point %s: figures: %w", db.path, r.Hash, err)
		}
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

// SweepRow is one version of a stored sweep.
type SweepRow struct {
	ID      int64
	Name    string
	Config  string // the sweep's TOML
	Created string // RFC 3339
	// Version numbers the versions of a name from 1, in the order they
	// were first run; Current marks the one last run, which Filter selects
	// by name.
	Version int
	Current bool
}

// Sweeps returns the current version of every sweep, oldest sweep first.
func (db *DB) Sweeps() ([]SweepRow, error) {
	all, err := db.Versions("")
	if err != nil {
		return nil, err
	}
	var out []SweepRow
	for _, s := range all {
		if s.Current {
			out = append(out, s)
		}
	}
	return out, nil
}

// Versions returns every version of the sweep name ("" for every sweep),
// by name in the order first created, then by version.
func (db *DB) Versions(name string) ([]SweepRow, error) {
	rows, err := db.r.Query(`SELECT id, name, config, created,
			row_number() OVER (PARTITION BY name ORDER BY id),
			seq = max(seq) OVER (PARTITION BY name)
		FROM sweeps WHERE ? = '' OR name = ?
		ORDER BY min(id) OVER (PARTITION BY name), id`, name, name)
	if err != nil {
		return nil, fmt.Errorf("%s: list sweeps: %w", db.path, err)
	}
	defer rows.Close()
	var out []SweepRow
	for rows.Next() {
		var s SweepRow
		if err := rows.Scan(&s.ID, &s.Name, &s.Config, &s.Created, &s.Version, &s.Current); err != nil {
			return nil, fmt.Errorf("%s: list sweeps: %w", db.path, err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// Sweep returns the version of a sweep that a Filter's Sweep (NAME or
// NAME@N) selects, or an error naming the sweeps there are.
func (db *DB) Sweep(sweep string) (SweepRow, error) {
	name, version := SplitVersion(sweep)
	all, err := db.Versions(name)
	if err != nil {
		return SweepRow{}, err
	}
	for _, s := range all {
		if version == s.Version || version == 0 && s.Current {
			return s, nil
		}
	}
	if len(all) > 0 {
		return SweepRow{}, fmt.Errorf("%s: sweep %q has versions 1 to %d, not %d", db.path, name, len(all), version)
	}
	cur, err := db.Sweeps()
	if err != nil {
		return SweepRow{}, err
	}
	names := make([]string, len(cur))
	for i, s := range cur {
		names[i] = s.Name
	}
	if len(names) == 0 {
		return SweepRow{}, fmt.Errorf("%s: no sweep named %q: the database has no sweeps", db.path, name)
	}
	return SweepRow{}, fmt.Errorf("%s: no sweep named %q (sweeps: %s)", db.path, name, strings.Join(names, ", "))
}

// SplitVersion splits a sweep selector NAME@N into the name and the version
// N (0 when there is none).
func SplitVersion(sweep string) (name string, version int) {
	i := strings.LastIndexByte(sweep, '@')
	if i < 0 {
		return sweep, 0
	}
	n, err := strconv.Atoi(sweep[i+1:])
	if err != nil || n < 1 {
		return sweep, 0
	}
	return sweep[:i], n
}
