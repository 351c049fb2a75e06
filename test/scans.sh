#!/usr/bin/env bash
# The workers' statements keep the shape of their plans whatever the
# planner's estimates: none reads the runs, waits, tokens or batches
# tables sequentially.  A worker's maintenance pass runs every second and
# the runs table keeps every finished run for the retention (days of
# them); its statistics lag its churn, so a plan chosen by cost alone may
# turn into a scan of the whole table each second (the purge did, 50-150
# ms a pass with 200,000 rows).
#
# The cluster prices an index page read at 1,000 times a sequential one
# (random_page_cost), so that every statement whose plan is left to the
# costs scans.  While the workers execute runs and make their maintenance
# passes (promote, expire, purge, waits, tokens, counts, external runs),
# pg_stat_user_tables must count no sequential scan of those tables.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/test/lib.sh"
port=${SCANS_PORT:-55447}
throwaway_cluster scans "$port" "taskorch.workers_per_database = 2" "random_page_cost = 1000"
names="run waitpoint wait_token batch attempt log"
tables="'${names// /\', \'}'"	# as an SQL list

psql_as "$port" postgres >/dev/null <<'SQL'
CREATE EXTENSION taskorch;
CREATE FUNCTION noop(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
SELECT taskorch.register_task('noop', 'noop(jsonb)');
SELECT taskorch.register_external_task('outside');
SELECT taskorch.create_queue('held');
SELECT taskorch.pause_queue('held');
-- what the maintenance passes look at: finished runs (the purge), queued
-- runs with a ttl (expiry), delayed runs (promotion), a batch, an external
-- task's queued run
SELECT count(taskorch.trigger('noop', jsonb_build_object('i', g))) FROM generate_series(1, 200) g;
SELECT count(taskorch.trigger('noop', jsonb_build_object('i', g), queue => 'held', ttl => '1h'))
  FROM generate_series(1, 200) g;
SELECT taskorch.trigger('noop', delay => '1h') IS NOT NULL;
SELECT taskorch.batch_trigger('noop', '[{"payload": {"b": 1}}, {"payload": {"b": 2}}]') IS NOT NULL;
SELECT taskorch.trigger('outside') IS NOT NULL;
SQL
wait_until "$port" postgres "(SELECT count(*) = 202 FROM taskorch.run WHERE task_id = 'noop' AND status = 'COMPLETED')"
# the workers' plans are made under the cluster's costs; a second and more
# of passes (and the plan cache's choice of generic plans) before the count
sleep 6
q "SELECT count(pg_stat_reset_single_table_counters(relid)) FROM pg_stat_user_tables
	WHERE schemaname = 'taskorch'" >/dev/null
# runs executed during the count: claims and completions
q "SELECT count(taskorch.trigger('noop', jsonb_build_object('j', g))) FROM generate_series(1, 100) g" >/dev/null
sleep 4
scans=$(q "SELECT coalesce(string_agg(relname || ' ' || seq_scan, ', ' ORDER BY relname), '')
			 FROM pg_stat_user_tables
			WHERE schemaname = 'taskorch' AND relname IN ($tables) AND seq_scan > 0")
passes=$(q "SELECT sum(idx_scan) FROM pg_stat_user_tables WHERE schemaname = 'taskorch' AND relname = 'run'")
[ "${passes:-0}" -gt 0 ] || fail "the workers read nothing of the runs table in 4 s"
[ -z "$scans" ] || fail "sequential scans by the workers: $scans (index scans of taskorch.run: $passes)"
echo "ok - 4 s of executing and maintenance with index reads priced 1,000 times a scan's: no sequential scan of ${names// /, } ($passes index scans of taskorch.run)"
