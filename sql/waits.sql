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
SELECT status, attempts, run_at > now() AS resumes_later FROM taskorch.runs_wide WHERE id = :'run';
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
-- each wrong duration says what is wrong with it, and the range (0 to 100
-- years), whether text, a number or an interval
SELECT taskorch.wait_for('5215w');
SELECT taskorch.wait_for('nan');
SELECT taskorch.wait_for('NaN'::float8);
SELECT taskorch.wait_for('NaN'::numeric);
SELECT taskorch.wait_for('infinity');
SELECT taskorch.wait_for('infinity'::float8);
SELECT taskorch.wait_for('-infinity'::float8);
SELECT taskorch.wait_for('-5s');
SELECT taskorch.wait_for(interval '200 years');

-- trigger_and_wait and batch_trigger_and_wait: children are triggered when
-- the parent first reaches the call; the parent waits (no worker held) and
-- gets the Result objects, in call order
CREATE TABLE parent_trace (note text);
CREATE FUNCTION wait_child(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	IF (payload->>'fail')::bool THEN
		RAISE EXCEPTION 'child % failed', payload->>'n';
	END IF;
	RETURN jsonb_build_object('doubled', (payload->>'n')::int * 2);
END $$;
CREATE FUNCTION wait_parent(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	one jsonb;
	many jsonb;
	mixed jsonb;
BEGIN
	INSERT INTO parent_trace VALUES ('parent ran to here');
	one := taskorch.trigger_and_wait('wait-child', '{"n": 21}');
	many := taskorch.batch_trigger_and_wait('wait-child',
		'[{"payload": {"n": 1}}, {"payload": {"n": 2, "fail": true}}, {"payload": {"n": 3}}]');
	mixed := taskorch.batch_trigger_and_wait(
		'[{"task": "wait-child", "payload": {"n": 5}}, {"task": "wait-task", "payload": {}}]');
	RETURN jsonb_build_object('one', one, 'many', many,
							  'mixed_tasks', jsonb_path_query_array(mixed, '$.runs[*].taskIdentifier'),
							  'mixed_ok', jsonb_path_query_array(mixed, '$.runs[*].ok'));
END $$;
SELECT taskorch.register_task('wait-child', 'wait_child(jsonb)', max_attempts => 1);
SELECT taskorch.register_task('wait-parent', 'wait_parent(jsonb)');
SELECT taskorch.trigger('wait-parent') AS parent \gset
DO $$
BEGIN
	FOR i IN 1..1000 LOOP
		EXIT WHEN EXISTS (SELECT FROM taskorch.runs WHERE task_id = 'wait-parent' AND status = 'COMPLETED');
		PERFORM pg_sleep(0.01);
	END LOOP;
END $$;
SELECT status, attempts, (output->'one') - 'id' AS one, output->'one'->>'id' ~ '^run_' AS has_id
  FROM taskorch.runs WHERE id = :'parent';
SELECT r->>'taskIdentifier' AS task, r->'ok' AS ok, r->'output' AS output, r->'error'->>'message' AS error
  FROM taskorch.runs_wide p, jsonb_array_elements(p.output->'many'->'runs') r WHERE p.id = :'parent';
SELECT output->'mixed_tasks' AS mixed_tasks, output->'mixed_ok' AS mixed_ok FROM taskorch.runs WHERE id = :'parent';
SELECT count(*) AS children, count(*) FILTER (WHERE parent_run_id = :'parent') AS linked
  FROM taskorch.runs_wide WHERE task_id IN ('wait-child', 'wait-task') AND parent_run_id IS NOT NULL;
-- the parent's work before its waits committed once
SELECT note, count(*) FROM parent_trace GROUP BY note;
SELECT taskorch.trigger_and_wait('wait-child', '{}');

-- cancel of a waiting parent cancels its unfinished children; a parent
-- waiting for a canceled child gets {ok: false}
CREATE FUNCTION slow_child(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT payload $$;
SELECT taskorch.register_task('slow-child', 'slow_child(jsonb)');
CREATE FUNCTION waits_on_delayed(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT taskorch.trigger_and_wait('slow-child', '{}', '{"delay": "1h"}') $$;
SELECT taskorch.register_task('waits-on-delayed', 'waits_on_delayed(jsonb)');
SELECT taskorch.trigger('waits-on-delayed') AS p1 \gset
SELECT taskorch.trigger('waits-on-delayed') AS p2 \gset
DO $$
BEGIN
	FOR i IN 1..500 LOOP
		EXIT WHEN (SELECT count(*) FROM taskorch.runs WHERE task_id = 'waits-on-delayed' AND status = 'WAITING') = 2;
		PERFORM pg_sleep(0.01);
	END LOOP;
END $$;
SELECT status, (SELECT status FROM taskorch.runs_wide c WHERE c.parent_run_id = p.id) AS child
  FROM taskorch.runs_wide p WHERE id = :'p1';
SELECT taskorch.cancel(:'p1') AS parent_canceled;
SELECT status, (SELECT status FROM taskorch.runs_wide c WHERE c.parent_run_id = p.id) AS child
  FROM taskorch.runs_wide p WHERE id = :'p1';
SELECT taskorch.cancel(id) AS child_canceled FROM taskorch.runs_wide WHERE parent_run_id = :'p2';
DO $$
BEGIN
	FOR i IN 1..500 LOOP
		EXIT WHEN EXISTS (SELECT FROM taskorch.runs WHERE task_id = 'waits-on-delayed' AND status = 'COMPLETED');
		PERFORM pg_sleep(0.01);
	END LOOP;
END $$;
SELECT status, output->'ok' AS ok, output->'error'->>'message' AS error FROM taskorch.runs_wide WHERE id = :'p2';

-- the unwrap form: the child's output, or its failure as an error whose
-- detail carries runId, taskId and cause (SubtaskUnwrapError)
CREATE FUNCTION unwrapper(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	RETURN jsonb_build_object('got', taskorch.trigger_and_wait_unwrap('wait-child', payload));
END $$;
SELECT taskorch.register_task('unwrapper', 'unwrapper(jsonb)', max_attempts => 1);

-- run_and_wait from top-level SQL: trigger, commit, wait, Result object
CALL taskorch.run_and_wait('unwrapper', '{"n": 7}') \gset
SELECT :'result'::jsonb - 'id' AS unwrapped_ok;
CALL taskorch.run_and_wait('unwrapper', '{"n": 8, "fail": true}') \gset
SELECT r->'ok' AS ok, r->'error'->>'sqlstate' AS sqlstate, r->'error'->>'message' ~ 'child run run_[0-9]+ of task "wait-child" failed: child 8 failed' AS message,
	   (r->'error'->>'detail')::jsonb - 'runId' AS detail
  FROM (SELECT :'result'::jsonb AS r) s;
-- a timeout returns NULL and leaves the run going
CALL taskorch.run_and_wait('wait-task', timeout => '100 milliseconds');
BEGIN;
CALL taskorch.run_and_wait('wait-child', '{"n": 1}');
ROLLBACK;

-- result() and wait_for_run(): the Result object of a run, NULL until it
-- has finished; wait_for_run waits for one triggered earlier
SELECT taskorch.trigger('wait-child', '{"n": 4}', '{"delay": "1h"}') AS delayed \gset
SELECT taskorch.result(:'delayed') IS NULL AS not_yet;
SELECT taskorch.trigger('wait-child', '{"n": 4}') AS later \gset
CALL taskorch.wait_for_run(:'later') \gset
SELECT :'result'::jsonb - 'id' AS waited, :'result'::jsonb = taskorch.result(:'later') AS same;
SELECT taskorch.result('run_999999999');
BEGIN;
CALL taskorch.wait_for_run(:'later');
ROLLBACK;

-- batch_trigger_and_wait_query: children streamed from a query's rows; a
-- single wait may hold more than the 1,000 items of an array
CREATE TABLE wait_records AS SELECT g AS n FROM generate_series(1, 1500) g;
CREATE FUNCTION query_parent(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	res jsonb := taskorch.batch_trigger_and_wait_query(
		'SELECT jsonb_build_object(''n'', n, ''fail'', n % 500 = 0) AS payload FROM wait_records ORDER BY n',
		'wait-child');
BEGIN
	RETURN jsonb_build_object(
		'runs', jsonb_array_length(res->'runs'),
		'ok', jsonb_array_length(jsonb_path_query_array(res, '$.runs[*] ? (@.ok == true)')),
		'in_order', res->'runs'->0->'output'->'doubled' = '2'
					AND res->'runs'->1498->'output'->'doubled' = '2998',
		'failed', jsonb_path_query_array(res, '$.runs[*] ? (@.ok == false).error.message'));
END $$;
SELECT taskorch.register_task('query-parent', 'query_parent(jsonb)');
CALL taskorch.run_and_wait('query-parent', timeout => '60 seconds') \gset
SELECT :'result'::jsonb->'output' AS query_wait;
SELECT count(*) AS children FROM taskorch.runs_wide r
 WHERE r.parent_run_id = (SELECT id FROM taskorch.runs_wide WHERE task_id = 'query-parent');
-- a query with no rows: the wait is over at once, with no runs
CREATE FUNCTION empty_query_parent(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT taskorch.batch_trigger_and_wait_query('SELECT jsonb_build_object(''n'', n) AS payload FROM wait_records WHERE false',
												  'wait-child') $$;
SELECT taskorch.register_task('empty-query-parent', 'empty_query_parent(jsonb)');
CALL taskorch.run_and_wait('empty-query-parent', timeout => '0.9 seconds') \gset
SELECT :'result'::jsonb->'output' AS empty_wait;
-- the query is checked when the task calls it: a bad one fails the attempt
CREATE FUNCTION bad_query_parent(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT taskorch.batch_trigger_and_wait_query('SELECT n AS payload FROM wait_records', 'wait-child') $$;
SELECT taskorch.register_task('bad-query-parent', 'bad_query_parent(jsonb)', max_attempts => 1);
CALL taskorch.run_and_wait('bad-query-parent') \gset
SELECT :'result'::jsonb->'error'->>'message' AS error;
SELECT taskorch.batch_trigger_and_wait_query('SELECT ''{}''::jsonb AS payload', 'wait-child');

-- wait tokens: the run waits until a session completes the token (first
-- completion wins), or until its timeout
CREATE FUNCTION approval(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	token text := taskorch.create_wait_token(timeout => payload->>'timeout');
BEGIN
	PERFORM taskorch.metadata_set('token', to_jsonb(token));	-- how others find it
	RETURN taskorch.wait_for_token(token);
END $$;
SELECT taskorch.register_task('approval', 'approval(jsonb)');
SELECT taskorch.trigger('approval', '{"timeout": "1h"}') AS approved \gset
SELECT taskorch.trigger('approval', '{"timeout": "1s"}') AS expires \gset
DO $$
BEGIN
	FOR i IN 1..500 LOOP
		EXIT WHEN (SELECT count(*) FROM taskorch.runs WHERE task_id = 'approval' AND status = 'WAITING') = 2;
		PERFORM pg_sleep(0.01);
	END LOOP;
END $$;
SELECT status, metadata->>'token' ~ '^waittoken_' AS has_token FROM taskorch.runs_wide WHERE id = :'approved';
SELECT metadata->>'token' AS token FROM taskorch.runs_wide WHERE id = :'approved' \gset
SELECT status FROM taskorch.wait_tokens WHERE id = :'token';
SELECT taskorch.complete_wait_token(:'token', '{"approved": true}');
SELECT regexp_replace(try(format('SELECT taskorch.complete_wait_token(%L, %L)', :'token', '{"approved": false}')),
					  'waittoken_[0-9_]+', 'waittoken_N') AS second_completion;
-- the token times out after 1 s (a worker's maintenance notices it within a second more)
SELECT pg_sleep(1.1);
DO $$
BEGIN
	FOR i IN 1..1000 LOOP
		EXIT WHEN NOT EXISTS (SELECT FROM taskorch.wait_tokens WHERE status = 'WAITING' AND timeout_at < now());
		PERFORM pg_sleep(0.01);
	END LOOP;
END $$;
SELECT wait_for_runs();
SELECT status, output FROM taskorch.runs WHERE id IN (:'approved', :'expires') ORDER BY created_at;
SELECT status, output FROM taskorch.wait_tokens WHERE id = :'token';
-- outside a task a token is made at once; refusals
SELECT taskorch.create_wait_token('1h') ~ '^waittoken_[0-9]+$' AS outside_token;
SELECT taskorch.complete_wait_token('waittoken_nope');
SELECT taskorch.wait_for_token('waittoken_nope');
SELECT taskorch.create_wait_token('-1s');
-- a token's idempotency key and tags follow trigger()'s rules: a key of 1
-- to 2,048 bytes, at most 10 tags of 1 to 128 characters; a refused token
-- is not made
SELECT count(*) AS tokens_before FROM taskorch.wait_token \gset
SELECT taskorch.create_wait_token(idempotency_key => repeat('x', 100000));
SELECT taskorch.create_wait_token(idempotency_key => '');
SELECT taskorch.create_wait_token(tags => ARRAY['']);
SELECT taskorch.create_wait_token(tags => ARRAY[repeat('é', 129)]);
SELECT taskorch.create_wait_token(tags => ARRAY['a', NULL]);
SELECT taskorch.create_wait_token(tags => ARRAY['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k']);
SELECT count(*) - :tokens_before AS tokens_made FROM taskorch.wait_token;
SELECT taskorch.create_wait_token(idempotency_key => repeat('k', 2048),
								  tags => ARRAY[repeat('é', 128), 'b', 'b']) AS token \gset
SELECT octet_length(idempotency_key) AS key_bytes, array_length(tags, 1) AS tags,
	   length(tags[1]) AS tag_characters
  FROM taskorch.wait_tokens WHERE id = :'token';
