#!/usr/bin/env bash
# External workers against a real cluster, as an ordinary login role:
#   - the Python worker of docs/external-tasks.md serves 60 runs until idle;
#   - a worker killed (kill -9) while it holds a run: the run is released
#     within a second of its connection's end, its attempt charged, and
#     another worker completes it;
#   - a worker that hangs without heartbeats: its lease expires, the
#     attempt is charged;
#   - a server restart under a claimed run: the run keeps its lease, the
#     worker reconnects, heartbeats and completes it (no attempt charged);
#   - 4 workers x concurrency 8 on 400 runs: every run completed exactly
#     once, in its first attempt.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/test/lib.sh"
port=${EXTERNAL_PORT:-55447}
throwaway_cluster external "$port" "taskorch.workers_per_database = 1"
# workers left running by a failed check go with the cluster
trap 'pkill -f "$dir" 2>/dev/null || true; cluster_stop "$dir" immediate; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
py=/usr/bin/python3
dsn="host=$dir port=$port dbname=postgres user=media_worker"

psql_as "$port" postgres >/dev/null <<'SQL'
CREATE EXTENSION taskorch;
CREATE ROLE media_worker LOGIN;
SELECT taskorch.register_external_task('extract_audio', max_attempts => 3,
	retry => '{"minTimeoutInMs": 100, "maxTimeoutInMs": 100, "randomize": false}');
SELECT taskorch.grant_execute('extract_audio', 'media_worker');
SQL

# the doc's worker, as a module
awk '/^```python$/ {on = 1; next} /^```/ {on = 0} on' "$top/docs/external-tasks.md" >"$dir/worker.py"
chmod 644 "$dir/worker.py"
worker() { (cd "$dir" && PYTHONPATH="$dir" "$py" -c "$1"); }

echo "-- the documented worker"
q "SELECT count(taskorch.trigger('extract_audio', jsonb_build_object('url', 'https://cdn/t' || g || '.mp4'))) FROM generate_series(1, 60) g" >/dev/null
worker "import worker; worker.serve('$dsn', concurrency=4, until_idle=True)"
got=$(q "SELECT count(*) FILTER (WHERE status = 'COMPLETED' AND attempts = 1 AND output->>'audio' LIKE 'https://cdn/t%.aac') FROM taskorch.runs WHERE task_id = 'extract_audio'")
[ "$got" = 60 ] || fail "the documented worker completed $got of 60 runs"
echo "ok: 60 runs completed by the documented worker"

