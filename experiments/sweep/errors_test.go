package sweep

import (
	"errors"
	"strings"
	"testing"

	"kvcascade/policies"
)

// body is a valid sweep minus its name, to which error cases add.
const body = `[[model]]
path = "m"
[[experiment]]
name = "passkey"
[[policy]]
name = "full"
`

// errorCases are sweeps with problems and the exact errors they give, one
// line each; a line ending in "…" is compared up to there (it ends in a
// list that grows as policies and experiments are registered).
var errorCases = []struct {
	name string
	src  string
	want []string
}{
	// Syntax.
	{"unterminated string", "name = \"x\n" + body,
		[]string{`e.toml:1:10: strings cannot contain newlines`}},
	{"unclosed array header", "name = \"x\"\n[[model]\npath = \"m\"\n",
		[]string{`e.toml:2:8: expected end of table array name delimiter ']', but got '\n' instead`}},
	{"duplicate key", "name = \"x\"\nname = \"y\"\n" + body,
		[]string{`e.toml:2:1: Key 'name' has already been defined.`}},
	{"double comma", "name = \"x\"\nchunk = [1,\n  2,,]\n" + body,
		[]string{`e.toml:3:5: unexpected comma`}},
	{"byte order mark", "\xef\xbb\xbfname = 1 1\n",
		[]string{`e.toml:1:9: expected a top-level item to end with a newline, comment, or EOF, but got '1' instead`}},

	// Unknown keys.
	{"unknown top-level key", "name = \"x\"\ncolour = \"red\"\n" + body,
		[]string{`e.toml:2:1: colour: unknown key at the top level (known: name, db, out, backend, chunk, model, experiment, policy, include, exclude)`}},
	{"unknown key in second model", "name = \"x\"\n" + body + "[[model]]\n  path = \"n\"\n  revision = 3\n",
		[]string{`e.toml:10:3: model[1].revision: unknown key in model[1] (known: path, name)`}},
	{"unknown key in inline policy", "name = \"x\"\n" + body + "[[policy]]\nname = \"truncated\"\nparams = { keep = 5, mood = \"last\" }\n",
		[]string{`e.toml:10:22: policy[1].params.mood: unknown parameter of policy truncated (known: keep, mode, budget, ratio)`}},
	{"unknown parameter", "name = \"x\"\n" + body + "[[experiment]]\nname = \"passkey\"\n[experiment.params]\nlength = 5\n\"lenght\" = 6\n",
		[]string{`e.toml:12:1: experiment[1].params.lenght: unknown parameter of experiment passkey (known: length, depth_bin, samples, seed, words, template, max_new, format, score, stop_eos, diagnostics)`}},
	{"unknown parameter, dotted", "name = \"x\"\n[model]\nname = \"m\"\n[policy]\nname = \"full\"\n[experiment]\nname = \"memory\"\nparams . tokens = 1\n",
		[]string{`e.toml:8:10: experiment.params.tokens: unknown parameter of experiment memory (known: length, checkpoints, seed)`}},
	{"unknown key in rule table", "name = \"x\"\n" + body + "[[exclude]]\npolicy = \"full\"\n[exclude.x]\ny = 1\n",
		[]string{`e.toml:10:1: exclude[0].x: want a value or a list of values, got a table (to name a prefixed parameter, quote it: "x.name")`}},

	// Types.
	{"name not a string", "name = 5\n" + body,
		[]string{`e.toml:1:1: name: want a string, got an integer`}},
	{"chunk not an int", "name = \"x\"\nchunk = \"big\"\n" + body,
		[]string{`e.toml:2:1: chunk: want int, got string (big)`}},
	{"chunk list", "name = \"x\"\nchunk = [128, 0, 1.5, 128]\n" + body,
		[]string{
			`e.toml:2:15: chunk[1]: must be at least 1 token, got 0`,
			`e.toml:2:18: chunk[2]: want an integer, got 1.5`,
			`e.toml:2:23: chunk[3]: 128 repeats an earlier value`,
		}},
	{"model not a table", "name = \"x\"\nmodel = \"m\"\n[[experiment]]\nname = \"passkey\"\n[[policy]]\nname = \"full\"\n",
		[]string{`e.toml:2:1: model: want [[model]] tables, got a string`}},
	{"model array of strings", "name = \"x\"\nmodel = [\"m\", { path = \"n\" }]\n[[experiment]]\nname = \"passkey\"\n[[policy]]\nname = \"full\"\n",
		[]string{`e.toml:2:10: model[0]: want a table, got a string`}},
	{"params not a table", "name = \"x\"\n" + body + "params = [1]\n",
		[]string{`e.toml:8:1: policy[0].params: want a table of parameters, got an array`}},
	{"bad parameter values", "name = \"x\"\n" + body + "[[policy]]\nname = \"truncated\"\nlabel = \"t\"\n[policy.params]\nkeep = 1.5\nmode = \"first\"\n" +
		"[[policy]]\nname = \"truncated\"\nparams = { keep = [10, \"a\", 10] }\n",
		[]string{
			`e.toml:12:1: policy[1].params.keep: want an integer, got 1.5`,
			`e.toml:13:1: policy[1].params.mode: "first" is not one of last, middle`,
			`e.toml:16:24: policy[2].params.keep[1]: want int, got string (a)`,
			`e.toml:16:29: policy[2].params.keep[2]: 10 repeats an earlier value`,
		}},
	{"empty axis", "name = \"x\"\n" + body + "[[experiment]]\nname = \"latency\"\nparams.length = []\n",
		[]string{`e.toml:10:8: experiment[1].params.length: empty list: a grid axis needs at least one value`}},
	{"backend", "name = \"x\"\nbackend = \"tpu\"\n" + body,
		[]string{`e.toml:2:1: backend: "tpu" is not a backend (known: cpu, cuda)`}},
	{"empty string", "name = \"\"\n" + body,
		[]string{`e.toml:1:1: name: must not be empty`}},

	// Names.
	{"unknown experiment", "name = \"x\"\n" + strings.Replace(body, "passkey", "pasky", 1),
		[]string{`e.toml:5:1: experiment[0].name: unknown experiment "pasky" (known: …`}},
	{"unknown policy", "name = \"x\"\n" + strings.Replace(body, `"full"`, `"fool"`, 1),
		[]string{`e.toml:7:1: policy[0].name: unknown policy "fool" (known: …`}},

	// The policies' own checks, on every setting of the grid.
	{"policy rule", "name = \"x\"\n" + body + "[[policy]]\nname = \"truncated\"\n[policy.params]\nkeep = [0, 10, -1]\n",
		[]string{
			`e.toml:11:1: policy[1].params.keep: policy truncated: keep must be positive, got 0 (at keep = 0)`,
			`e.toml:11:1: policy[1].params.keep: policy truncated: keep must be positive, got -1 (at keep = -1)`,
		}},

	// Labels, models, required keys.
	{"duplicate default label", "name = \"x\"\n" + body + "\n[[policy]]\nname = \"full\"\n",
		[]string{`e.toml:9:1: policy[1]: label "full" is already used by policy[0]; give each policy a unique label`}},
	{"duplicate label", "name = \"x\"\n" + body + "label = \"a\"\n[[policy]]\nname = \"truncated\"\nlabel = \"a\"\n",
		[]string{`e.toml:11:1: policy[1].label: label "a" is already used by policy[0]; give each policy a unique label`}},
	{"path and name", "name = \"x\"\n" + strings.Replace(body, "path = \"m\"", "path = \"m\"\nname = \"tiny\"", 1),
		[]string{`e.toml:4:1: model[0].name: set path or name, not both`}},
	{"neither path nor name", "name = \"x\"\n" + strings.Replace(body, "path = \"m\"", "", 1),
		[]string{`e.toml:2:1: model[0]: missing path (a model directory) or name (an embedded model)`}},
	{"missing name", body,
		[]string{`e.toml:1:1: name: missing required key`}},
	{"missing experiment name", "name = \"x\"\n" + strings.Replace(body, "name = \"passkey\"", "", 1),
		[]string{`e.toml:4:1: experiment[0]: missing required key "name"`}},
	{"no policy", "name = \"x\"\n" + strings.Replace(body, "[[policy]]\nname = \"full\"\n", "", 1),
		[]string{`e.toml:1:1: policy: missing: the sweep needs at least one [[policy]]`}},
	{"empty model list", "name = \"x\"\nmodel = []\n[[experiment]]\nname = \"passkey\"\n[[policy]]\nname = \"full\"\n",
		[]string{`e.toml:2:1: model: must not be empty: the sweep needs at least one [[model]]`}},

	// Duplicate points.
	{"same policy twice", "name = \"x\"\n" + body + "label = \"a\"\n[[policy]]\nname = \"full\"\nlabel = \"b\"\n",
		[]string{`e.toml:9:1: policy[1]: repeats a point of policy[0] (label "a"): same policy and parameters, defaults included`}},
	{"explicit default repeats", "name = \"x\"\n" + body + "[[policy]]\nname = \"truncated\"\n[[policy]]\nname = \"truncated\"\nlabel = \"t4096\"\nparams = { keep = [1024, 4096] }\n",
		[]string{`e.toml:10:1: policy[2]: repeats a point of policy[1] (label "truncated") (at keep = 4096): same policy and parameters, defaults included`}},
	{"same experiment twice", "name = \"x\"\n" + body + "[[experiment]]\nname = \"passkey\"\nparams = { length = 4096 }\n",
		[]string{`e.toml:8:1: experiment[1]: repeats a point of experiment[0]: same experiment and parameters, defaults included`}},
	{"same model twice", "name = \"x\"\n" + body + "[[model]]\npath = \"./m\"\n",
		[]string{`e.toml:8:1: model[1]: repeats model[0]: same model`}},

	// Options only the cpu backend computes, planned on cuda.
	{"cpu-only option on cuda", "name = \"x\"\nbackend = \"cuda\"\n" + body + "[[policy]]\nname = \"h2o\"\nparams = { reduction = \"query_max\" }\n" +
		"[[policy]]\nname = \"snapkv\"\nparams = { select = [\"kv_head\", \"query_head\"] }\n",
		[]string{
			`e.toml:11:12: policy[1].params.reduction: policy h2o: parameter reduction: "query_max" needs the per-query group-max mass, which the cuda backend's attention does not compute (the cpu backend does)`,
			`e.toml:14:33: policy[2].params.select[1]: policy snapkv: parameter select: "query_head" needs per-query-head views, which the cuda backend's attention does not compute (the cpu backend does) (at select = "query_head")`,
		}},

	// Rules.
	{"empty rule", "name = \"x\"\n" + body + "[[exclude]]\n",
		[]string{`e.toml:8:1: exclude[0]: empty rule: it would match every point`}},
	{"unknown rule key", "name = \"x\"\n" + body + "[[include]]\nlenght = 5\n",
		[]string{`e.toml:9:1: include[0].lenght: unknown key: not a parameter of any experiment or policy of this sweep (keys: backend, chunk, depth_bin, diagnostics, experiment, format, label, length, max_new, model, policy, samples, score, seed, stop_eos, template, words)`}},
	{"rule value kind", "name = \"x\"\n" + body + "[[exclude]]\nlength = \"long\"\n[[exclude]]\nlength = [1, true]\n",
		[]string{
			`e.toml:9:1: exclude[0].length: "long" can never match: want int`,
			`e.toml:11:1: exclude[1].length: [1, true] can never match: want int`,
		}},
	{"rule names", "name = \"x\"\n" + body + "[[exclude]]\npolicy = [\"full\", \"fool\"]\nexperiment = 3\nmodel = \"n\"\nlabel = \"x\"\n",
		[]string{
			`e.toml:9:19: exclude[0].policy[1]: "fool" names no policy of this sweep (known: full)`,
			`e.toml:10:1: exclude[0].experiment: want a string, got an integer`,
			`e.toml:11:1: exclude[0].model: "n" names no model of this sweep (known: m)`,
			`e.toml:12:1: exclude[0].label: "x" names no label of this sweep (known: full)`,
		}},
	{"rule empty list", "name = \"x\"\n" + body + "[[exclude]]\nchunk = []\n",
		[]string{`e.toml:9:1: exclude[0].chunk: empty list: matches nothing`}},
	{"rules leave nothing", "name = \"x\"\n" + body + "[[exclude]]\nsamples = 10\n",
		[]string{`e.toml:8:1: exclude: the include and exclude rules leave no points`}},
	{"include leaves nothing", "name = \"x\"\n" + body + "[[include]]\nlength = 5\n",
		[]string{`e.toml:8:1: include: the include and exclude rules leave no points`}},

	// Size.
	{"too many points", "name = \"x\"\nchunk = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n" + body + "[[experiment]]\nname = \"passkey\"\n[experiment.params]\n" +
		"length = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nseed = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nsamples = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\ndepth_bin = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n",
		[]string{`e.toml:1:1: the grid has 100010 points (1 models × 10001 experiment settings × 1 policy settings × 10 chunks), more than the limit of 100000`}},

	// Several problems at once, sorted by position.
	{"several", "name = 1\n[[model]]\npath = \"m\"\nname = \"n\"\n[[experiment]]\nname = \"nope\"\n[[policy]]\nname = \"full\"\nparams = { x = 1 }\n",
		[]string{
			`e.toml:1:1: name: want a string, got an integer`,
			`e.toml:4:1: model[0].name: set path or name, not both`,
			`e.toml:6:1: experiment[0].name: unknown experiment "nope" (known: …`,
			`e.toml:9:12: policy[0].params.x: unknown parameter of policy full (known: …`,
		}},
}

