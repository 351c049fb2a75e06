#!/usr/bin/env bash
# The executor under slow work, against a real cluster with 8 workers and
# the default batch settings.
#
#   - 16 runs of 0.5 s triggered in one transaction run on more than one
#     worker, and side by side (at least 8 at once at some moment);
#   - a queue with a concurrency limit of 2 runs 2 of its slow runs at once
#     (the limit is reached) and never more;
#   - a run that hangs (5 s) triggered in one transaction with quick runs
#     of another task holds none of them back;
#   - with 2 kept workers and a pool of up to 6, slow runs queued with a
#     backlog of quick ones run on extra workers, and quick runs finish
#     while they do; the extra workers do not claim the quick runs only to
#     let them go, neither when they come (the kept workers found the quick
#     runs' queue fast) nor with more slow runs than extra workers
#     (taskorch.workers().runs_let_go).
# Behaviour only: timings are the bench's (bench/bench.sh).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/test/lib.sh"
port=${EXECUTOR_PORT:-55443}
throwaway_cluster executor "$port" "taskorch.workers_per_database = 8" "max_worker_processes = 16"

psql_as "$port" postgres >/dev/null <<'SQL'
CREATE EXTENSION taskorch;
CREATE FUNCTION nap(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT pg_sleep((payload->>'s')::float8); SELECT jsonb_build_object('pid', pg_backend_pid()) $$;
CREATE FUNCTION quick(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
SELECT taskorch.register_task('slow', 'nap(jsonb)');
SELECT taskorch.register_task('hang', 'nap(jsonb)');
SELECT taskorch.register_task('quick', 'quick(jsonb)');
SELECT taskorch.create_queue('limited', concurrency_limit => 2);
SELECT taskorch.register_task('limited-slow', 'nap(jsonb)', queue => 'limited');
-- how many runs of a task executed at once, at most
CREATE FUNCTION most_at_once(task text) RETURNS bigint LANGUAGE sql AS $$
	SELECT max((SELECT count(*) FROM taskorch.runs o
				 WHERE o.task_id = r.task_id AND o.started_at <= r.started_at AND o.finished_at > r.started_at))
	  FROM taskorch.runs r WHERE r.task_id = task $$;
SQL
wait_for "$port" postgres "SELECT count(*) = 8 FROM taskorch.workers() WHERE pid IS NOT NULL" 30 ||
	fail "the 8 workers did not start"

q "SELECT count(taskorch.trigger('slow', '{\"s\": 0.5}')) FROM generate_series(1, 16)" >/dev/null
wait_for "$port" postgres "SELECT count(*) = 16 FROM taskorch.runs WHERE task_id = 'slow' AND status = 'COMPLETED'" 60 ||
	fail "the slow runs did not complete"
workers=$(q "SELECT count(DISTINCT output->>'pid') FROM taskorch.runs WHERE task_id = 'slow'")
at_once=$(q "SELECT most_at_once('slow')")
[ "$workers" -gt 1 ] || fail "16 slow runs ran on $workers worker(s)"
[ "$at_once" -ge 8 ] || fail "16 slow runs, 8 workers: at most $at_once at once"
echo "ok - 16 slow runs triggered in one transaction: $workers workers, $at_once at once"

q "SELECT count(taskorch.trigger('limited-slow', '{\"s\": 0.3}')) FROM generate_series(1, 12)" >/dev/null
wait_for "$port" postgres "SELECT count(*) = 12 FROM taskorch.runs WHERE task_id = 'limited-slow' AND status = 'COMPLETED'" 60 ||
	fail "the limited runs did not complete"
limited=$(q "SELECT most_at_once('limited-slow')")
[ "$limited" = 2 ] || fail "a queue limited to 2 ran $limited at once"
echo "ok - a queue with a concurrency limit of 2 runs 2 slow runs at once, never more"

psql_as "$port" postgres >/dev/null <<'SQL'
BEGIN;
SELECT taskorch.trigger('hang', '{"s": 5}');
SELECT count(taskorch.trigger('quick')) FROM generate_series(1, 10);
COMMIT;
SQL
wait_for "$port" postgres "SELECT count(*) = 10 FROM taskorch.runs WHERE task_id = 'quick' AND status = 'COMPLETED'" 3 ||
	fail "quick runs waited behind a hung run: $(q "SELECT task_id, status, count(*) FROM taskorch.runs WHERE task_id IN ('hang', 'quick') GROUP BY 1, 2")"
[ "$(q "SELECT status FROM taskorch.runs WHERE task_id = 'hang'")" != COMPLETED ] ||
	fail "the hung run ended before the quick ones were checked"
echo "ok - a run that hangs holds back none of the runs triggered with it"

# kept and extra workers: 2 kept, a pool of up to 6.  Slow runs queued
# with a backlog of quick ones run on extra workers, never on the kept
# ones, and the quick runs go on while they do.  (The hung run first ends:
# a kept worker executing it would leave the quick runs to the extra ones.)
wait_for "$port" postgres "SELECT status = 'COMPLETED' FROM taskorch.runs WHERE task_id = 'hang'" 30 ||
	fail "the hung run did not end"
q "ALTER SYSTEM SET taskorch.workers_per_database = 2" >/dev/null
q "ALTER SYSTEM SET taskorch.max_workers_per_database = 6" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
wait_for "$port" postgres "SELECT count(*) = 2 FROM taskorch.workers() WHERE pid IS NOT NULL" 30 ||
	fail "the pool did not come down to its 2 kept workers"
kept=$(q "SELECT string_agg(pid::text, ',') FROM taskorch.workers() WHERE pid IS NOT NULL")
q "SELECT taskorch.register_task('mixed-slow', 'nap(jsonb)', queue => 'mixed-slow')" >/dev/null
# measured slow first (alone, it may run anywhere)
q "SELECT taskorch.trigger('mixed-slow', '{\"s\": 0.3}')" >/dev/null
wait_for "$port" postgres "SELECT count(*) = 1 FROM taskorch.runs WHERE task_id = 'mixed-slow' AND status = 'COMPLETED'" 10 ||
	fail "the first slow run did not complete"
# slow_beside_quick N S: N slow runs of S seconds queued ahead of 30,000
# quick runs, in one transaction; returns once the slow runs completed
slow_beside_quick() {
	local before
	before=$(q "SELECT count(*) FROM taskorch.runs WHERE task_id = 'mixed-slow' AND status = 'COMPLETED'")
	q "BEGIN; SELECT count(taskorch.trigger('mixed-slow', '{\"s\": $2}')) FROM generate_series(1, $1);
	   SELECT count(taskorch.trigger('quick')) FROM generate_series(1, 30000); COMMIT" >/dev/null
	wait_for "$port" postgres "SELECT count(*) = $before + $1 FROM taskorch.runs WHERE task_id = 'mixed-slow' AND status = 'COMPLETED'" 60 ||
		fail "the slow runs did not complete"
}
# extra_counts: the extra workers up (read before an idle one exits), the
# runs they claimed and let go, the runs they executed
extra_counts() {
	q "SELECT count(*), coalesce(sum(runs_let_go), 0), coalesce(sum(runs_executed), 0)
	   FROM taskorch.workers() WHERE slot >= 2" | tr '|' ' '
}
before=$(q "SELECT string_agg(pid || ':' || runs_let_go, ' ') FROM taskorch.workers() WHERE slot >= 2 AND pid IS NOT NULL")
slow_beside_quick 8 0.5
read -r _ extra_let_go extra_executed < <(extra_counts)
# runs the extra workers let go meanwhile: a worker's count since the
# first reading, or since it started
first_let_go=$(q "SELECT coalesce(sum(w.runs_let_go - coalesce(b.let_go, 0)), 0)
				  FROM taskorch.workers() w
				  LEFT JOIN (SELECT split_part(x, ':', 1)::int AS pid, split_part(x, ':', 2)::bigint AS let_go
							   FROM unnest(string_to_array(nullif('$before', ''), ' ')) x) b USING (pid)
				 WHERE w.slot >= 2 AND w.pid IS NOT NULL")
# the extra workers leave the quick runs' queue, which the kept workers
# found fast, to them without claiming chunks of it to let go (two chunks
# at most: a kept worker may take the last slow run, and extra workers
# claim quick runs while it executes it, to let them go when it is done)
[ "$first_let_go" -le 64 ] ||
	fail "the extra workers claimed and let go $first_let_go quick runs of a queue the kept workers found fast (before: $before; after: $(q "SELECT * FROM taskorch.workers()" | tr '\n' ' '))"
# A kept worker that finds no quick run left unclaimed may take a slow
# one while its peer still executes the last chunk it claimed (32 runs),
# or while an extra worker holds a chunk it lets go: up to two chunks of
# quick runs may start after it.
on_kept=$(q "SELECT count(*) FROM taskorch.runs r JOIN taskorch.run x USING (id)
			  WHERE r.task_id = 'mixed-slow' AND x.payload->>'s' = '0.5'
				AND (x.output->>'pid')::int = ANY ('{$kept}'::int[])
				AND (SELECT count(*) FROM taskorch.runs WHERE task_id = 'quick' AND started_at > r.started_at) > 64")
[ "$on_kept" = 0 ] || fail "$on_kept slow runs took a kept worker while quick runs were due (kept: $kept):
$(q "SELECT r.id, x.output->>'pid', r.started_at, (SELECT count(*) FROM taskorch.runs WHERE task_id = 'quick' AND started_at > r.started_at)
	   FROM taskorch.runs r JOIN taskorch.run x USING (id) WHERE r.task_id = 'mixed-slow' ORDER BY r.started_at")"
beside=$(q "SELECT count(*) FROM taskorch.runs WHERE task_id = 'quick' AND finished_at BETWEEN
			  (SELECT min(r.started_at) FROM taskorch.runs r JOIN taskorch.run x USING (id) WHERE r.task_id = 'mixed-slow' AND x.payload->>'s' = '0.5')
			  AND (SELECT max(finished_at) FROM taskorch.runs WHERE task_id = 'mixed-slow')")
[ "$beside" -gt 0 ] || fail "no quick run finished while the slow runs executed"
echo "ok - slow runs beside a backlog of quick ones: none on the kept workers ($kept), $beside quick runs finished meanwhile, $first_let_go quick runs claimed and let go by extra workers"
# An extra worker that met the quick runs leaves their queue to the kept
# workers until called for slow runs there.  More slow runs than extra
# workers, queued ahead of another backlog of quick ones: the kept workers
# meet them again and again and call the extra ones, which are not to
# claim chunks of quick runs each time only to let them go.
slow_beside_quick 12 0.4
read -r extras let_go executed < <(extra_counts)
let_go=$((let_go - extra_let_go))
[ "$extras" -gt 0 ] || fail "the extra workers were gone before the second backlog drained"
[ "$let_go" -le 32 ] ||
	fail "$extras extra workers claimed and let go $let_go quick runs while the kept ones drained them"
echo "ok - called again and again for slow runs, $extras extra workers left the quick runs to the kept ones ($let_go claimed and let go, $((executed - extra_executed)) runs executed)"
