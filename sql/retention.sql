-- Retention: finished runs leave, with their attempts and logs; what a
-- waiting parent needs, a live idempotency key, and unfinished runs stay.
SHOW taskorch.retention;
CREATE FUNCTION ret_echo(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	PERFORM taskorch.log('info', 'ran');
	IF payload ? 'fail' THEN RAISE EXCEPTION 'failing on purpose'; END IF;
	RETURN payload;
END $$;
SELECT taskorch.register_task('ret-echo', 'ret_echo(jsonb)', max_attempts => 1);
CREATE FUNCTION ret_parent(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT taskorch.trigger_and_wait('ret-echo', '{}') $$;
SELECT taskorch.register_task('ret-parent', 'ret_parent(jsonb)');

-- finished runs, one failed (attempts, logs), one holding a key, one delayed
SELECT count(taskorch.trigger('ret-echo', jsonb_build_object('n', g))) FROM generate_series(1, 4) g;
SELECT taskorch.trigger('ret-echo', '{"fail": true}') AS failed \gset
SELECT taskorch.trigger('ret-echo', '{"key": true}', idempotency_key => 'kept-by-key') AS keyed \gset
SELECT taskorch.trigger('ret-echo', '{"later": true}', delay => '1h') AS delayed \gset
SELECT wait_for_runs();
-- a parent that waits for a child which has finished: the parent is
-- WAITING until it resumes; keep it from resuming for the test
SELECT taskorch.trigger('ret-parent') AS parent \gset
SELECT wait_for_runs();
SELECT count(*) AS logs, (SELECT count(*) FROM taskorch.attempts WHERE run_id = :'failed') AS attempts
  FROM taskorch.logs WHERE run_id = :'failed';
-- as if every run had finished a day ago
UPDATE taskorch.run SET finished_at = finished_at - interval '1 day'
 WHERE finished_at IS NOT NULL AND task_id LIKE 'ret-%';
-- the child of a waiting parent stays while the parent has not finished
UPDATE taskorch.run SET status = 'WAITING', finished_at = NULL WHERE id = :'parent';
SELECT taskorch.purge(older_than => '1h', task => 'ret-echo') AS removed;
SELECT task_id, status, payload FROM taskorch.runs WHERE task_id LIKE 'ret-%' ORDER BY created_at;
SELECT count(*) AS logs_left, (SELECT count(*) FROM taskorch.attempt WHERE run_id = :'failed') AS attempts_left
  FROM taskorch.log WHERE run_id = :'failed';
-- the key, once reset, holds the run no more; the parent, once finished, neither
SELECT taskorch.idempotency_key_reset('ret-echo', 'kept-by-key');
UPDATE taskorch.run SET status = 'COMPLETED', finished_at = now() - interval '1 day' WHERE id = :'parent';
SELECT taskorch.purge('1h', 'ret-parent') AS parent_removed;
SELECT taskorch.purge('1h', 'ret-echo') AS removed;
SELECT id = :'delayed' AS only_the_delayed_run_left, status FROM taskorch.runs WHERE task_id LIKE 'ret-%';
SELECT taskorch.cancel(:'delayed');

-- a role purges what it may see, and only that
CREATE ROLE regress_ret_ann;
CREATE ROLE regress_ret_ben;
GRANT USAGE, CREATE ON SCHEMA public TO regress_ret_ann, regress_ret_ben;
SELECT taskorch.grant_trigger('ret-echo', 'regress_ret_ann');
SELECT taskorch.grant_trigger('ret-echo', 'regress_ret_ben');
SET ROLE regress_ret_ann;
SELECT count(taskorch.trigger('ret-echo')) FROM generate_series(1, 3);
RESET ROLE;
SET ROLE regress_ret_ben;
SELECT count(taskorch.trigger('ret-echo')) FROM generate_series(1, 2);
RESET ROLE;
SELECT wait_for_runs();
SET ROLE regress_ret_ann;
SELECT taskorch.purge('0s') AS ann_removed;		-- any task: hers only
RESET ROLE;
SELECT triggered_by::text, count(*) FROM taskorch.runs_wide WHERE task_id = 'ret-echo' GROUP BY 1 ORDER BY 1;
SELECT taskorch.purge('0s', 'ret-echo') AS admin_removed;

-- a task's own retention: the workers remove its finished runs in the
-- background once older
SELECT taskorch.register_task('ret-brief', 'ret_echo(jsonb)', retention => '1s');
SELECT retention FROM taskorch.tasks WHERE id = 'ret-brief';
SELECT count(taskorch.trigger('ret-brief')) FROM generate_series(1, 5);
SELECT wait_for_runs();
DO $$
BEGIN
	FOR i IN 1..100 LOOP
		EXIT WHEN NOT EXISTS (SELECT FROM taskorch.run WHERE task_id = 'ret-brief');
		PERFORM pg_sleep(0.1);
	END LOOP;
END $$;
SELECT count(*) AS brief_runs_left FROM taskorch.run WHERE task_id = 'ret-brief';

-- refused, removing nothing
SELECT taskorch.register_task('ret-brief', 'ret_echo(jsonb)', retention => '0s');
SELECT taskorch.purge('-1h');

-- the rule that keeps runs is the extension's, whatever the caller's
-- search_path: an "=" and a ">" of its own put ahead of pg_catalog keep
-- nothing alive
CREATE SCHEMA ret_evil AUTHORIZATION regress_ret_ann;
SET ROLE regress_ret_ann;
SELECT taskorch.trigger('ret-echo', '{}', idempotency_key => 'ann-keeps') AS ann_keyed \gset
RESET ROLE;
SELECT wait_for_runs();
SET ROLE regress_ret_ann;
CREATE FUNCTION ret_evil.eq(text, text) RETURNS bool LANGUAGE sql AS $$ SELECT true $$;
CREATE OPERATOR ret_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = ret_evil.eq);
CREATE FUNCTION ret_evil.gt(timestamptz, timestamptz) RETURNS bool LANGUAGE sql AS $$ SELECT false $$;
CREATE OPERATOR ret_evil.> (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = ret_evil.gt);
SET search_path = ret_evil, pg_catalog, public;
SELECT taskorch.purge('0s') AS removed_with_own_operators;
RESET search_path;
SELECT count(*) AS keyed_run_kept FROM taskorch.runs WHERE id = :'ann_keyed';
RESET ROLE;
