-- What executes right now is read from shared memory: a run shows as
-- EXECUTING while a worker runs it, before anything is committed.
CREATE FUNCTION exec_sleep(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT pg_sleep((payload->>'s')::float8);
	SELECT jsonb_build_object('slept', payload->'s') $$;
SELECT taskorch.register_task('exec-sleep', 'exec_sleep(jsonb)');
SELECT taskorch.trigger('exec-sleep', '{"s": 1}') AS run \gset
DO $$
BEGIN
	FOR i IN 1..500 LOOP
		EXIT WHEN EXISTS (SELECT FROM taskorch.runs
						   WHERE task_id = 'exec-sleep' AND status = 'EXECUTING');
		PERFORM pg_sleep(0.01);
	END LOOP;
END
$$;
SELECT status, started_at IS NOT NULL AS has_started_at, finished_at
  FROM taskorch.runs WHERE id = :'run';
SELECT count(*) AS worker_shows_it FROM taskorch.workers() WHERE run_id = :'run';
SELECT run_id = :'run' AS listed, pid IS NOT NULL AS has_pid FROM taskorch.executing_runs();
-- a role that may not see the run does not see it executing either
CREATE ROLE regress_exec_stranger;
SET ROLE regress_exec_stranger;
SELECT count(*) AS stranger_sees_executing FROM taskorch.executing_runs();
SELECT count(*) AS stranger_sees_worker_run FROM taskorch.workers() WHERE run_id IS NOT NULL;
SELECT count(*) >= 2 AS stranger_sees_workers FROM taskorch.workers() WHERE database = current_database();
RESET ROLE;
SELECT count(*) AS still_executing FROM taskorch.executing_runs();
DROP ROLE regress_exec_stranger;
-- the table itself still says QUEUED: nothing is committed mid-run
SELECT status FROM taskorch.run WHERE id = :'run';
SELECT taskorch.retrieve(:'run')->>'status' AS retrieved_status;
SELECT wait_for_runs();
SELECT status, output FROM taskorch.runs WHERE id = :'run';
SELECT count(*) AS executing_now FROM taskorch.executing_runs();
-- a task that changes its own run's row (a superuser's task, with a plain
-- UPDATE): its outcome is recorded on the row as the task left it (the
-- completion finds each run's row by the version its claim locked, and a
-- row changed since by its id), beside batch mates that change nothing
CREATE FUNCTION exec_self_tag(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	UPDATE taskorch.run SET tags = '{self-tagged}'
	 WHERE id = taskorch.current_run()->>'id' AND (payload->>'tag')::bool;
	SELECT jsonb_build_object('i', payload->'i') $$;
SELECT taskorch.register_task('exec-self-tag', 'exec_self_tag(jsonb)');
SELECT count(taskorch.trigger('exec-self-tag', jsonb_build_object('i', g, 'tag', g % 2 = 0)))
  FROM generate_series(1, 6) g;
SELECT wait_for_runs();
SELECT status, output, tags, attempts FROM taskorch.runs_wide
 WHERE task_id = 'exec-self-tag' ORDER BY created_at;
