#!/usr/bin/env bash
# Runs kvcascade's Slurm path against a real single-node Slurm started here:
# installs Debian's slurm-wlm and munge if missing, starts munged, slurmctld
# and slurmd from a temporary folder (their own key, sockets, ports, state
# and logs; nothing under /etc or /var is used), then
#   1. submits a small sweep with `kvcascade run --slurm --tasks 3`, waits for
#      the array, merges the shard databases (twice: the second adds nothing)
#      and compares the merge with the same sweep run locally, point by point;
#   2. submits a slower one-task array, requeues the task while it runs (as a
#      preemption does) and checks that the requeued task finishes the sweep.
# The sweep is the quickstart's six policies, with budgets scaled to short
# prompts, on the llama test fixture (runtime/model/testdata/llama) through
# the latency experiment: the quickstart itself takes minutes on two cores.
#
# Prints "SKIP: <reason>" and exits 0 only when Slurm cannot be installed or
# started here (SLURM_TEST_REQUIRE=1 makes that a failure too); any other
# problem exits non-zero. The daemons it started are stopped by pid on exit.
# Needs root (slurmd runs jobs as root here) and Go.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
started=$(date +%s)
export PATH="$PATH:/usr/sbin:/sbin"

skip() {
  echo "SKIP: $*"
  if [ "${SLURM_TEST_REQUIRE:-0}" = 1 ]; then
    echo "(SLURM_TEST_REQUIRE=1: a skip is a failure)"
    exit 1
  fi
  exit 0
}
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

[ "$(id -u)" = 0 ] || skip "needs root: slurmd runs the test's jobs as root"
command -v go >/dev/null || fail "go is not in PATH"

# --- Slurm and munge --------------------------------------------------------
need=()
for c in slurmctld slurmd sbatch squeue sinfo scontrol scancel; do
  command -v "$c" >/dev/null || { need+=(slurm-wlm); break; }
