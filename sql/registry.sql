-- The task registry: register, re-register, unregister, and every refusal.
CREATE TABLE reg_log (payload jsonb);
CREATE FUNCTION reg_sql(payload jsonb) RETURNS jsonb LANGUAGE sql
	AS $$ SELECT jsonb_build_object('echo', payload) $$;
CREATE FUNCTION reg_plpgsql(payload jsonb) RETURNS jsonb LANGUAGE plpgsql
	AS $$ BEGIN RETURN payload || '{"by": "plpgsql"}'; END $$;
CREATE FUNCTION reg_void(payload jsonb) RETURNS void LANGUAGE sql
	AS $$ INSERT INTO reg_log VALUES (payload) $$;

-- registering returns the id; defaults are Trigger.dev's
SELECT taskorch.register_task('reg-sql', 'reg_sql(jsonb)');
SELECT taskorch.register_task(id => 'reg-plpgsql', fn => 'reg_plpgsql(jsonb)',
							  queue => 'reg-queue', max_attempts => 5,
							  retry => '{"factor": 3, "minTimeoutInMs": 500, "maxTimeoutInMs": 2000, "randomize": false}',
							  max_duration => '30 seconds', description => 'echoes');
SELECT taskorch.register_task('reg-void', 'reg_void(jsonb)');
SELECT id, function, owner, queue, max_attempts, retry, max_duration, description
  FROM taskorch.tasks ORDER BY id;

-- re-registering replaces the definition and keeps created_at
SELECT created_at AS first_created FROM taskorch.task WHERE id = 'reg-sql' \gset
SELECT taskorch.register_task('reg-sql', 'reg_plpgsql(jsonb)', max_attempts => 1);
SELECT function, max_attempts, created_at = :'first_created' AS same_created,
	   updated_at >= created_at AS updated
  FROM taskorch.tasks WHERE id = 'reg-sql';

-- all three kinds run
SELECT taskorch.trigger('reg-sql', '{"n": 1}') AS r1 \gset
SELECT taskorch.trigger('reg-plpgsql', '{"n": 2}') AS r2 \gset
SELECT taskorch.trigger('reg-void', '{"n": 3}') AS r3 \gset
SELECT wait_for_runs();
SELECT id = :'r1' AS is_r1, status, output FROM taskorch.runs
 WHERE id IN (:'r1', :'r2', :'r3') ORDER BY created_at;
SELECT * FROM reg_log;

-- unregister cancels runs that have not started, and keeps history
BEGIN;
SELECT taskorch.trigger('reg-void', '{"n": 4}') AS r4 \gset
SELECT taskorch.unregister_task('reg-void');
COMMIT;
SELECT status, error->>'message' AS message FROM taskorch.runs_wide WHERE id = :'r4';
SELECT count(*) AS history_kept FROM taskorch.runs WHERE task_id = 'reg-void';
SELECT id FROM taskorch.tasks WHERE id = 'reg-void';
-- a task that unregisters itself: the runs its batch holds (its own, and
-- one claimed with it) finish as they would have and are not counted; the
-- delayed ones are canceled, and counted.  The runs are made and run in
-- one transaction, where no worker sees them.
CREATE FUNCTION reg_self(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	IF payload ? 'unregister' THEN
		RETURN jsonb_build_object('canceled', taskorch.unregister_task('reg-self'));
	END IF;
	RETURN '{}';
END $$;
SELECT taskorch.register_task('reg-self', 'reg_self(jsonb)');
BEGIN;
SELECT taskorch.trigger('reg-self', '{"unregister": true}', priority => 10) AS self \gset
SELECT taskorch.trigger('reg-self') AS mate \gset
SELECT count(taskorch.trigger('reg-self', delay => '1h')) FROM generate_series(1, 2);
SELECT taskorch.run_pending(10) >= 2 AS ran_both;
COMMIT;
SELECT CASE id WHEN :'self' THEN 'self' WHEN :'mate' THEN 'mate' ELSE 'delayed' END AS run,
	   status, output
  FROM taskorch.runs WHERE task_id = 'reg-self' ORDER BY created_at;

-- refusals: bad ids
SELECT taskorch.register_task('', 'reg_sql(jsonb)');
SELECT taskorch.register_task('has space', 'reg_sql(jsonb)');
SELECT taskorch.register_task('-leading-dash', 'reg_sql(jsonb)');
SELECT taskorch.register_task(repeat('x', 129), 'reg_sql(jsonb)');
SELECT taskorch.register_task(NULL, 'reg_sql(jsonb)');
SELECT taskorch.register_task('reg-null-fn', NULL);
SELECT taskorch.register_task('reg-bad-queue', 'reg_sql(jsonb)', queue => 'bad queue');

-- refusals: functions that cannot be tasks
CREATE FUNCTION reg_two(a jsonb, b jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
CREATE FUNCTION reg_int(a jsonb) RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION reg_text(a text) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION reg_srf(a jsonb) RETURNS SETOF jsonb LANGUAGE sql AS $$ SELECT a $$;
CREATE PROCEDURE reg_proc(a jsonb) LANGUAGE sql AS $$ SELECT 1 $$;
SELECT taskorch.register_task('reg-two', 'reg_two(jsonb,jsonb)');
SELECT taskorch.register_task('reg-int', 'reg_int(jsonb)');
SELECT taskorch.register_task('reg-text', 'reg_text(text)');
SELECT taskorch.register_task('reg-srf', 'reg_srf(jsonb)');
SELECT taskorch.register_task('reg-proc', 'reg_proc(jsonb)');
SELECT taskorch.register_task('reg-unknown', 'no_such_function(jsonb)');
SELECT taskorch.register_task('reg-oid', 12345678::oid::regprocedure);

-- refusals: options
SELECT taskorch.register_task('reg-x', 'reg_sql(jsonb)', max_attempts => 0);
SELECT taskorch.register_task('reg-x', 'reg_sql(jsonb)', max_duration => '-1 second');
SELECT taskorch.register_task('reg-x', 'reg_sql(jsonb)', max_duration => '0');
SELECT taskorch.register_task('reg-x', 'reg_sql(jsonb)', retry => '{"maxAttempt": 2}');
SELECT taskorch.register_task('reg-x', 'reg_sql(jsonb)', retry => '{"factor": "2"}');
SELECT taskorch.register_task('reg-x', 'reg_sql(jsonb)', retry => '{"factor": 0.5}');
SELECT taskorch.register_task('reg-x', 'reg_sql(jsonb)', retry => '{"minTimeoutInMs": -1}');
SELECT taskorch.register_task('reg-x', 'reg_sql(jsonb)', retry => '{"minTimeoutInMs": 500, "maxTimeoutInMs": 100}');
SELECT taskorch.register_task('reg-x', 'reg_sql(jsonb)', retry => '{"randomize": 1}');
SELECT taskorch.register_task('reg-x', 'reg_sql(jsonb)', retry => '[1]');
-- retry.maxAttempts is Trigger.dev's spelling of max_attempts
SELECT taskorch.register_task('reg-x', 'reg_sql(jsonb)', retry => '{"maxAttempts": 7}');
SELECT max_attempts FROM taskorch.tasks WHERE id = 'reg-x';

-- nothing refused was written
SELECT id FROM taskorch.tasks ORDER BY id;

-- unregistering an unknown task
SELECT taskorch.unregister_task('reg-nope');
