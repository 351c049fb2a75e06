-- taskorch.stats after a mixed load agrees with the runs table: what
-- waits (delayed, queued for an external worker), what ended since the
-- reset (completed, failed after retries); who sees which rows; reset.
SELECT taskorch.stats_reset();
CREATE FUNCTION st_ok(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT payload $$;
CREATE FUNCTION st_fail(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'failing on purpose'; END $$;
SELECT taskorch.register_task('st-ok', 'st_ok(jsonb)');
SELECT taskorch.register_task('st-fail', 'st_fail(jsonb)', max_attempts => 2,
	retry => '{"minTimeoutInMs": 10, "maxTimeoutInMs": 10}');
SELECT taskorch.register_external_task('st-ext');
SELECT count(taskorch.trigger('st-ok', jsonb_build_object('n', g))) FROM generate_series(1, 40) g;
SELECT count(taskorch.trigger('st-fail')) FROM generate_series(1, 3);
SELECT count(taskorch.trigger('st-ok', '{}', delay => '1h')) FROM generate_series(1, 4);
SELECT count(taskorch.trigger('st-ext')) FROM generate_series(1, 6);
SELECT wait_for_runs();
-- the next count (a worker's, at most a second apart) sees them
DO $$
BEGIN
	FOR i IN 1..500 LOOP
		EXIT WHEN (SELECT delayed = 4 FROM taskorch.stats WHERE scope = 'task' AND name = 'st-ok')
			  AND (SELECT queued = 6 FROM taskorch.stats WHERE scope = 'task' AND name = 'st-ext');
		PERFORM pg_sleep(0.01);
	END LOOP;
END $$;
-- each figure beside the runs table's
SELECT s.name, s.delayed, s.queued, s.due, s.completed_since_reset, s.failed_since_reset,
	   (SELECT count(*) FROM taskorch.runs r WHERE r.task_id = s.name AND r.status = 'DELAYED') AS t_delayed,
	   (SELECT count(*) FROM taskorch.runs r WHERE r.task_id = s.name AND r.status = 'QUEUED') AS t_queued,
	   (SELECT count(*) FROM taskorch.runs r WHERE r.task_id = s.name AND r.status = 'COMPLETED') AS t_completed,
	   (SELECT count(*) FROM taskorch.runs r WHERE r.task_id = s.name AND r.status = 'FAILED') AS t_failed
  FROM taskorch.stats s WHERE s.scope = 'task' AND s.name LIKE 'st-%' ORDER BY s.name;
-- rates and latencies over the minute: there, and plausible
SELECT name, completed_per_s > 0 AS completing, exec_p50_ms >= 0 AND exec_p95_ms >= exec_p50_ms AS exec_ordered,
	   wait_p95_ms >= wait_p50_ms AS wait_ordered, oldest_due_s IS NOT NULL AS ext_waits
  FROM taskorch.stats WHERE scope = 'task' AND name IN ('st-ok', 'st-ext') ORDER BY name;
-- the queue of a task, and the database (taskorch_admin's)
SELECT scope, name IS NULL AS all_of_it, completed_since_reset >= 40 AS has_them,
	   workers BETWEEN 2 AND current_setting('taskorch.max_workers_per_database')::int AS workers_in_pool
  FROM taskorch.stats WHERE scope = 'database' OR (scope = 'queue' AND name = 'st-ok') ORDER BY scope;
-- a role sees the rows of its tasks only, not the database's
CREATE ROLE regress_st_role;
GRANT USAGE ON SCHEMA taskorch TO regress_st_role;
GRANT EXECUTE ON FUNCTION st_ok(jsonb) TO regress_st_role;
SET ROLE regress_st_role;
SELECT taskorch.register_task('st-mine', 'st_ok(jsonb)');
SELECT taskorch.trigger('st-mine', '{}', delay => '1h') IS NOT NULL AS triggered;
DO $$
BEGIN
	FOR i IN 1..500 LOOP
		EXIT WHEN (SELECT delayed = 1 FROM taskorch.stats WHERE scope = 'task' AND name = 'st-mine');
		PERFORM pg_sleep(0.01);
	END LOOP;
END $$;
SELECT scope, name, delayed FROM taskorch.stats ORDER BY scope, name;
SELECT try('SELECT taskorch.stats_reset()');
RESET ROLE;
SELECT count(taskorch.cancel(id)) FROM taskorch.runs WHERE task_id IN ('st-mine', 'st-ext', 'st-ok') AND NOT taskorch.finished(status);
-- runs that end without an attempt count too: canceled, expired in the queue
SELECT taskorch.trigger('st-ext', '{}', ttl => '1s') IS NOT NULL AS triggered;
SELECT pg_sleep(1.1);
SELECT taskorch.run_pending(0);
SELECT s.name, s.canceled_since_reset, s.expired_since_reset,
	   (SELECT count(*) FROM taskorch.runs r WHERE r.task_id = s.name AND r.status = 'CANCELED') AS t_canceled,
	   (SELECT count(*) FROM taskorch.runs r WHERE r.task_id = s.name AND r.status = 'EXPIRED') AS t_expired
  FROM taskorch.stats s WHERE s.scope = 'task' AND s.name IN ('st-ok', 'st-ext') ORDER BY s.name;
SELECT taskorch.unregister_task('st-mine');
REVOKE USAGE ON SCHEMA taskorch FROM regress_st_role;
REVOKE EXECUTE ON FUNCTION st_ok(jsonb) FROM regress_st_role;
DROP OWNED BY regress_st_role;
DROP ROLE regress_st_role;
-- a reset starts the totals again
SELECT taskorch.stats_reset();
SELECT completed_since_reset, failed_since_reset, completed_per_s FROM taskorch.stats WHERE scope = 'task' AND name = 'st-ok';
