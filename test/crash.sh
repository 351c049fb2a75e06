#!/usr/bin/env bash
# Crash tests against a real cluster: nothing committed is lost, nothing is
# done twice.
#
# A task appends its run id to crash_effects (and sleeps a little, so the
# workers are usually in the middle of a run).  Clients trigger runs in
# batches while the test
#   1. kill -9s a worker backend that is executing a run (the postmaster
#      then restarts every backend), and
#   2. stops the whole server with `pg_ctl stop -m immediate` under load,
#      and starts it again.
# Every batch a client saw commit is recorded.  At the end:
#   - every recorded run exists           (no committed trigger lost)
#   - every run reached COMPLETED         (all finish after the restarts)
#   - crash_effects has each run once     (no effect lost or duplicated)
# Then: runs waiting (for a time, for children) and tracks in flight go
# through an immediate shutdown; a run that kills its worker each time ends
# CRASHED; a run whose outcome cannot be recorded ends SYSTEM_FAILURE
# without taking its batch or its worker down.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/test/lib.sh"
dir=$(mktemp -d /tmp/taskorch-crash.XXXXXX)
port=${CRASH_PORT:-55434}
loader_pids=()
cleanup() {
	for p in "${loader_pids[@]}"; do kill "$p" 2>/dev/null || true; done
	cluster_stop "$dir" immediate
	[ -n "${KEEP:-}" ] || rm -rf "$dir"
}
trap cleanup EXIT