func TestErrors(t *testing.T) {
	for _, tt := range errorCases {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse([]byte(tt.src), "e.toml")
			if err == nil {
				t.Fatalf("no error; sweep %+v", s)
			}
			got := strings.Split(err.Error(), "\n")
			if len(got) != len(tt.want) {
				t.Fatalf("%d errors, want %d:\n%s", len(got), len(tt.want), err)
			}
			for i, w := range tt.want {
				if p, ok := strings.CutSuffix(w, "…"); ok {
					if !strings.HasPrefix(got[i], p) {
						t.Errorf("error %d:\n got %s\nwant %s", i, got[i], w)
					}
				} else if got[i] != w {
					t.Errorf("error %d:\n got %s\nwant %s", i, got[i], w)
				}
			}
			var e *Error
			if !errors.As(err, &e) || e.File != "e.toml" {
				t.Errorf("error is not an *Error naming e.toml: %#v", err)
			}
		})
	}
}

// TestErrorsFloat checks a float parameter (cascade's beta) when cascade is
// registered: infinities are refused, since results are stored as JSON.
func TestErrorsFloat(t *testing.T) {
	if _, ok := policies.Lookup("cascade"); !ok {
		t.Skip("policy cascade is not registered")
	}
	src := "name = \"x\"\n" + body + "[[policy]]\nname = \"cascade\"\nparams = { beta = [0.5, inf, nan] }\n"
	_, err := Parse([]byte(src), "e.toml")
	want := "e.toml:10:25: policy[1].params.beta[1]: want a finite number, got +Inf\ne.toml:10:30: policy[1].params.beta[2]: NaN not allowed"
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

func TestTooManyErrors(t *testing.T) {
	var b strings.Builder
	b.WriteString("name = \"x\"\n" + body)
	for i := 0; i < maxErrors+5; i++ {
		b.WriteString("[[model]]\nwhat = 1\n")
	}
	_, err := Parse([]byte(b.String()), "e.toml")
	lines := strings.Split(err.Error(), "\n")
	// Each bad model gives two problems: the unknown key and no path.
	if len(lines) != maxErrors+1 || lines[maxErrors] != "e.toml: 60 more problems not shown" {
		t.Errorf("%d lines, last %q", len(lines), lines[len(lines)-1])
	}
}
