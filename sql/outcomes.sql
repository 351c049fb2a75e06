-- What an attempt's result does to its run: complete, retry, fail, abort,
-- time out; and what survives of a failed attempt.
CREATE TABLE effects (note text);
-- fast, deterministic retries for the tests
\set fast_retry '{"minTimeoutInMs": 20, "maxTimeoutInMs": 40, "randomize": false}'

CREATE FUNCTION out_ok(payload jsonb) RETURNS jsonb LANGUAGE sql
	AS $$ SELECT jsonb_build_object('doubled', (payload->>'n')::int * 2) $$;
CREATE FUNCTION out_null(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT NULL::jsonb $$;
CREATE FUNCTION out_fail(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO effects VALUES ('fail attempt ' || (taskorch.current_run()->>'attempt'));
	RAISE EXCEPTION 'cannot process %', payload->>'n'
		USING DETAIL = 'the detail', HINT = 'the hint', ERRCODE = 'data_exception';
END $$;
-- fails twice, then succeeds
CREATE FUNCTION out_flaky(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	attempt int := (taskorch.current_run()->>'attempt')::int;
BEGIN
	INSERT INTO effects VALUES ('flaky attempt ' || attempt);
	IF attempt < 3 THEN
		RAISE EXCEPTION 'flaky attempt % failed', attempt;
	END IF;
	RETURN jsonb_build_object('succeeded_on', attempt);
END $$;
CREATE FUNCTION out_abort(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	PERFORM taskorch.abort('invalid order ' || (payload->>'n'), 'no retry makes sense');
	RETURN '{}';
END $$;
CREATE FUNCTION out_result(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT CASE WHEN (payload->>'ok')::bool
				THEN '{"success": true, "data": {"v": 1}}'::jsonb
				ELSE '{"success": false, "error": {"message": "quota exceeded"}, "meta": {"k": 1}}'::jsonb END $$;
CREATE FUNCTION out_slow(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO effects VALUES ('slow started');
	PERFORM pg_sleep(10);
	RETURN '{}';
END $$;

SELECT taskorch.register_task('out-ok', 'out_ok(jsonb)');
SELECT taskorch.register_task('out-null', 'out_null(jsonb)');
SELECT taskorch.register_task('out-fail', 'out_fail(jsonb)', retry => :'fast_retry');
SELECT taskorch.register_task('out-flaky', 'out_flaky(jsonb)', max_attempts => 5, retry => :'fast_retry');
SELECT taskorch.register_task('out-abort', 'out_abort(jsonb)', retry => :'fast_retry');
SELECT taskorch.register_task('out-result', 'out_result(jsonb)', max_attempts => 2, retry => :'fast_retry');
SELECT taskorch.register_task('out-one', 'out_fail(jsonb)', max_attempts => 1);
SELECT taskorch.register_task('out-slow', 'out_slow(jsonb)', max_duration => '300 milliseconds', retry => :'fast_retry');

SELECT taskorch.trigger('out-ok', '{"n": 21}') AS ok \gset
SELECT taskorch.trigger('out-null') AS nul \gset
SELECT taskorch.trigger('out-fail', '{"n": 7}') AS fail \gset
SELECT taskorch.trigger('out-flaky') AS flaky \gset
SELECT taskorch.trigger('out-abort', '{"n": 9}') AS abort \gset
SELECT taskorch.trigger('out-result', '{"ok": true}') AS result_ok \gset
SELECT taskorch.trigger('out-result', '{"ok": false}') AS result_fail \gset
SELECT taskorch.trigger('out-one', '{"n": 1}') AS one \gset
SELECT taskorch.trigger('out-slow') AS slow \gset
SELECT wait_for_runs();

SELECT task_id, status, attempts, output, error->>'message' AS error
  FROM taskorch.runs_wide
 WHERE id IN (:'ok', :'nul', :'fail', :'flaky', :'abort', :'result_ok',
			  :'result_fail', :'one', :'slow')
 ORDER BY task_id, created_at;

-- every failed attempt is kept with its SQLSTATE, detail, hint and context
SELECT number, status, message, sqlstate, error->>'detail' AS detail,
	   error->>'hint' AS hint, error->>'context' LIKE 'PL/pgSQL function out_fail(jsonb)%' AS has_context
  FROM taskorch.attempts WHERE run_id = :'fail' ORDER BY number;
SELECT number, message FROM taskorch.attempts WHERE run_id = :'flaky' ORDER BY number;
SELECT number, status, sqlstate, message FROM taskorch.attempts WHERE run_id = :'abort';
SELECT number, status, sqlstate, message FROM taskorch.attempts WHERE run_id = :'slow';
SELECT number, error->'result' AS result FROM taskorch.attempts WHERE run_id = :'result_fail' ORDER BY number;

-- a failed attempt's effects are rolled back; the successful one's stay
SELECT note, count(*) FROM effects GROUP BY note ORDER BY note;

-- retries are spaced by the backoff: attempt n+1 starts >= min * factor^(n-1) after n ends
SELECT bool_and(next.started_at - prev.finished_at >= interval '20 milliseconds') AS backoff_respected
  FROM taskorch.attempts prev
  JOIN taskorch.attempts next ON next.run_id = prev.run_id AND next.number = prev.number + 1
 WHERE prev.run_id = :'fail';

-- a completed run that had failed attempts reports them in retrieve()
SELECT jsonb_array_length(r->'attemptErrors') AS failed_attempts, r->>'status' AS status,
	   r->'output' AS output
  FROM taskorch.retrieve(:'flaky') r;

-- a payload stored out of line (TOAST) reaches its task whole: a worker reads
-- the claimed run as one row value, its large fields brought in line
CREATE FUNCTION out_digest(payload jsonb) RETURNS jsonb LANGUAGE sql
	AS $$ SELECT jsonb_build_object('md5', md5(payload::text)) $$;
SELECT taskorch.register_task('out-digest', 'out_digest(jsonb)');
CREATE TABLE big_payload AS
	SELECT jsonb_build_object('blob', string_agg(md5(g::text), '')) AS p FROM generate_series(1, 20000) g;
SELECT taskorch.trigger('out-digest', (SELECT p FROM big_payload)) AS big \gset
SELECT wait_for_runs();
SELECT status, output->>'md5' = (SELECT md5(p::text) FROM big_payload) AS whole,
	   pg_column_size(payload) > 100000 AS stored_out_of_line
  FROM taskorch.run WHERE id = :'big';

-- a task that catches the interruption of its max_duration and goes on
-- still times out, and what it did after the interruption is rolled back
CREATE FUNCTION out_stubborn(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_sleep(10);
	RETURN '{}';
EXCEPTION WHEN query_canceled THEN
	INSERT INTO effects VALUES ('stubborn went on');
	RETURN '{"went_on": true}';
END $$;
SELECT taskorch.register_task('out-stubborn', 'out_stubborn(jsonb)', max_duration => '300 milliseconds', max_attempts => 1);
SELECT taskorch.trigger('out-stubborn') AS stubborn \gset
SELECT wait_for_runs();
SELECT status, output, error->>'message' AS error, error->>'sqlstate' AS sqlstate
  FROM taskorch.runs_wide WHERE id = :'stubborn';
SELECT count(*) AS went_on FROM effects WHERE note = 'stubborn went on';
