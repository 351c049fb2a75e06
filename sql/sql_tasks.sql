-- Task functions written in SQL: executed through plans kept across runs
-- (sql_task.c) with the semantics of a SQL function call, and through fmgr
-- when they are not plain (SECURITY DEFINER, a SET clause, a result that
-- needs a cast).
CREATE TABLE sql_task_rows (n int, payload jsonb);
CREATE SEQUENCE sql_task_seq;

-- statements in order, each seeing what the previous did; the parameter by
-- name and by number
CREATE FUNCTION st_two(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	INSERT INTO sql_task_rows VALUES ((payload->>'n')::int, $1);
	SELECT jsonb_build_object('rows', count(*), 'n', max(n)) FROM sql_task_rows $$;
-- a plain SELECT last: its first row is the result, no more rows are read
CREATE FUNCTION st_first(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT to_jsonb(nextval('sql_task_seq')) FROM generate_series(1, 5) $$;
-- an INSERT ... RETURNING last runs to completion
CREATE FUNCTION st_returning(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	INSERT INTO sql_task_rows SELECT g, payload FROM generate_series(100, 102) g
	RETURNING to_jsonb(n) $$;
-- no row: NULL output
CREATE FUNCTION st_none(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT payload FROM sql_task_rows WHERE false $$;
-- STABLE: read-only, as PostgreSQL runs it
CREATE FUNCTION st_stable(payload jsonb) RETURNS jsonb LANGUAGE sql STABLE AS $$
	INSERT INTO sql_task_rows VALUES (-1, payload) RETURNING payload $$;
-- an error names the statement and the function
CREATE FUNCTION st_error(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT to_jsonb(1 / (payload->>'d')::int) $$;
-- not plain, called through fmgr: a SET clause, SECURITY DEFINER, a cast
-- of the last statement's result
CREATE FUNCTION st_set(payload jsonb) RETURNS jsonb LANGUAGE sql SET work_mem = '8MB' AS $$
	SELECT to_jsonb(current_setting('work_mem')) $$;
CREATE FUNCTION st_definer(payload jsonb) RETURNS jsonb LANGUAGE sql SECURITY DEFINER AS $$
	SELECT to_jsonb(1 / (payload->>'d')::int) $$;
CREATE FUNCTION st_cast(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT '{"cast": true}'::json $$;

SELECT taskorch.register_task(name, (name || '(jsonb)')::regprocedure, max_attempts => 1)
  FROM unnest(ARRAY['st_two', 'st_first', 'st_returning', 'st_none', 'st_stable', 'st_error',
					'st_set', 'st_definer', 'st_cast']) name ORDER BY name;

SELECT taskorch.trigger('st_two', '{"n": 1}') AS two_1 \gset
SELECT wait_for_runs();
SELECT taskorch.trigger('st_two', '{"n": 2}') AS two_2 \gset
-- (done before st_returning's rows: another worker could run that first)
SELECT wait_for_runs();
SELECT taskorch.trigger('st_first') AS first \gset
SELECT taskorch.trigger('st_returning') AS returning \gset
SELECT taskorch.trigger('st_none') AS none \gset
SELECT taskorch.trigger('st_stable') AS stable \gset
SELECT taskorch.trigger('st_error', '{"d": 0}') AS error \gset
SELECT taskorch.trigger('st_set') AS set \gset
SELECT taskorch.trigger('st_definer', '{"d": 0}') AS definer \gset
SELECT taskorch.trigger('st_cast') AS cast \gset
SELECT wait_for_runs();

SELECT task_id, status, output, error->>'message' AS message
  FROM taskorch.run
 WHERE id IN (:'two_1', :'two_2', :'first', :'returning', :'none', :'stable', :'set', :'cast')
 ORDER BY task_id, id;
-- nextval was called once: the rows after the first were never read
SELECT last_value FROM sql_task_seq;
SELECT count(*) FROM sql_task_rows WHERE n BETWEEN 100 AND 102;
-- through kept plans, the failing statement and the function are named;
-- through fmgr, the function and the statement's number
SELECT task_id, error->>'message' AS message, error->>'context' AS context
  FROM taskorch.run WHERE id IN (:'error', :'definer') ORDER BY task_id;

-- CREATE OR REPLACE: the next run executes the new body
CREATE OR REPLACE FUNCTION st_two(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_build_object('replaced', payload) $$;
SELECT taskorch.trigger('st_two', '{"n": 3}') AS two_3 \gset
SELECT wait_for_runs();
SELECT status, output FROM taskorch.run WHERE id = :'two_3';
-- a table its plan read, dropped and made again: planned anew
CREATE OR REPLACE FUNCTION st_two(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT to_jsonb(count(*)) FROM sql_task_rows $$;
SELECT taskorch.trigger('st_two') AS two_4 \gset
SELECT wait_for_runs();
DROP TABLE sql_task_rows;
CREATE TABLE sql_task_rows (n int, payload jsonb);
INSERT INTO sql_task_rows VALUES (7, '{}');
SELECT taskorch.trigger('st_two') AS two_5 \gset
SELECT wait_for_runs();
SELECT id = :'two_4' AS before_drop, status, output FROM taskorch.run
 WHERE id IN (:'two_4', :'two_5') ORDER BY id = :'two_5';

SELECT taskorch.unregister_task(name) FROM unnest(ARRAY['st_two', 'st_first', 'st_returning',
	'st_none', 'st_stable', 'st_error', 'st_set', 'st_definer', 'st_cast']) name;
DROP TABLE sql_task_rows;
DROP SEQUENCE sql_task_seq;
DROP FUNCTION st_two, st_first, st_returning, st_none, st_stable, st_error, st_set, st_definer, st_cast;
