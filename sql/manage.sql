-- Run management: cancel, reschedule, replay.
CREATE FUNCTION man_echo(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT payload $$;
CREATE FUNCTION man_sleep(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(20); RETURN '{}'; END $$;
SELECT taskorch.register_task('man-echo', 'man_echo(jsonb)');
SELECT taskorch.register_task('man-sleep', 'man_sleep(jsonb)');

-- cancel a delayed run: true, then false (already finished)
SELECT taskorch.trigger('man-echo', delay => '1h') AS d \gset
SELECT taskorch.cancel(:'d') AS canceled, taskorch.cancel(:'d') AS again;
SELECT status, finished_at IS NOT NULL AS finished, error->>'message' AS error
  FROM taskorch.runs_wide WHERE id = :'d';
-- cancel inside a rolled-back transaction changes nothing
SELECT taskorch.trigger('man-echo', delay => '1h') AS d2 \gset
BEGIN;
SELECT taskorch.cancel(:'d2');
ROLLBACK;
SELECT status FROM taskorch.runs WHERE id = :'d2';
-- a finished run cannot be canceled
SELECT taskorch.trigger('man-echo') AS done \gset
SELECT wait_for_runs();
SELECT taskorch.cancel(:'done') AS canceled_completed;

-- cancel of an executing run interrupts it
SELECT taskorch.trigger('man-sleep') AS sleeper \gset
DO $$
BEGIN
	FOR i IN 1..500 LOOP
		EXIT WHEN EXISTS (SELECT FROM taskorch.runs WHERE task_id = 'man-sleep' AND status = 'EXECUTING');
		PERFORM pg_sleep(0.01);
	END LOOP;
END $$;
SELECT taskorch.cancel(:'sleeper') AS canceled_executing;
SELECT status, duration < interval '10 seconds' AS interrupted, error->>'message' AS error
  FROM taskorch.runs_wide WHERE id = :'sleeper';
-- the worker goes on with other runs
SELECT taskorch.trigger('man-echo', '{"after": "cancel"}') AS after \gset
SELECT wait_for_runs();
SELECT status, output FROM taskorch.runs WHERE id = :'after';

-- inside a task, a run its batch holds cannot be canceled (the batch writes
-- its outcome at commit): cancel() of its own run is false, and
-- cancel_runs() counts only the runs it really canceled.  The runs are made
-- and run in one transaction, where no worker sees them.
CREATE FUNCTION man_canceler(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	IF payload ? 'cancel' THEN
		RETURN jsonb_build_object(
			'self', taskorch.cancel(taskorch.current_run()->>'id'),
			'canceled', taskorch.cancel_runs(task => ARRAY['man-canceler']));
	END IF;
	RETURN '{}';
END $$;
SELECT taskorch.register_task('man-canceler', 'man_canceler(jsonb)');
BEGIN;
SELECT taskorch.trigger('man-canceler', '{"cancel": true}', priority => 10) AS self \gset
SELECT taskorch.trigger('man-canceler') AS mate \gset
SELECT count(taskorch.trigger('man-canceler', delay => '1h')) FROM generate_series(1, 2);
SELECT taskorch.run_pending(10) >= 2 AS ran_both;
COMMIT;
SELECT CASE id WHEN :'self' THEN 'self' WHEN :'mate' THEN 'mate' ELSE 'delayed' END AS run,
	   status, output
  FROM taskorch.runs WHERE task_id = 'man-canceler' ORDER BY created_at;

-- reschedule: only a DELAYED run
SELECT taskorch.reschedule(:'d2', '2h') - now() BETWEEN '2h' AND '2h 1s' AS moved;
SELECT delayed_until - updated_at BETWEEN '2h' AND '2h 1s' AS delayed_until_moved, run_at = delayed_until AS due_moved
  FROM taskorch.runs_wide WHERE id = :'d2';
SELECT taskorch.reschedule(:'d2', now() + interval '50 milliseconds') IS NOT NULL AS moved_close;
SET man.d2 = :'d2';
DO $$
BEGIN
	FOR i IN 1..1000 LOOP
		EXIT WHEN NOT EXISTS (SELECT FROM taskorch.runs WHERE id = current_setting('man.d2') AND status = 'DELAYED');
		PERFORM pg_sleep(0.01);
	END LOOP;
END $$;
SELECT wait_for_runs();
SELECT status FROM taskorch.runs WHERE id = :'d2';
SELECT try(format('SELECT taskorch.reschedule(%L, %L)', :'d2', '1h')) AS reschedule_completed;
SELECT taskorch.reschedule(:'d2', NULL);
SELECT taskorch.cancel('run_999999999');
SELECT taskorch.cancel('nonsense');
SELECT taskorch.cancel(NULL);

-- replay: a new run, same task, payload and options, linked to the original
SELECT taskorch.trigger('man-echo', '{"x": 1}', tags => ARRAY['t1'], metadata => '{"m": 2}',
						max_attempts => 7, priority => 3) AS orig \gset
SELECT wait_for_runs();
SELECT taskorch.replay(:'orig') AS copy \gset
SELECT wait_for_runs();
SELECT id <> :'orig' AS new_id, replayed_from = :'orig' AS linked, status, payload, tags,
	   metadata, max_attempts, priority, output
  FROM taskorch.runs_wide WHERE id = :'copy';

-- others' runs: neither seen nor managed
CREATE ROLE regress_man_other;
SET ROLE regress_man_other;
SELECT try(format('SELECT taskorch.cancel(%L)', :'orig')) AS cancel_others;
SELECT try(format('SELECT taskorch.replay(%L)', :'orig')) AS replay_others;
SELECT try(format('SELECT taskorch.reschedule(%L, %L)', :'orig', '1h')) AS reschedule_others;
RESET ROLE;
