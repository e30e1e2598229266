package results

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Options configure OpenWith.
type Options struct {
	// Declared returns what an experiment declares: the names of its
	// parameters and the kinds of figure it draws; ok is false for an
	// experiment it does not know. Opening a database of schema 3 or older
	// uses it to split each point's mixed parameters into the experiment's
	// and the policy's and to record the point's figures. Nil: a database
	// whose points need it is refused.
	Declared func(experiment string) (params, figures []string, ok bool)
}

// settingKeys are the keys of a point's params that are neither the
// experiment's nor the policy's parameters: how the point runs. A stored
// point's params holds only these.
var settingKeys = []string{"chunk", "backend", "backend_options", "policy_name"}

// reservedKeys are the names an experiment parameter is prefixed
// ("experiment.") to avoid in the flat form, and a policy parameter too
// ("policy."), besides the experiment's parameters: the columns and
// settings of the flat form as the sweep package first wrote it.
var reservedKeys = []string{"model", "experiment", "policy", "label", "chunk", "backend", "backend_options"}

// splitParams moves the parameters of every point out of its mixed params
// object (schema 3 and older) into experiment_params and policy_params and
// records its experiment's figures. A key prefixed "experiment." or
// "policy." goes to that owner, unprefixed; a key the experiment declares
// goes to the experiment; a setting stays; every other key is the
// policy's. This undoes the flat form (Flatten), so the hashes, which the
// sweep package computed, stay as they were.
func splitParams(tx *sql.Tx, opt Options) error {
	rows, err := tx.Query(`SELECT id, hash, experiment, params FROM points`)
	if err != nil {
		return err
	}
	var out []splitPoint
	for rows.Next() {
		var id int64
		var hash, experiment, params string
		if err := rows.Scan(&id, &hash, &experiment, &params); err != nil {
			rows.Close()
			return err
		}
		s, err := splitOne(experiment, []byte(params), opt)
		if err != nil {
			rows.Close()
			return fmt.Errorf("point %s: %w", hash, err)
		}
		s.id = id
		out = append(out, s)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	stmt, err := tx.Prepare(`UPDATE points SET params = ?, experiment_params = ?, policy_params = ?, figures = ? WHERE id = ?`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, s := range out {
		if _, err := stmt.Exec(string(s.params), string(s.exp), string(s.pol), string(s.figures), s.id); err != nil {
			return err
		}
	}
	return nil
}

// splitPoint is one point's parameters apart.
type splitPoint struct {
	id               int64
	params, exp, pol []byte
	figures          []byte
}

// splitOne splits one point's mixed params object.
func splitOne(experiment string, params []byte, opt Options) (splitPoint, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(params, &m); err != nil {
		return splitPoint{}, fmt.Errorf("params: %w", err)
	}
	var declared, figures []string
	known := false
	if opt.Declared != nil {
		declared, figures, known = opt.Declared(experiment)
	}
	settings, exp, pol := map[string]json.RawMessage{}, map[string]json.RawMessage{}, map[string]json.RawMessage{}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v := m[k]
		switch {
		case slices.Contains(settingKeys, k):
			settings[k] = v
		case strings.HasPrefix(k, "experiment."):
			exp[strings.TrimPrefix(k, "experiment.")] = v
		case strings.HasPrefix(k, "policy."):
			pol[strings.TrimPrefix(k, "policy.")] = v
		case !known:
			return splitPoint{}, fmt.Errorf("params: cannot tell whether %q is a parameter of experiment %q or of the policy: open the database with the experiments' declarations (kvcascade does)", k, experiment)
		case slices.Contains(declared, k):
			exp[k] = v
		default:
			pol[k] = v
		}
	}
	if figures == nil {
		figures = []string{}
	}
	var s splitPoint
	var err error
	for _, x := range []struct {
		dst *[]byte
		v   any
	}{{&s.params, settings}, {&s.pol, pol}, {&s.figures, figures}} {
		if *x.dst, err = json.Marshal(x.v); err != nil {
			return splitPoint{}, err
		}
	}
	// The experiment's parameters in the order it declares them, as the
	// runner stores them; any it no longer declares after them.
	order := slices.Clone(declared)
	for _, k := range slices.Sorted(maps.Keys(exp)) {
		if !slices.Contains(order, k) {
			order = append(order, k)
		}
	}
	if s.exp, err = OrderedObject(exp, order); err != nil {
		return splitPoint{}, err
	}
	return s, nil
}

// OrderedObject writes the JSON object of m with its keys in the order of
// keys (those of keys that m lacks are left out; keys of m not in keys are
// an error): how a point's experiment parameters are stored, in the order
// the experiment declares them. Values are encoded as encoding/json does.
func OrderedObject[V any](m map[string]V, keys []string) (json.RawMessage, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	n := 0
	for _, k := range keys {
		v, ok := m[k]
		if !ok {
			continue
		}
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		kb, _ := json.Marshal(k)
		vb, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	if n != len(m) {
		return nil, fmt.Errorf("object of %d keys ordered by %d of them", len(m), n)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Keys returns the keys of the JSON object raw in the order written.
func Keys(raw json.RawMessage) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("params: want a JSON object")
	}
	var keys []string
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("params: %w", err)
		}
		keys = append(keys, t.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, fmt.Errorf("params: %w", err)
		}
	}
	return keys, nil
}

// Flatten joins a point's settings, experiment parameters and policy
// parameters (JSON objects) into the one flat object of the export and the
// sweep's include and exclude rules: an experiment parameter named like a
// reserved key ("chunk", "backend", …) is prefixed "experiment.", a policy
// parameter named like one or like an experiment parameter "policy.". Values
// are kept as stored.
func Flatten(settings, experiment, policy json.RawMessage) (json.RawMessage, error) {
	var objs [3]map[string]json.RawMessage
	for i, raw := range []json.RawMessage{settings, experiment, policy} {
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		if err := json.Unmarshal(raw, &objs[i]); err != nil {
			return nil, fmt.Errorf("params: %w", err)
		}
	}
	out := make(map[string]json.RawMessage, len(objs[0])+len(objs[1])+len(objs[2]))
	for k, v := range objs[0] {
		out[k] = v
	}
	for _, k := range slices.Sorted(maps.Keys(objs[1])) {
		name := k
		if slices.Contains(reservedKeys, k) {
			name = "experiment." + k
		}
		out[name] = objs[1][k]
	}
	for _, k := range slices.Sorted(maps.Keys(objs[2])) {
		name := k
		if _, isExp := objs[1][k]; isExp || slices.Contains(reservedKeys, k) {
			name = "policy." + k
		}
		out[name] = objs[2][k]
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("params: %w", err)
	}
	return b, nil
}
