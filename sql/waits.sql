-- Durable waits: wait_for and wait_until suspend the run (WAITING, no
-- worker held, no attempt spent) and resume it by replay: code before the
-- wait runs again, and its effects commit once.
CREATE TABLE wait_trace (run text, note text);
CREATE FUNCTION wait_task(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	me text := taskorch.current_run()->>'id';
BEGIN
	INSERT INTO wait_trace VALUES (me, 'before the waits');
	PERFORM taskorch.wait_for('1s');
	INSERT INTO wait_trace VALUES (me, 'between the waits');
	PERFORM taskorch.wait_until(clock_timestamp() + interval '500 milliseconds');
	INSERT INTO wait_trace VALUES (me, 'after the waits');
	RETURN jsonb_build_object('done', true);
END $$;
SELECT taskorch.register_task('wait-task', 'wait_task(jsonb)', max_attempts => 1);
SELECT taskorch.trigger('wait-task') AS run \gset
DO $$
BEGIN
	FOR i IN 1..300 LOOP
		EXIT WHEN EXISTS (SELECT FROM taskorch.runs WHERE task_id = 'wait-task' AND status = 'WAITING');
		PERFORM pg_sleep(0.01);
	END LOOP;
END $$;
-- waiting: no attempt spent, no worker held, nothing of the task committed
SELECT status, attempts, run_at > now() AS resumes_later FROM taskorch.runs WHERE id = :'run';
SELECT count(*) AS workers_busy FROM taskorch.workers() WHERE run_id = :'run';
SELECT count(*) AS traces FROM wait_trace;
SELECT seq, kind, completed_at IS NULL AS pending FROM taskorch.waitpoint WHERE run_id = :'run';
SELECT pg_sleep(2.5);
SELECT wait_for_runs();
SELECT status, attempts, output FROM taskorch.runs WHERE id = :'run';
-- each line once, though the code before each wait ran again on resume
SELECT note, count(*) FROM wait_trace WHERE run = :'run' GROUP BY note ORDER BY note;
SELECT seq, kind, completed_at IS NOT NULL AS completed FROM taskorch.waitpoint
 WHERE run_id = :'run' ORDER BY seq;

-- a wait already over returns at once
CREATE FUNCTION wait_past(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	PERFORM taskorch.wait_until(now() - interval '1 day');
	PERFORM taskorch.wait_for(0);
	RETURN '{"waited": false}';
END $$;
SELECT taskorch.register_task('wait-past', 'wait_past(jsonb)');
SELECT taskorch.trigger('wait-past') AS past \gset
SELECT wait_for_runs();
SELECT status, output FROM taskorch.runs WHERE id = :'past';
SELECT count(*) AS waitpoints FROM taskorch.waitpoint WHERE run_id = :'past';

-- refusals
SELECT taskorch.wait_for('1s');
SELECT taskorch.wait_until(now());
SELECT taskorch.wait_for(NULL::text);
SELECT taskorch.wait_for('soon');
