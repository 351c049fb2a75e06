-- Lifecycle hooks: on_success and on_failure tasks get the run's Result
-- object when a run ends for good, in the transaction that records it.
CREATE TABLE hook_calls (hook text, payload jsonb, metadata jsonb);
CREATE FUNCTION record_hook(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	INSERT INTO hook_calls
	SELECT taskorch.current_run()->>'taskIdentifier', payload,
		   (SELECT metadata FROM taskorch.runs_wide WHERE id = taskorch.current_run()->>'id')
	RETURNING jsonb_build_object('recorded', true) $$;
SELECT taskorch.register_task('notify-success', 'record_hook(jsonb)');
SELECT taskorch.register_task('notify-error', 'record_hook(jsonb)');
CREATE FUNCTION hooked(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	IF (payload->>'fail')::bool THEN
		RAISE EXCEPTION 'hooked task failed on %', payload->>'n';
	END IF;
	RETURN jsonb_build_object('n', payload->'n');
END $$;
SELECT taskorch.register_task('hooked', 'hooked(jsonb)', max_attempts => 2,
	retry => '{"minTimeoutInMs": 10, "maxTimeoutInMs": 10, "randomize": false}',
	on_success => 'notify-success', on_failure => 'notify-error');
SELECT on_success, on_failure FROM taskorch.tasks WHERE id = 'hooked';
SELECT taskorch.trigger('hooked', '{"n": 1}') AS ok_run \gset
SELECT taskorch.trigger('hooked', '{"n": 2, "fail": true}') AS failed_run \gset
SELECT wait_for_runs();
-- one hook run per ended run (none for the retried attempt), with its Result
SELECT hook, payload->'ok' AS ok, payload->'id' = to_jsonb(:'ok_run'::text) AS of_ok_run,
	   payload->'output' AS output, metadata->>'hook' AS kind
  FROM hook_calls WHERE hook = 'notify-success';
SELECT hook, payload->'ok' AS ok, payload->'id' = to_jsonb(:'failed_run'::text) AS of_failed_run,
	   payload->'taskIdentifier' AS task, payload->'error'->>'message' AS error,
	   metadata->>'hookOf' = :'failed_run' AS linked
  FROM hook_calls WHERE hook = 'notify-error';
SELECT attempts FROM taskorch.runs WHERE id = :'failed_run';

-- on_start: once per run, when its first execution starts (not on a retry,
-- nor when it resumes after a durable wait), with the run and its payload
SELECT taskorch.register_task('notify-start', 'record_hook(jsonb)');
CREATE FUNCTION hooked_wait(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	PERFORM taskorch.wait_for('10ms');
	IF (taskorch.current_run()->>'attempt')::int = 1 THEN
		RAISE EXCEPTION 'first attempt fails';
	END IF;
	RETURN '{}';
END $$;
SELECT taskorch.register_task('hooked-start', 'hooked_wait(jsonb)', max_attempts => 2,
	retry => '{"minTimeoutInMs": 10, "maxTimeoutInMs": 10, "randomize": false}',
	on_start => 'notify-start');
-- (wait_for_runs() does not wait for WAITING runs: wait for this one to finish)
CREATE FUNCTION wait_for_run(run text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1..6000 LOOP
		IF (SELECT taskorch.finished(status) FROM taskorch.runs WHERE id = run) THEN
			RETURN 'finished';
		END IF;
		PERFORM pg_sleep(0.01);
	END LOOP;
	RETURN 'timed out';
END $$;
SELECT taskorch.trigger('hooked-start', '{"n": 3}') AS started_run \gset
SELECT wait_for_run(:'started_run');
SELECT status, attempts FROM taskorch.runs WHERE id = :'started_run';
SELECT count(*) AS start_hooks, min(payload->>'id') = :'started_run' AS of_the_run,
	   min(payload->>'taskIdentifier') AS task, min(payload->>'payload') AS payload,
	   min(metadata->>'hook') AS kind
  FROM hook_calls WHERE hook = 'notify-start';
-- a track's on_start, once for the track (its runner starts once)
SELECT taskorch.define_track('started-track', '[{"task": "hooked", "name": "one"}, {"task": "hooked", "name": "two"}]',
							 on_start => 'notify-start');
SELECT taskorch.trigger('started-track', '{"n": 4}') AS started_track \gset
SELECT wait_for_run(:'started_track');
SELECT wait_for_runs();		-- its on_start hook's run too
SELECT count(*) AS track_start_hooks FROM hook_calls
 WHERE hook = 'notify-start' AND payload->>'id' = :'started_track';

-- refusals when registering
SELECT taskorch.register_task('hooked2', 'hooked(jsonb)', on_failure => 'no-such-task');
SELECT taskorch.register_task('hooked2', 'hooked(jsonb)', on_success => 'hooked2');
SELECT count(*) AS hooked2_registered FROM taskorch.tasks WHERE id = 'hooked2';

-- a hook that cannot be triggered leaves the outcome alone, and says so in the run's logs
-- (the track's steps' hooks may still be queued: queues are served in turn)
SELECT wait_for_runs();
SELECT taskorch.unregister_task('notify-success');
SELECT taskorch.trigger('hooked', '{"n": 3}') AS lonely \gset
SELECT wait_for_runs();
SELECT status, output FROM taskorch.runs WHERE id = :'lonely';
SELECT level, regexp_replace(message, 'run_[0-9]+', 'run_N') AS message FROM taskorch.logs WHERE run_id = :'lonely';
-- canceled runs have no hooks
SELECT taskorch.trigger('hooked', '{"n": 4, "fail": true}', delay => '1h') AS canceled \gset
SELECT taskorch.cancel(:'canceled');
SELECT count(*) AS hooks_of_canceled FROM hook_calls WHERE metadata->>'hookOf' = :'canceled';
SELECT taskorch.unregister_task('hooked');
SELECT taskorch.unregister_task('notify-error');
DROP TABLE hook_calls;
