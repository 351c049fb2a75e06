#!/usr/bin/env bash
# taskorch external-worker benchmark (not a test): prints figures, asserts nothing.
#   1. drain: N queued no-op runs of an external task, worked by 4
#      `taskorch worker --stdio` processes (concurrency 512 each) whose
#      command answers every run at once (a Python loop); runs/s from the first claim
#      to the last completion, beside graphile-worker 0.17.3 batched on the
#      same server in the same run (../shared/anchors);
#   2. trigger -> external start: 500 single triggers over a persistent
#      connection, each waited for, with an idle `taskorch worker --stdio`;
#      the time from before the trigger statement (so including its commit)
#      to the command reading the run, p50 and p99.
# Default durability: synchronous_commit = on, fsync = on.
# Usage: bench/external.sh [runs]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/test/lib.sh"
build_and_install

runs=${1:-100000}
port=${BENCH_PORT:-55438}
throwaway_cluster bench-external "$port" \
	"shared_buffers = 1GB" "max_wal_size = 8GB" "checkpoint_timeout = 30min" \
	"taskorch.workers_per_database = 1" ${BENCH_CONF:-}
sql() { psql_as "$port" postgres -tA "$@"; }
export PGHOST=$dir PGPORT=$port PGUSER=postgres PGDATABASE=postgres
T=$PGBIN/taskorch

sql >/dev/null <<'SQL'
CREATE EXTENSION taskorch;
SELECT taskorch.register_external_task('ext-noop');
SQL
echo "taskorch external-worker benchmark: $(nproc) cores, PostgreSQL $(sql -c 'SHOW server_version'), synchronous_commit=$(sql -c 'SHOW synchronous_commit')"
echo

# 1. drain
sql -c "SELECT count(taskorch.trigger('ext-noop', jsonb_build_object('i', g))) FROM generate_series(1, $runs) g" >/dev/null
sql -c "VACUUM ANALYZE taskorch.run" >/dev/null
# the command: for every run, at once, an answer with no output
cat >"$dir/noop.py" <<'EOF'
import sys
for line in sys.stdin:
    # {"id": "run_1", ...} -> {"id": "run_1"}
    sys.stdout.write(line[:line.index('"', 8) + 1] + "}\n")
    sys.stdout.flush()
EOF
pids=()
for w in 1 2 3 4; do
	$T worker ext-noop --stdio -c 512 --poll 100ms -- /usr/bin/python3 "$dir/noop.py" &
	pids+=($!)
done
# polled from one connection, through the indexes of queued and leased runs
wait_until "$port" postgres "NOT EXISTS (SELECT FROM taskorch.run WHERE task_id = 'ext-noop' AND status = 'QUEUED' AND external)
							 AND NOT EXISTS (SELECT FROM taskorch.run WHERE status = 'EXECUTING')"
kill -TERM "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null || true
read -r secs done_runs < <(sql -F ' ' -c "SELECT extract(epoch FROM max(finished_at) - min(started_at)), count(*)
											 FROM taskorch.run WHERE task_id = 'ext-noop' AND status = 'COMPLETED'")
ext_rate=$(awk -v n="$done_runs" -v s="$secs" 'BEGIN { printf "%d", n / s }')
echo "external drain: $done_runs no-op runs, 4 taskorch worker --stdio (concurrency 512): $ext_rate runs/s ($secs s)"

# beside graphile-worker batched, on this server, now
anchors=${ANCHORS_DIR:-$top/../shared/anchors}
if [ -x "$anchors/run.sh" ] && command -v node >/dev/null; then
	gw=$(N=$runs CONCURRENCY=8 LAT_N=50 SINGLE_N=500 "$anchors/run.sh" gw-batched 2>/dev/null | tail -1 |
		node -e 'let s = ""; process.stdin.on("data", d => s += d).on("end", () =>
			console.log(JSON.parse(s).process.jobs_per_s_drained))' 2>/dev/null || true)
	if [ -n "$gw" ]; then
		echo "graphile-worker 0.17.3 batched, $runs jobs, concurrency 8: $gw jobs/s drained"
		echo "  external drain / graphile-worker batched: $(echo "scale=2; $ext_rate / $gw" | bc)"
	fi
fi
echo

# 2. trigger -> external start, with an idle worker
sql -c "SET client_min_messages = warning" -c "TRUNCATE taskorch.run CASCADE" >/dev/null
cat >"$dir/receive.py" <<'EOF'
import json, sys, time
out = open(sys.argv[1], "a", buffering=1)
for line in sys.stdin:
    t = time.time()
    req = json.loads(line)
    if req.get("cancel"):
        continue
    out.write(f'{req["payload"]["i"]} {t:.6f}\n')
    print(json.dumps({"id": req["id"]}), flush=True)
EOF
: >"$dir/received"
chmod 666 "$dir/received"
$T worker ext-noop --stdio -c 8 -- /usr/bin/python3 "$dir/receive.py" "$dir/received" &
wpid=$!
sleep 1
/usr/bin/python3 - "$dir" "$port" <<'EOF'
import sys, time, psycopg
d, port = sys.argv[1], sys.argv[2]
conn = psycopg.connect(f"host={d} port={port} user=postgres dbname=postgres", autocommit=True)
sent = {}
def received():
    return {int(a): float(b) for a, b in (l.split() for l in open(f"{d}/received"))}
for i in range(500):
    t0 = time.time()
    conn.execute("SELECT taskorch.trigger('ext-noop', %s)", [f'{{"i": {i}}}'])
    sent[i] = t0
    while i not in received():	# each waited for: the worker is idle at the next
        time.sleep(0.0005)
got = received()
lat = sorted((got[i] - sent[i]) * 1000 for i in sent)
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"trigger -> external start, 500 single triggers, idle worker: p50 {p(0.5):.2f} ms, p99 {p(0.99):.2f} ms")
EOF
kill -TERM $wpid; wait $wpid 2>/dev/null || true
