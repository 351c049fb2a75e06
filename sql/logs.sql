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

-- a message over 8,192 bytes is cut at a character boundary: 'a' and 5,000
-- two-byte characters would be cut inside the 4,096th; the stored text stays
-- valid UTF-8 (convert_to() checks it) and holds 1 + 4,095 characters
CREATE FUNCTION logs_long(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	PERFORM taskorch.log('info', 'a' || repeat('é', 5000));
	RAISE NOTICE '%', 'a' || repeat('ü', 5000);
	RETURN '{}';
END $$;
SELECT taskorch.register_task('logs-long', 'logs_long(jsonb)');
SELECT taskorch.trigger('logs-long') AS long \gset
SELECT wait_for_runs();
SELECT level, octet_length(message) AS bytes, length(message) AS characters,
	   convert_from(convert_to(message, 'UTF8'), 'UTF8') = message AS valid,
	   right(message, 3) AS ends
  FROM taskorch.logs WHERE run_id = :'long' ORDER BY position;

-- an entry's data is at most 64 kB: a larger one fails the attempt, and
-- nothing of it is kept
CREATE FUNCTION logs_big_data(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	PERFORM taskorch.log('info', 'big', jsonb_build_object('x', repeat('x', 70000)));
	RETURN '{}';
END $$;
SELECT taskorch.register_task('logs-big-data', 'logs_big_data(jsonb)', max_attempts => 1);
SELECT taskorch.trigger('logs-big-data') AS big \gset
SELECT wait_for_runs();
SELECT status, error->>'sqlstate' AS sqlstate, error->>'message' AS message, error->>'hint' AS hint
  FROM taskorch.runs_wide WHERE id = :'big';
SELECT count(*) AS entries FROM taskorch.logs WHERE run_id = :'big';

-- a task that waits runs again from the top on resume: what it logged
-- before the wait is kept once, and an attempt's positions go on across
-- its executions
CREATE FUNCTION logs_around_wait(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	PERFORM taskorch.log('info', 'before the waits');
	PERFORM taskorch.wait_for('10ms');
	PERFORM taskorch.log('info', 'between the waits');
	RAISE NOTICE 'still between';
	PERFORM taskorch.wait_for('10ms');
	PERFORM taskorch.log('info', 'after the waits');
	RETURN '{}';
END $$;
SELECT taskorch.register_task('logs-around-wait', 'logs_around_wait(jsonb)');
CALL taskorch.run_and_wait('logs-around-wait', '{}') \gset
SELECT attempt, position, level, message FROM taskorch.logs
 WHERE run_id = :'result'::jsonb->>'id' ORDER BY attempt, position;

-- refusals
SELECT taskorch.log('info', 'not in a task');
SELECT taskorch.log('loud', 'x');
SELECT taskorch.log(NULL, 'x');

-- logs follow the runs' visibility
CREATE ROLE regress_logs_other;
SET ROLE regress_logs_other;
SELECT count(*) AS others_see FROM taskorch.logs;
RESET ROLE;