# claim one run and hold it: prints its id, then sleeps (no heartbeat)
hold() {
	worker "
import psycopg, sys, time
conn = psycopg.connect('$dsn', autocommit=True)
row = conn.execute(\"SELECT run_id, lease FROM taskorch.claim_runs('{extract_audio}', 1, %s)\", ['$1']).fetchone()
print(row[0], flush=True)
time.sleep(600)"
}

echo "-- kill -9 of a worker holding a run"
run=$(q "SELECT taskorch.trigger('extract_audio', '{\"url\": \"https://cdn/killed.mp4\"}')")
hold 1h >"$dir/hold.out" &
holder=$!
wait_for "$port" postgres "SELECT status = 'EXECUTING' FROM taskorch.runs WHERE id = '$run'" 10
# the python process, not the subshell
pkill -9 -f "time.sleep\(600\)"
killed_at=$(date +%s.%N)
wait_for "$port" postgres "SELECT status <> 'EXECUTING' FROM taskorch.runs WHERE id = '$run'" 10
released=$(echo "$(date +%s.%N) - $killed_at" | bc)
wait "$holder" 2>/dev/null || true
echo "released $released s after the kill"
[ "$(echo "$released < 1.5" | bc)" = 1 ] || fail "released $released s after the kill"
[ "$(q "SELECT status || ' ' || message FROM taskorch.attempts WHERE run_id = '$run'")" = \
  "CRASHED the external worker of this run was lost: the connection that claimed it ended" ] ||
	fail "the lost attempt was not charged: $(q "SELECT * FROM taskorch.attempts WHERE run_id = '$run'")"
worker "import worker; worker.serve('$dsn', until_idle=True)"
[ "$(q "SELECT status || ' ' || attempts FROM taskorch.runs WHERE id = '$run'")" = "COMPLETED 2" ] ||
	fail "the released run did not complete in its second attempt"
echo "ok: a killed worker's run released, charged, and completed by another"

echo "-- a worker that hangs past its lease"
run=$(q "SELECT taskorch.trigger('extract_audio', '{\"url\": \"https://cdn/hung.mp4\"}')")
hold 2s >"$dir/hold.out" &
holder=$!
wait_for "$port" postgres "SELECT status = 'EXECUTING' FROM taskorch.runs WHERE id = '$run'" 10
sleep 1.5
[ "$(q "SELECT status FROM taskorch.runs WHERE id = '$run'")" = EXECUTING ] || fail "released before its lease expired"
wait_for "$port" postgres "SELECT status = 'QUEUED' AND attempts = 1 FROM taskorch.runs WHERE id = '$run'" 5
[ "$(q "SELECT message FROM taskorch.attempts WHERE run_id = '$run'")" = \
  "the external worker of this run was lost: its lease expired" ] || fail "the expiry was not charged"
pkill -9 -f "time.sleep\(600\)"
wait "$holder" 2>/dev/null || true
worker "import worker; worker.serve('$dsn', until_idle=True)"
echo "ok: an expired lease is charged and the run retried"

echo "-- a server restart under a claimed run"
run=$(q "SELECT taskorch.trigger('extract_audio', '{\"url\": \"https://cdn/restart.mp4\"}')")
# the worker stays connected: the restart breaks its connection
worker "
import psycopg, time
conn = psycopg.connect('$dsn', autocommit=True)
run_id, lease = conn.execute(\"SELECT run_id, lease FROM taskorch.claim_runs('{extract_audio}', 1, '1m')\").fetchone()
open('$dir/lease', 'w').write(lease)
time.sleep(600)" &
holder=$!
wait_for "$port" postgres "SELECT status = 'EXECUTING' FROM taskorch.runs WHERE id = '$run'" 10
cluster_stop "$dir" fast
cluster_restart "$dir"
pkill -9 -f "time.sleep\(600\)"
wait "$holder" 2>/dev/null || true
sleep 2		# the workers' maintenance has run: the run is not taken as lost
[ "$(q "SELECT status || ' ' || attempts FROM taskorch.runs WHERE id = '$run'")" = "EXECUTING 0" ] ||
	fail "a run claimed before the restart was released: $(q "SELECT status, attempts FROM taskorch.runs WHERE id = '$run'")"
worker "
import psycopg
conn = psycopg.connect('$dsn', autocommit=True)
lease = open('$dir/lease').read()
canceled, _ = conn.execute('SELECT * FROM taskorch.heartbeat(%s)', [lease]).fetchone()
assert not canceled
print(conn.execute('SELECT taskorch.complete_run(%s, %s)', [lease, '{\"after\": \"restart\"}']).fetchone()[0])
" | grep -qx COMPLETED || fail "the run could not be completed after the restart"
[ "$(q "SELECT status || ' ' || attempts || ' ' || (SELECT count(*) FROM taskorch.attempts WHERE run_id = '$run') FROM taskorch.runs WHERE id = '$run'")" = "COMPLETED 1 0" ] ||
	fail "the run's attempt was charged across the restart"
echo "ok: a run claimed before a restart is completed after it, in its first attempt"

echo "-- a queue's limit counts the runs held across a restart"
q "SELECT taskorch.create_queue('pair', concurrency_limit => 2)" >/dev/null
q "SELECT count(taskorch.trigger('extract_audio', jsonb_build_object('url', 'https://cdn/p' || g || '.mp4'), queue => 'pair')) FROM generate_series(1, 4) g" >/dev/null
claim_pair() {	# claim_pair FILE: claim what the queue allows; the leases into FILE
	worker "
import psycopg
conn = psycopg.connect('$dsn', autocommit=True)
rows = conn.execute(\"SELECT lease FROM taskorch.claim_runs('{extract_audio}', 4, '1m')\").fetchall()
open('$1', 'w').write(''.join(l + chr(10) for (l,) in rows))"
}
claim_pair "$dir/pair1"
[ "$(wc -l <"$dir/pair1")" = 2 ] || fail "the limit of 2 let $(wc -l <"$dir/pair1") runs be claimed"
cluster_stop "$dir" fast
cluster_restart "$dir"
claim_pair "$dir/pair2"
[ "$(wc -l <"$dir/pair2")" = 0 ] || fail "after a restart the limit let $(wc -l <"$dir/pair2") more runs be claimed"
worker "
import psycopg
conn = psycopg.connect('$dsn', autocommit=True)
conn.execute('SELECT taskorch.complete_run(%s)', [open('$dir/pair1').readline().strip()])"
claim_pair "$dir/pair3"
[ "$(wc -l <"$dir/pair3")" = 1 ] || fail "one run ended, $(wc -l <"$dir/pair3") claimed"
q "SELECT count(taskorch.cancel(id)) FROM taskorch.runs_wide WHERE queue = 'pair' AND NOT taskorch.finished(status)" >/dev/null
echo "ok: the limit holds across a restart (slots counted again from the runs held)"

echo "-- 4 workers x concurrency 8, 400 runs"
q "SELECT count(taskorch.trigger('extract_audio', jsonb_build_object('url', 'https://cdn/m' || g || '.mp4'))) FROM generate_series(1, 400) g" >/dev/null
pids=()
for w in 1 2 3 4; do
	worker "import worker; worker.serve('$dsn', concurrency=8, until_idle=True)" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a worker failed"; done
wait_for "$port" postgres "SELECT count(*) = 400 FROM taskorch.runs WHERE task_id = 'extract_audio' AND payload->>'url' LIKE 'https://cdn/m%' AND status = 'COMPLETED'" 30
[ "$(q "SELECT count(*) FROM taskorch.runs WHERE payload->>'url' LIKE 'https://cdn/m%' AND attempts <> 1")" = 0 ] ||
	fail "a run took more than one attempt"
[ "$(q "SELECT count(*) FROM taskorch.attempts a JOIN taskorch.runs r ON r.id = a.run_id WHERE r.payload->>'url' LIKE 'https://cdn/m%'")" = 0 ] ||
	fail "an attempt failed or was lost"
echo "ok: 400 runs, each completed once, in its first attempt"
echo "external workers: all checks passed"