done
command -v munged >/dev/null && command -v munge >/dev/null && command -v unmunge >/dev/null || need+=(munge)
if [ ${#need[@]} -gt 0 ]; then
  echo "== apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; }; then
    skip "apt-get install ${need[*]} failed"
  fi
fi
echo "== $(slurmd -V), munge $(munged -V 2>&1 | awk '{print $1}' | head -1)"

tmp=$(mktemp -d /tmp/kvcascade-slurm.XXXXXX)
# munged refuses a socket below a directory that others cannot search.
chmod 755 "$tmp"
mkdir -p "$tmp"/{munge,state,spool,log,work,bin}
pids=()  # daemons started here, in start order
job=""   # the job to cancel if we stop early

show_logs() {
  for f in "$tmp"/log/* "$tmp"/work/out/*.slurm/task-*.log; do
    [ -s "$f" ] || continue
    echo "---- $f (last 25 lines)"
    tail -n 25 "$f"
  done
}
stop_daemons() {
  local i p
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    p=${pids[i]}
    kill "$p" 2>/dev/null || continue
    for _ in $(seq 50); do
      kill -0 "$p" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$p" 2>/dev/null; then
      echo "pid $p ignores SIGTERM; SIGKILL"
      kill -9 "$p" 2>/dev/null || true
    fi
    wait "$p" 2>/dev/null || true
  done
  pids=()
}
cleanup() {
  local rc=$?
  set +e
  if [ -n "$job" ]; then scancel "$job" 2>/dev/null; fi
  if [ "$rc" != 0 ]; then show_logs; fi
  stop_daemons
  rm -rf "$tmp"
  echo "== slurm-test: exit $rc after $(($(date +%s) - started)) s"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for SECONDS COMMAND...: retries COMMAND every 0.2 s.
wait_for() {
  local deadline=$(($(date +%s) + $1))
  shift
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

indent() { sed 's/^/   /'; }

# free_port: a TCP port nothing on 127.0.0.1 listens on.
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 30000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

echo "== munged"
key="$tmp/munge/munge.key"
sock="$tmp/munge/munge.socket.2"
dd if=/dev/urandom of="$key" bs=1024 count=1 status=none
chmod 400 "$key"
munged -F --socket="$sock" --key-file="$key" --pid-file="$tmp/munge/munged.pid" \
  --seed-file="$tmp/munge/munged.seed" --log-file="$tmp/log/munged.log" >"$tmp/log/munged.out" 2>&1 &
pids+=($!)
if ! wait_for 10 test -S "$sock"; then
  skip "munged does not start: $(tail -n 3 "$tmp/log/munged.out" "$tmp/log/munged.log" 2>/dev/null | tr '\n' ' ')"
fi
munge -S "$sock" -n </dev/null | unmunge -S "$sock" >/dev/null || skip "munge cannot encode and decode a credential"

echo "== slurm.conf"
conf="$tmp/slurm.conf"
export SLURM_CONF="$conf"
cpus=$(nproc)
mem_mb=$(awk '/^MemTotal:/ { print int($2 / 1024 * 0.8) }' /proc/meminfo)
ctld_port=$(free_port)
d_port=$(free_port)
while [ "$d_port" = "$ctld_port" ]; do d_port=$(free_port); done
cat >"$conf" <<EOF
# A single-node, CPU-only cluster for .ci/slurm-test.sh.
ClusterName=kvcascade-ci
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups, no accounting: processes are tracked through /proc.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
# Finished jobs stay visible to scontrol for 5 minutes (exit codes).
MinJobAge=300
KillWait=5
InactiveLimit=0
Waittime=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=ci Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

echo "== slurmctld (port $ctld_port)"
slurmctld -D -f "$conf" >"$tmp/log/slurmctld.out" 2>&1 &
pids+=($!)
ctld=$!
if ! wait_for 20 scontrol ping >/dev/null 2>&1; then
  kill -0 "$ctld" 2>/dev/null || skip "slurmctld exits at start: $(tail -n 5 "$tmp/log/slurmctld.out" "$tmp/log/slurmctld.log" 2>/dev/null | tr '\n' ' ')"
  skip "slurmctld does not answer scontrol ping: $(tail -n 5 "$tmp/log/slurmctld.log" 2>/dev/null | tr '\n' ' ')"
fi

# slurmd initialises a cgroup plugin even with proctrack/linuxproc and
# task/none. Newer Slurm (23.11+) can disable it; older Slurm autodetects
# the cgroup version, and on cgroup v2 without systemd needs IgnoreSystemd.
# Try those in turn until slurmd stays up.
slurmd_up=""
for cg in "CgroupPlugin=disabled" "IgnoreSystemd=yes" "CgroupPlugin=cgroup/v1"; do
  echo "$cg" >"$tmp/cgroup.conf"
  echo "== slurmd (port $d_port, cgroup.conf: $cg)"
  slurmd -D -f "$conf" -N localhost >"$tmp/log/slurmd.out" 2>&1 &
  d=$!
  sleep 2
  if kill -0 "$d" 2>/dev/null; then
    pids+=("$d")
    slurmd_up=1
    break
  fi
  wait "$d" 2>/dev/null || true
  slurmd_err=$(cat "$tmp/log/slurmd.out" "$tmp/log/slurmd.log" 2>/dev/null | grep -v '^$' | tail -n 3 | tr -s ' \n' ' ' || true)
  echo "   slurmd exited: $slurmd_err"
  rm -f "$tmp/log/slurmd.log"
done
[ -n "$slurmd_up" ] || skip "slurmd does not start with any cgroup.conf tried; last: $slurmd_err"

node_idle() { [ "$(sinfo -h -n localhost -o %T 2>/dev/null)" = idle ]; }
if ! wait_for 30 node_idle; then
  skip "the node does not become idle: $(sinfo -h -N -o '%N %T %E' 2>&1 | tr '\n' ' ')"
fi
echo "   $(sinfo -h -o '%P %a %D %T %C')"

# --- kvcascade ---------------------------------------------------------------
echo "== go build"
kv="$tmp/bin/kvcascade"
go build -o "$kv" ./cmd/kvcascade

work="$tmp/work"
cd "$work"
model="$repo/runtime/model/testdata/llama"
cat >ci.toml <<EOF
# The quickstart's six policies, budgets scaled from 260 slots to 20, on the
# llama test fixture; latency only, so that every point takes milliseconds.
name = "slurm-ci"
chunk = 8

[[model]]
path = "$model"

[[experiment]]
name = "latency"
[experiment.params]
length = [32, 64, 96]
decode_tokens = 2
warmup = false

[[policy]]
name = "cascade"
params = { sinks = 4, size = 16, cascades = 4 }
[[policy]]
name = "sink"
params = { sinks = 4, window = 16 }
[[policy]]
name = "h2o"
params = { heavy = 10, recent = 10 }
[[policy]]
name = "snapkv"
params = { budget = 20, window = 4, kernel = 3 }
[[policy]]
name = "bigbird"
params = { global = 4, window = 8, random_blocks = 2, block = 4 }
[[policy]]
name = "full"
EOF
points=18

# submit CONFIG DB ARGS...: submits with kvcascade run --slurm, sets job.
submit() {
  local out
  out=$("$kv" run "$@" --slurm --time 00:10:00) || fail "kvcascade run --slurm: $out"
  indent <<<"$out"
  job=$(echo "$out" | sed -n 's/^submitted job array \([0-9][0-9]*\)$/\1/p')
  [ -n "$job" ] || fail "no job id in the output of kvcascade run --slurm"
}
# wait_job SECONDS: waits until squeue lists nothing of the job.
wait_job() {
  local deadline=$(($(date +%s) + $1)) q
  while :; do
    q=$(squeue -h -j "$job" -o '%i %T %r' 2>/dev/null || true)
    [ -z "$q" ] && return 0
    [ "$(date +%s)" -lt "$deadline" ] || fail "job $job is not done after $1 s: $q"
    sleep 0.5
  done
}
# check_tasks N: every task of the job completed with exit code 0.
check_tasks() {
  local states
  states=$(scontrol -o show job "$job" | grep -o 'JobState=[A-Z_]*\|ExitCode=[0-9:]*' | paste -d' ' - - | sort | uniq -c)
  echo "   tasks: $(echo "$states" | tr -s ' \n' ' ')"
  [ "$(scontrol -o show job "$job" | grep -c 'JobState=COMPLETED .*ExitCode=0:0')" = "$1" ] ||
    fail "job $job: want $1 tasks COMPLETED with exit code 0:0, got: $states"
}
# shape DB: the CSV export without the value column (timings differ).
shape() {
  "$kv" export --db "$1" | awk -F, '
    NR == 1 { for (i = 1; i <= NF; i++) if ($i == "value") col = i; if (!col) { print "no value column" > "/dev/stderr"; exit 1 } }
    /"/ { print "quoted CSV field: " $0 > "/dev/stderr"; exit 1 }
    { $col = ""; print }' OFS=,
}

echo "== 1. the sweep as a job array of 3 tasks"
submit ci.toml --db out/slurm.db --tasks 3 --array-parallelism 2 --cpus-per-task 1 --gpus-per-task 0
array_started=$(date +%s)
wait_job 300
echo "   the array ran in $(($(date +%s) - array_started)) s"
check_tasks 3
job=""
for i in 0 1 2; do
  grep -q "ran 6 points (0 failed)" "out/slurm.slurm/task-$i.log" || fail "task $i did not run its 6 points: $(cat "out/slurm.slurm/task-$i.log")"
done

echo "== merge"
merged=$("$kv" merge --db out/main.db out/slurm.slurm)
indent <<<"$merged"
grep -q "merged 3 of 3 databases into out/main.db: $points points added" <<<"$merged" || fail "first merge"
again=$("$kv" merge --db out/main.db out/slurm.slurm)
grep -q "merged 3 of 3 databases into out/main.db: 0 points added" <<<"$again" || fail "second merge added points: $again"
status=$("$kv" status --db out/main.db)
grep -Eq "^slurm-ci +$points +0 +0 +0$" <<<"$status" || fail "status after merge: $status"

echo "== the same sweep locally, compared point for point"
"$kv" run ci.toml --db out/local.db >out/local.log || fail "local run: $(tail -n 5 out/local.log)"
shape out/main.db >out/main.shape
shape out/local.db >out/local.shape
rows=$(($(wc -l <out/local.shape) - 1))
[ "$rows" -ge "$points" ] || fail "local export has $rows rows"
if ! diff -u out/local.shape out/main.shape; then
  fail "the merged array and the local run differ (above)"
fi
echo "   $rows rows (points × metrics) agree in hash, parameters, metric, unit and status"

echo "== 2. a requeued task finishes the sweep"
cat >slow.toml <<EOF
# Full attention over long prompts: about 3 s of work for one task.
name = "slurm-ci-requeue"
chunk = 8
[[model]]
path = "$model"
[[experiment]]
name = "latency"
[experiment.params]
length = [1024, 1536, 2048, 2560]
decode_tokens = 2
warmup = false
[[policy]]
name = "full"
EOF
submit slow.toml --db out/slow.db --tasks 1 --gpus-per-task 0
shard=out/slow.slurm/shard-0.db
# Requeue once a point is done and the next one runs.
running() { [ -f "$shard" ] && "$kv" status --db "$shard" 2>/dev/null | grep -Eq '^slurm-ci-requeue +[1-9][0-9]* +0 +[0-9]+ +1$'; }
if wait_for 60 running; then
  echo "   requeueing task ${job}_0 while it runs: $("$kv" status --db "$shard" | tail -n 1)"
  scontrol requeue "${job}_0"
  requeued=1
else
  echo "   the task finished before it could be requeued; requeueing it finished"
  scontrol requeue "${job}_0" || fail "scontrol requeue ${job}_0"
  requeued=0
fi
# Slurm holds a requeued job back for a while (BeginTime, two minutes and
# more); a test need not wait for that.
pending() { squeue -h -j "${job}_0" -t PENDING -o %i 2>/dev/null | grep -q .; }
if wait_for 30 pending; then
  echo "   requeued: $(squeue -h -j "${job}_0" -o '%T %r %S')"
  scontrol update JobId="${job}_0" StartTime=now || fail "scontrol update JobId=${job}_0 StartTime=now"
fi
wait_job 300
check_tasks 1
job=""
log=out/slow.slurm/task-0.log
grep -q ", start 2, " "$log" || fail "the requeued task did not start again: $(cat "$log")"
echo "   task log:"
sed 's/^/     /' "$log"  # the task's log, indented
if [ "$requeued" = 1 ]; then
  # The first start was stopped in the middle of a point and left it
  # running; the second skipped the finished points and (--stale-after 0)
  # ran the interrupted one with the rest: every point finished once.
  ran=$(sed -n 's/^sweep "slurm-ci-requeue": ran \([0-9]*\) points.*/\1/p' "$log" | awk '{ n += $1 } END { print n + 0 }')
  starts=$(grep -c '^sweep "slurm-ci-requeue": ran' "$log" || true)
  if [ "$starts" != 2 ] || [ "$ran" != 4 ]; then
    fail "want 2 runs finishing 4 points in all, got $starts runs finishing ${ran:-0}"
  fi
  grep -Eq '^sweep "slurm-ci-requeue": ran [1-3] points \(0 failed\) in .*; [1-3] already finished' "$log" ||
    fail "the requeued task did not skip the points finished before the requeue"
fi
status=$("$kv" status --db "$shard")
grep -Eq '^slurm-ci-requeue +4 +0 +0 +0$' <<<"$status" || fail "after the requeue: $status"
"$kv" merge --db out/main.db out/slow.slurm | indent

echo "PASS: Slurm ran kvcascade's job arrays ($points + 4 points); merged results match a local run"