# a fixed pool: the test counts the workers and their pids
cluster_start "$dir" "$port" "taskorch.workers_per_database = 2" "taskorch.max_workers_per_database = 0"
psql_as "$port" postgres <<'SQL'
CREATE EXTENSION taskorch;
CREATE TABLE crash_effects (run_id text NOT NULL);
CREATE FUNCTION crash_task(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO crash_effects VALUES (taskorch.current_run()->>'id');
	PERFORM pg_sleep(0.0005);
	RETURN jsonb_build_object('i', payload->'i');
END $$;
SELECT taskorch.register_task('crash', 'crash_task(jsonb)', max_attempts => 5,
	retry => '{"minTimeoutInMs": 10, "maxTimeoutInMs": 50}');
-- a run that kills its worker every time it executes
CREATE FUNCTION poison_task(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT pg_sleep(60); SELECT '{}'::jsonb $$;
-- the on_failure hook of the runs that end CRASHED and SYSTEM_FAILURE
CREATE TABLE failure_hooks (result jsonb);
CREATE FUNCTION failure_hook(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	INSERT INTO failure_hooks VALUES (payload) RETURNING '{}'::jsonb $$;
SELECT taskorch.register_task('failure-hook', 'failure_hook(jsonb)');
SELECT taskorch.register_task('poison', 'poison_task(jsonb)', max_attempts => 2,
	retry => '{"minTimeoutInMs": 10}', on_failure => 'failure-hook');
SQL

# A client that triggers batches of 50 runs until $dir/stop exists; it
# records the ids of each batch whose commit it saw.
loader() {
	local out=$1
	while [ ! -e "$dir/stop" ]; do
		ids=$(psql_as "$port" postgres -tA -c \
			"SELECT string_agg(taskorch.trigger('crash', jsonb_build_object('i', g)), ' ')
			   FROM generate_series(1, 50) g" 2>/dev/null) && echo "$ids" >>"$out" || sleep 0.05
	done
}
start_loaders() {
	for n in 1 2; do
		loader "$dir/committed.$n" &
		loader_pids+=($!)
	done
}
stop_loaders() {
	touch "$dir/stop"		# each finishes the batch it is sending
	wait "${loader_pids[@]}" 2>/dev/null || true
	loader_pids=()
}
executing_worker() {
	psql_as "$port" postgres -tA -c \
		"SELECT pid FROM taskorch.workers() WHERE run_id IS NOT NULL LIMIT 1" 2>/dev/null || true
}

start_loaders
sleep 2

# 1. kill -9 a worker backend in the middle of a run
pid=""
for _ in $(seq 1 100); do
	pid=$(executing_worker)
	[ -n "$pid" ] && break
	sleep 0.02
done
[ -n "$pid" ] || fail "no worker was executing a run"
echo "kill -9 of worker $pid while it executes a run"
kill -9 "$pid"
wait_for "$port" postgres "SELECT count(*) = 2 FROM taskorch.workers() WHERE pid IS NOT NULL" 60 ||
	fail "workers did not come back after kill -9"
sleep 2

# 2. immediate shutdown under load, then start again
echo "pg_ctl stop -m immediate under load"
cluster_stop "$dir" immediate
sleep 0.5
cluster_restart "$dir"
sleep 2
stop_loaders

wait_for "$port" postgres \
	"SELECT NOT EXISTS (SELECT FROM taskorch.run WHERE status IN ('QUEUED', 'DELAYED'))" 120 ||
	fail "runs did not finish after the restarts"

cat "$dir"/committed.* | tr ' ' '\n' | grep -v '^$' | sort -u >"$dir/committed.ids"
chown postgres: "$dir/committed.ids"
committed=$(wc -l <"$dir/committed.ids")
[ "$committed" -gt 500 ] || fail "too few committed triggers to mean anything ($committed)"

psql_as "$port" postgres -c "CREATE TABLE committed (id text)" \
	-c "\\copy committed FROM '$dir/committed.ids'"
psql_as "$port" postgres <<'SQL'
\pset footer off
SELECT (SELECT count(*) FROM committed) AS committed_triggers,
	   (SELECT count(*) FROM taskorch.run) AS runs,
	   (SELECT count(*) FROM taskorch.run WHERE status = 'COMPLETED') AS completed,
	   (SELECT count(*) FROM crash_effects) AS effects,
	   (SELECT count(*) FROM taskorch.attempt) AS failed_attempts;
DO $$
DECLARE
	lost bigint;
	unfinished bigint;
	duplicated bigint;
	missing bigint;
BEGIN
	SELECT count(*) INTO lost FROM committed c
	 WHERE NOT EXISTS (SELECT FROM taskorch.run r WHERE r.id = c.id);
	SELECT count(*) INTO unfinished FROM taskorch.run WHERE status <> 'COMPLETED';
	SELECT count(*) INTO duplicated FROM
		(SELECT run_id FROM crash_effects GROUP BY run_id HAVING count(*) > 1) d;
	SELECT count(*) INTO missing FROM taskorch.run r
	 WHERE NOT EXISTS (SELECT FROM crash_effects e WHERE e.run_id = r.id);
	IF unfinished > 0 THEN
		RAISE WARNING 'not completed: %', (SELECT jsonb_agg(jsonb_build_object('id', id,
			'status', status, 'error', error, 'attempts', attempts, 'created', created_at,
			'failed', (SELECT jsonb_agg(a.error) FROM taskorch.attempt a WHERE a.run_id = r.id)))
			FROM taskorch.run r WHERE status <> 'COMPLETED');
	END IF;
	IF lost + unfinished + duplicated + missing > 0 THEN
		RAISE EXCEPTION 'lost % committed runs, % runs not completed, % effects duplicated, % effects missing',
			lost, unfinished, duplicated, missing;
	END IF;
END $$;
SQL
echo "crash test passed: $committed committed runs, each completed exactly once"

# 3. waiting runs survive an immediate shutdown and resume after the restart
psql_as "$port" postgres >/dev/null <<'SQL'
CREATE TABLE wait_effects (run_id text NOT NULL, phase text NOT NULL);
CREATE FUNCTION waiting_task(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO wait_effects VALUES (taskorch.current_run()->>'id', 'before');
	PERFORM taskorch.wait_for('2s');
	INSERT INTO wait_effects VALUES (taskorch.current_run()->>'id', 'after');
	RETURN '{}';
END $$;
SELECT taskorch.register_task('waiting', 'waiting_task(jsonb)', max_attempts => 1);
SELECT count(taskorch.trigger('waiting')) FROM generate_series(1, 50);
-- parents waiting on children that are still delayed when the server stops
CREATE FUNCTION parent_task(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT taskorch.trigger_and_wait('waiting', '{}', '{"delay": "2s"}') $$;
SELECT taskorch.register_task('parent', 'parent_task(jsonb)', max_attempts => 1);
SELECT count(taskorch.trigger('parent')) FROM generate_series(1, 20);
SQL
wait_for "$port" postgres "SELECT count(*) = 70 FROM taskorch.run WHERE task_id IN ('waiting', 'parent') AND status = 'WAITING'" 30 ||
	fail "the runs did not start waiting"
echo "pg_ctl stop -m immediate while 50 runs wait for a time and 20 for delayed children"
cluster_stop "$dir" immediate
cluster_restart "$dir"
wait_for "$port" postgres "SELECT count(*) = 90 FROM taskorch.run WHERE task_id IN ('waiting', 'parent') AND status = 'COMPLETED'" 60 ||
	fail "waiting runs did not complete after the restart: $(psql_as "$port" postgres -tAc "SELECT task_id, status, count(*) FROM taskorch.run WHERE task_id IN ('waiting', 'parent') GROUP BY 1, 2")"
[ "$(psql_as "$port" postgres -tAc "SELECT count(*) FROM wait_effects")" = 140 ] ||
	fail "each waiting run should have committed 'before' and 'after' once"
[ "$(psql_as "$port" postgres -tAc "SELECT count(*) FROM taskorch.run WHERE task_id = 'parent' AND (output->>'ok')::bool")" = 20 ] ||
	fail "parents did not get their children's results"
echo "crash test passed: 70 runs waiting through an immediate shutdown (20 on children) completed, effects once"

# 3b. tracks in flight survive an immediate shutdown: every step's effect once
psql_as "$port" postgres >/dev/null <<'SQL'
CREATE TABLE step_effects (track int, step text);
CREATE FUNCTION crash_step(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	INSERT INTO step_effects SELECT (payload->'trampData'->>'track')::int,
									taskorch.current_run()->>'taskIdentifier';
	SELECT pg_sleep(0.02);
	SELECT jsonb_build_object('ok', true) $$;
SELECT taskorch.register_task('step-' || s, 'crash_step(jsonb)') FROM unnest(ARRAY['a', 'b', 'c']) s;
SELECT taskorch.define_track('crash-track', '[{"task": "step-a"}, {"task": "step-b"}, {"task": "step-c"}]');
SELECT count(taskorch.trigger('crash-track', jsonb_build_object('trampData', jsonb_build_object('track', g))))
  FROM generate_series(1, 30) g;
SQL
wait_for "$port" postgres "SELECT count(*) >= 10 FROM step_effects" 30 ||
	fail "the tracks did not start"
echo "pg_ctl stop -m immediate while 30 tracks of 3 steps run ($(psql_as "$port" postgres -tAc "SELECT count(*) FROM step_effects") steps done)"
cluster_stop "$dir" immediate
cluster_restart "$dir"
wait_for "$port" postgres "SELECT count(*) = 30 FROM taskorch.jobs WHERE name = 'crash-track' AND status = 'Complete'" 60 ||
	fail "tracks did not complete after the restart: $(psql_as "$port" postgres -tAc "SELECT status, count(*) FROM taskorch.jobs GROUP BY 1")"
[ "$(psql_as "$port" postgres -tAc "SELECT count(*) = 90 AND count(DISTINCT (track, step)) = 90 FROM step_effects")" = t ] ||
	fail "each step of each track should have committed its effect exactly once"
echo "crash test passed: 30 tracks through an immediate shutdown completed, each of their 90 steps' effects once"

# 4. a run whose execution kills its worker each time ends CRASHED
poison=$(psql_as "$port" postgres -tAc "SELECT taskorch.trigger('poison')")
for attempt in 1 2; do
	wait_for "$port" postgres "SELECT EXISTS (SELECT FROM taskorch.workers() WHERE run_id = '$poison')" 30 ||
		fail "the poison run was not executed (attempt $attempt)"
	pid=$(psql_as "$port" postgres -tAc "SELECT pid FROM taskorch.workers() WHERE run_id = '$poison'")
	kill -9 "$pid"
	sleep 1
done
wait_for "$port" postgres "SELECT status = 'CRASHED' FROM taskorch.run WHERE id = '$poison'" 60 ||
	fail "the poison run did not end CRASHED: $(psql_as "$port" postgres -tAc "SELECT status, attempts FROM taskorch.run WHERE id = '$poison'")"
psql_as "$port" postgres -c "SELECT id, status, attempts, error->>'message' AS error FROM taskorch.runs_wide WHERE id = '$poison'" \
	-c "SELECT number, status FROM taskorch.attempts WHERE run_id = '$poison' ORDER BY number"
[ "$(psql_as "$port" postgres -tAc "SELECT count(*) FROM taskorch.attempt WHERE run_id = '$poison' AND status = 'CRASHED'")" = 2 ] ||
	fail "the poison run should have two CRASHED attempts"
wait_for "$port" postgres "SELECT EXISTS (SELECT FROM failure_hooks WHERE result->>'id' = '$poison')" 30 ||
	fail "the on_failure hook did not run for the CRASHED run"
hooked=$(psql_as "$port" postgres -tAc "SELECT count(*) || ' ' || bool_and(NOT (result->>'ok')::bool)
	|| ' ' || min(result->'error'->>'name') FROM failure_hooks WHERE result->>'id' = '$poison'")
[ "$hooked" = "1 true CrashedError" ] ||
	fail "the CRASHED run's on_failure hook should run once, with its failed Result (runs, not ok, error: $hooked)"
echo "crash test passed: a run that kills its worker ends CRASHED after max_attempts, and its on_failure hook runs"

# 5. a run whose outcome cannot be recorded (here a trigger on the runs table
# refuses it) aborts its batch; the worker isolates runs, ends that one
# SYSTEM_FAILURE, and the others of the batch complete
pids_before=$(psql_as "$port" postgres -tAc "SELECT string_agg(pid::text, ',' ORDER BY pid) FROM taskorch.workers()")
psql_as "$port" postgres >/dev/null <<'SQL'
CREATE FUNCTION refuse_outcome() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.task_id = 'unrecordable' AND NEW.status = 'COMPLETED' THEN
		RAISE EXCEPTION 'outcome of % refused', NEW.id;
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER refuse_outcome BEFORE UPDATE ON taskorch.run FOR EACH ROW EXECUTE FUNCTION refuse_outcome();
SELECT taskorch.register_task('unrecordable', 'crash_task(jsonb)', on_failure => 'failure-hook');
TRUNCATE crash_effects;
SELECT taskorch.batch_trigger('[{"task": "crash", "payload": {}}, {"task": "unrecordable", "payload": {}},
								{"task": "crash", "payload": {}}, {"task": "crash", "payload": {}}]');
SQL
wait_for "$port" postgres "SELECT NOT EXISTS (SELECT FROM taskorch.run WHERE status IN ('QUEUED', 'EXECUTING'))" 60 ||
	fail "the batch with an unrecordable run did not settle"
psql_as "$port" postgres -c "SELECT task_id, status, attempts, error->>'message' AS error FROM taskorch.runs_wide
							 WHERE task_id = 'unrecordable' OR batch_id IS NOT NULL AND created_at > now() - interval '1 minute'
							 ORDER BY id"
[ "$(psql_as "$port" postgres -tAc "SELECT status FROM taskorch.run WHERE task_id = 'unrecordable'")" = SYSTEM_FAILURE ] ||
	fail "the unrecordable run should end SYSTEM_FAILURE"
[ "$(psql_as "$port" postgres -tAc "SELECT count(*) FROM taskorch.run r JOIN taskorch.batch b ON b.id = r.batch_id
									  WHERE r.task_id = 'crash' AND r.status = 'COMPLETED'
									    AND b.created_at > now() - interval '1 minute'")" = 3 ] ||
	fail "the other runs of its batch should complete"
[ "$(psql_as "$port" postgres -tAc "SELECT count(*) FROM crash_effects")" = 3 ] ||
	fail "the unrecordable run's effects should be rolled back, the others' kept once"
[ "$(psql_as "$port" postgres -tAc "SELECT string_agg(pid::text, ',' ORDER BY pid) FROM taskorch.workers()")" = "$pids_before" ] ||
	fail "the workers should have kept running"
unrecordable=$(psql_as "$port" postgres -tAc "SELECT id FROM taskorch.run WHERE task_id = 'unrecordable'")
wait_for "$port" postgres "SELECT EXISTS (SELECT FROM failure_hooks WHERE result->>'id' = '$unrecordable')" 30 ||
	fail "the on_failure hook did not run for the SYSTEM_FAILURE run"
psql_as "$port" postgres -c "DROP TRIGGER refuse_outcome ON taskorch.run" >/dev/null
echo "crash test passed: a run whose outcome cannot be recorded ends SYSTEM_FAILURE (its on_failure hook runs); its batch's other runs complete; no worker restarts"
