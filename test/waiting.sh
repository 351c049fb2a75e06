#!/usr/bin/env bash
# A waiting parent holds no worker: with ONE worker, a parent that waits on
# 100 children completes (the worker runs the children while the parent
# waits), 1,000 parents each waiting on a child all complete, and a
# three-level chain of waits (a child that itself waits) completes; tracks
# canceled between steps stop there.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/test/lib.sh"
port=${WAITING_PORT:-55441}
# a fixed pool of one worker: waits must not need a second
throwaway_cluster waiting "$port" "taskorch.workers_per_database = 1" "taskorch.max_workers_per_database = 0"
psql_as "$port" postgres >/dev/null <<'SQL'
CREATE EXTENSION taskorch;
CREATE FUNCTION kid(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT payload $$;
CREATE FUNCTION fan_out(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	res jsonb := taskorch.batch_trigger_and_wait('kid',
		(SELECT jsonb_agg(jsonb_build_object('payload', jsonb_build_object('i', g)))
		   FROM generate_series(1, (payload->>'children')::int) g));
BEGIN
	RETURN jsonb_build_object('ok', (SELECT count(*) FROM jsonb_array_elements(res->'runs') r
									  WHERE (r->>'ok')::bool));
END $$;
SELECT taskorch.register_task('kid', 'kid(jsonb)');
SELECT taskorch.register_task('fan-out', 'fan_out(jsonb)');
SELECT taskorch.trigger('fan-out', '{"children": 100}');
SELECT count(taskorch.trigger('fan-out', '{"children": 1}')) FROM generate_series(1, 1000);
-- nested: each level waits for the next
CREATE FUNCTION chain(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	depth int := (payload->>'depth')::int;
BEGIN
	IF depth = 0 THEN
		PERFORM taskorch.wait_for('100ms');
		RETURN '{"bottom": true}';
	END IF;
	RETURN jsonb_build_object('below', taskorch.trigger_and_wait_unwrap('chain',
								jsonb_build_object('depth', depth - 1)));
END $$;
SELECT taskorch.register_task('chain', 'chain(jsonb)');
SELECT taskorch.trigger('chain', '{"depth": 2}');
-- debounced trigger_and_wait: both parents block on the one debounced child
CREATE FUNCTION deb_parent(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT taskorch.trigger_and_wait('kid', payload,
									 '{"debounce": {"key": "shared", "delay": "1s"}}') $$;
SELECT taskorch.register_task('deb-parent', 'deb_parent(jsonb)');
SELECT count(taskorch.trigger('deb-parent', jsonb_build_object('p', g))) FROM generate_series(1, 2) g;
SQL
wait_for "$port" postgres "SELECT count(*) = 1001 FROM taskorch.run WHERE task_id = 'fan-out' AND status = 'COMPLETED'" 120 ||
	fail "parents did not complete: $(psql_as "$port" postgres -tAc "SELECT task_id, status, count(*) FROM taskorch.run GROUP BY 1, 2")"
big=$(psql_as "$port" postgres -tAc "SELECT output->>'ok' FROM taskorch.run WHERE task_id = 'fan-out' AND payload->>'children' = '100'")
[ "$big" = 100 ] || fail "the parent saw $big successful children, not 100"
echo "ok - with one worker, a parent waiting on 100 children and 1,000 waiting parents all completed"
wait_for "$port" postgres "SELECT count(*) = 3 FROM taskorch.run WHERE task_id = 'chain' AND status = 'COMPLETED'" 60 ||
	fail "the chain of waits did not complete"
top_output=$(psql_as "$port" postgres -tAc "SELECT output FROM taskorch.run WHERE task_id = 'chain' AND payload->>'depth' = '2'")
[ "$top_output" = '{"below": {"below": {"bottom": true}}}' ] || fail "chain output: $top_output"
echo "ok - nested waits: a run waiting on a child that waits on a child that waits for a time"
wait_for "$port" postgres "SELECT count(*) = 2 FROM taskorch.run WHERE task_id = 'deb-parent' AND status = 'COMPLETED'" 60 ||
	fail "the parents of a debounced child did not complete"
[ "$(psql_as "$port" postgres -tAc "SELECT count(DISTINCT output->>'id') FROM taskorch.run WHERE task_id = 'deb-parent'")" = 1 ] ||
	fail "the two parents did not wait on the same debounced child"
[ "$(psql_as "$port" postgres -tAc "SELECT count(*) FROM taskorch.run WHERE debounce_key = 'shared'")" = 1 ] ||
	fail "the debounced child was made more than once"
echo "ok - a debounced trigger_and_wait: both parents got the one debounced child's result"

# Canceling tracks the engine advances between steps: one statement
# canceling 20 tracks of [quick, slow, quick] while their steps run (it
# holds each track while it waits for the batches holding its steps, and
# those batches pass such a track over instead of deadlocking with it);
# and a track canceled while its second step (started by the engine, not
# by its runner) runs gets no third step.
psql_as "$port" postgres >/dev/null <<'SQL'
CREATE FUNCTION slow(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(4); RETURN payload; END $$;
SELECT taskorch.register_task('slow', 'slow(jsonb)');
SELECT taskorch.define_track('cancel-me', '[{"task": "kid", "name": "one"}, {"task": "slow", "name": "two"},
											{"task": "kid", "name": "three"}]');
SELECT count(taskorch.trigger('cancel-me', jsonb_build_object('t', g))) FROM generate_series(1, 20) g;
SQL
wait_for "$port" postgres "SELECT count(*) > 0 FROM taskorch.run WHERE task_id = 'slow'" 60 ||
	fail "no track reached its second step"
psql_as "$port" postgres -tAc "SELECT count(*) FILTER (WHERE taskorch.cancel(id)) FROM taskorch.run WHERE task_id = 'cancel-me'" >/dev/null ||
	fail "canceling 20 tracks failed"
wait_for "$port" postgres "SELECT NOT EXISTS (SELECT FROM taskorch.run WHERE NOT taskorch.finished(status))" 60 ||
	fail "runs still unfinished after the cancel"
[ "$(psql_as "$port" postgres -tAc "SELECT count(*) FROM taskorch.run WHERE task_id = 'cancel-me' AND status = 'CANCELED'")" = 20 ] ||
	fail "the tracks did not all end CANCELED: $(psql_as "$port" postgres -tAc "SELECT status, count(*) FROM taskorch.run WHERE task_id = 'cancel-me' GROUP BY 1")"
echo "ok - one statement cancels 20 tracks while a worker ends their steps: no deadlock, all CANCELED"
track=$(psql_as "$port" postgres -tAc "SELECT taskorch.trigger('cancel-me', '{\"t\": 0}')")
wait_for "$port" postgres "SELECT EXISTS (SELECT FROM taskorch.runs_wide WHERE task_id = 'slow' AND status = 'EXECUTING'
													AND parent_run_id = '$track')" 60 ||
	fail "the track's second step did not start"
[ "$(psql_as "$port" postgres -tAc "SELECT taskorch.cancel('$track')")" = t ] || fail "cancel() of the track returned false"
wait_for "$port" postgres "SELECT NOT EXISTS (SELECT FROM taskorch.run WHERE NOT taskorch.finished(status))" 60 ||
	fail "runs still unfinished after the cancel"
state=$(psql_as "$port" postgres -tAc "SELECT string_agg(task_id || ':' || status, ' ' ORDER BY created_at)
	FROM taskorch.run WHERE id = '$track' OR parent_run_id = '$track'")
[ "$state" = "cancel-me:CANCELED kid:COMPLETED slow:CANCELED" ] || fail "after the cancel: $state"
[ "$(psql_as "$port" postgres -tAc "SELECT count(*) FROM taskorch.waitpoint WHERE run_id = '$track' AND key = 'three'")" = 0 ] ||
	fail "the canceled track got a third step"
echo "ok - a track canceled during a step the engine started gets no further step"
