#!/usr/bin/env bash
# Schedules across an immediate shutdown: each tick makes one run.
#
# Four workers serve a schedule of every second whose task records its
# tick.  The test lets it tick, stops the server with `pg_ctl stop -m
# immediate` (workers killed mid-transaction, some in the middle of firing
# a tick), waits so that ticks are missed, starts it again and lets it tick.
# Then:
#   - no tick made two runs, and every run's effect is recorded once;
#   - before the shutdown and after the restart, every tick made its run
#     (none lost but those missed while the server was down);
#   - of the ticks missed while it was down, only the latest ran, once
#     (the default "missed": "latest").
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/test/lib.sh"
port=${SCHEDULES_PORT:-55442}
throwaway_cluster schedules "$port" "taskorch.workers_per_database = 4"

psql_as "$port" postgres <<'SQL'
CREATE EXTENSION taskorch;
CREATE TABLE tick_effects (tick timestamptz NOT NULL, run_id text NOT NULL);
CREATE FUNCTION record_tick(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	INSERT INTO tick_effects VALUES ((payload->>'timestamp')::timestamptz, taskorch.current_run()->>'id')
	RETURNING jsonb_build_object('tick', tick) $$;
SELECT taskorch.register_task('record-tick', 'record_tick(jsonb)');
SELECT taskorch.schedule('record-tick', '* * * * * *');
SQL

sleep 4
down_from=$(q "SELECT now()")
cluster_stop "$dir" immediate
sleep 3
cluster_restart "$dir"
up_at=$(q "SELECT now()")
sleep 4
q "SELECT taskorch.deactivate_schedule(id) FROM taskorch.schedule" >/dev/null
wait_for "$port" postgres "SELECT count(*) = 0 FROM taskorch.runs WHERE NOT taskorch.finished(status)" ||
	fail "runs did not finish"

dup_runs=$(q "SELECT count(*) FROM (SELECT payload->>'timestamp' FROM taskorch.runs GROUP BY 1 HAVING count(*) > 1) d")
dup_effects=$(q "SELECT count(*) FROM (SELECT tick FROM tick_effects GROUP BY 1 HAVING count(*) > 1) d")
runs=$(q "SELECT count(*) FROM taskorch.runs")
effects=$(q "SELECT count(*) FROM tick_effects")
[ "$dup_runs" = 0 ] || fail "$dup_runs ticks made more than one run"
[ "$dup_effects" = 0 ] || fail "$dup_effects ticks recorded more than once"
[ "$runs" = "$effects" ] || fail "$runs runs but $effects effects"

# every second from the first tick to the shutdown, and from the restart's
# first tick to the last, made its run: no gaps but the downtime
gaps=$(q "WITH span AS (SELECT min(tick) AS first, max(tick) AS last FROM tick_effects),
			   expected AS (SELECT generate_series(first, date_trunc('second', '$down_from'::timestamptz) - interval '2 seconds',
												   interval '1 second') AS tick FROM span
							UNION ALL
							SELECT generate_series(date_trunc('second', '$up_at'::timestamptz) + interval '2 seconds', last,
												   interval '1 second') FROM span)
		  SELECT count(*) FROM expected e WHERE NOT EXISTS (SELECT FROM tick_effects t WHERE t.tick = e.tick)")
[ "$gaps" = 0 ] || fail "$gaps ticks were lost while the server was up"
before=$(q "SELECT count(*) FROM tick_effects WHERE tick <= '$down_from'")
after=$(q "SELECT count(*) FROM tick_effects WHERE tick >= '$up_at'")
[ "$before" -ge 3 ] || fail "only $before ticks before the shutdown"
[ "$after" -ge 3 ] || fail "only $after ticks after the restart"
# missed while down: one run, for the latest missed tick (fired at start-up)
missed_runs=$(q "SELECT count(*) FROM tick_effects WHERE tick > '$down_from'::timestamptz + interval '1 second'
				 AND tick < '$up_at'::timestamptz - interval '1 second'")
[ "$missed_runs" -le 1 ] || fail "$missed_runs runs for ticks missed while the server was down (want at most the latest)"
echo "schedules test passed: $runs ticks, one run each ($before before an immediate shutdown, $after after the restart, $missed_runs for the missed ones), 4 workers"
