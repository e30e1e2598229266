#!/usr/bin/env bash
# Runs every fuzz target of the module for a few seconds (FUZZTIME, default
# 3s), so that a target that crashes, or that cannot make progress (fewer
# than MIN_EXECS executions, default 10), is noticed. Prints each target's
# executions and executions per second.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-3s}
min=${MIN_EXECS:-10}
secs=${fuzztime%s}
# Targets that write and load a whole model directory per input run at
# tens of executions a second: they get SLOW_FACTOR times the time, so that
# a loaded machine still sees them make progress.
slow="FuzzLoadModelDir"
factor=${SLOW_FACTOR:-3}
status=0
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  # Only packages whose tests define a fuzz target.
  grep -qs '^func Fuzz' "$dir"/*_test.go || continue
  for name in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    # Go 1.26's fuzz coordinator can fail a target with a bare "context
    # deadline exceeded" as -fuzztime ends, having found nothing
    # (go.dev/issue/75804, fixed in Go 1.27). Such a run is tried again; a
    # real finding always writes its input ("Failing input written to") and
    # fails at once.
    t=$secs
    case " $slow " in *" $name "*) t=$((secs * factor)) ;; esac
    ok=0
    for try in 1 2 3; do
      if out=$(go test "$pkg" -run '^$' -fuzz "^${name}\$" -fuzztime "${t}s" 2>&1); then
        ok=1
        break
      fi
      if echo "$out" | grep -q 'Failing input written' ||
        ! echo "$out" | grep -q '^    context deadline exceeded$'; then
        break
      fi
      echo "retry $pkg $name: the fuzz coordinator's deadline race (go.dev/issue/75804), no input written (try $try)"
    done
    if [ $ok -eq 0 ]; then
      echo "FAIL $pkg $name"
      echo "$out" | grep -v 'warning:\|cgo-gcc-prolog\|^ *[0-9]* |\|^ *|\|In file included' || true
      status=1
      continue
    fi
    execs=$(echo "$out" | grep -o 'execs: [0-9]*' | tail -1 | awk '{print $2}')
    execs=${execs:-0}
    printf '%-40s %-22s %9d execs  %7d/s\n' "$pkg" "$name" "$execs" $((execs / t))
    if [ "$execs" -lt "$min" ]; then
      echo "FAIL $pkg $name: $execs executions in ${t}s (want at least $min): the target does not make progress"
      status=1
    fi
  done
done
exit $status
