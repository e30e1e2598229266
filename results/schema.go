package results

// migrations are the schema steps in order: migrations[i] takes a database
// from schema version i to i+1 (PRAGMA user_version). Append new steps; never
// edit a released one.
var migrations = []string{
	// 1: the initial schema.
	`
PRAGMA application_id = 1802920801;

CREATE TABLE sweeps (
	id          INTEGER PRIMARY KEY,
	name        TEXT NOT NULL,
	config      TEXT NOT NULL,           -- the sweep's TOML
	config_hash TEXT NOT NULL,           -- hex SHA-256 of config
	created     TEXT NOT NULL,
	UNIQUE (name, config_hash)
);

CREATE TABLE points (
	id           INTEGER PRIMARY KEY,
	sweep_id     INTEGER NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
	hash         TEXT NOT NULL,
	experiment   TEXT NOT NULL,
	model        TEXT NOT NULL,
	policy       TEXT NOT NULL,
	params       TEXT NOT NULL,          -- JSON object of the resolved parameters
	status       TEXT NOT NULL DEFAULT 'pending'
	             CHECK (status IN ('pending', 'running', 'done', 'failed')),
	error        TEXT NOT NULL DEFAULT '',
	started      TEXT,                   -- claimed at
	finished     TEXT,
	duration_s   REAL,
	host         TEXT NOT NULL DEFAULT '',
	cpu          TEXT NOT NULL DEFAULT '',
	gpu          TEXT NOT NULL DEFAULT '',
	driver       TEXT NOT NULL DEFAULT '',
	go_version   TEXT NOT NULL DEFAULT '',
	git_revision TEXT NOT NULL DEFAULT '',
	worker       TEXT NOT NULL DEFAULT '',
	attempt      INTEGER NOT NULL DEFAULT 0, -- number of claims so far
	heartbeat    TEXT,                   -- last sign of life of the claiming worker
	UNIQUE (sweep_id, hash)
);
CREATE INDEX points_by_status ON points (sweep_id, status);

CREATE TABLE metrics (
	point_id INTEGER NOT NULL REFERENCES points (id) ON DELETE CASCADE,
	name     TEXT NOT NULL,
	value    REAL,                       -- NULL stands for NaN
	unit     TEXT NOT NULL DEFAULT '',
	UNIQUE (point_id, name)
);

CREATE TABLE samples (
	point_id INTEGER NOT NULL REFERENCES points (id) ON DELETE CASCADE,
	idx      INTEGER NOT NULL,
	data     TEXT NOT NULL,              -- JSON
	UNIQUE (point_id, idx)
);

CREATE TABLE telemetry (
	point_id INTEGER NOT NULL REFERENCES points (id) ON DELETE CASCADE,
	t_s      REAL NOT NULL,              -- seconds since the point started
	name     TEXT NOT NULL,
	value    REAL
);
CREATE INDEX telemetry_by_point ON telemetry (point_id, name, t_s);
`,
	// 2: the backend a point ran on and the type it stored tensors in.
	`
ALTER TABLE points ADD COLUMN backend TEXT NOT NULL DEFAULT '';
ALTER TABLE points ADD COLUMN dtype   TEXT NOT NULL DEFAULT '';
`,
	// 3: a sweep is named; its rows are versions. seq orders the versions
	// by when they were last registered (a counter over the whole table),
	// so that the current version of a name is the one with the largest.
	`
ALTER TABLE sweeps ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
UPDATE sweeps SET seq = id;
CREATE INDEX sweeps_by_name ON sweeps (name, seq);
CREATE INDEX points_by_hash ON points (hash, status);
`,
	// 4: a point's experiment parameters and policy parameters apart, and
	// the kinds of figure its experiment draws (a JSON array); params keeps
	// the point's settings (chunk, backend, the policy's registered name).
	// The SQL adds the columns; splitParams (split.go) then moves each
	// existing point's parameters out of its mixed params object.
	`
ALTER TABLE points ADD COLUMN experiment_params TEXT NOT NULL DEFAULT '{}';
ALTER TABLE points ADD COLUMN policy_params     TEXT NOT NULL DEFAULT '{}';
ALTER TABLE points ADD COLUMN figures           TEXT NOT NULL DEFAULT '[]';
`,
}

// splitVersion is the schema version whose migration splits the mixed
// parameters (splitParams).
const splitVersion = 4
