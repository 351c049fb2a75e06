-- Run logs: taskorch.log() and a task's own messages, kept even for
-- attempts that failed (their effects are rolled back, their logs are not).
CREATE FUNCTION logs_task(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	attempt int := (taskorch.current_run()->>'attempt')::int;
BEGIN
	PERFORM taskorch.log('info', 'starting', jsonb_build_object('attempt', attempt));
	RAISE NOTICE 'a notice from attempt %', attempt;
	RAISE WARNING 'a warning from attempt %', attempt;
	PERFORM taskorch.log('debug', 'details');
	IF attempt < 2 THEN
		PERFORM taskorch.log('error', 'giving up on this attempt');
		RAISE EXCEPTION 'attempt % failed', attempt;
	END IF;
	RETURN '{}';
END $$;
CREATE FUNCTION logs_flood(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1..1100 LOOP
		PERFORM taskorch.log('log', 'line ' || i);
	END LOOP;
	RETURN '{}';
END $$;
SELECT taskorch.register_task('logs-task', 'logs_task(jsonb)', retry => '{"minTimeoutInMs": 10}');
SELECT taskorch.register_task('logs-flood', 'logs_flood(jsonb)');
SELECT taskorch.trigger('logs-task') AS run \gset
SELECT taskorch.trigger('logs-flood') AS flood \gset
SELECT wait_for_runs();
SELECT status, attempts FROM taskorch.runs WHERE id = :'run';
SELECT attempt, level, message, data FROM taskorch.logs WHERE run_id = :'run'
 ORDER BY attempt, position;
-- at most 1,000 entries per attempt, then one saying so
SELECT count(*), max(message) FILTER (WHERE level = 'warn') AS last
  FROM taskorch.logs WHERE run_id = :'flood';

-- refusals
SELECT taskorch.log('info', 'not in a task');
SELECT taskorch.log('loud', 'x');
SELECT taskorch.log(NULL, 'x');

-- logs follow the runs' visibility
CREATE ROLE regress_logs_other;
SET ROLE regress_logs_other;
SELECT count(*) AS others_see FROM taskorch.logs;
RESET ROLE;
