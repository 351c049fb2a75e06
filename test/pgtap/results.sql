-- The FP Result rule (docs/runs.md): an output is judged once, the same
-- way as a run, as a track's step and as a child a parent waits for.  Not
-- in a transaction: the runs are committed for the workers to run.
\set QUIET on
SELECT plan(7);

CREATE FUNCTION res_shape(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT payload->'shape' $$;
SELECT taskorch.register_task('res-shape', 'res_shape(jsonb)', max_attempts => 1);
SELECT taskorch.define_track('res-track', '[{"task": "res-shape"}]');
CREATE FUNCTION res_parent(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT taskorch.trigger_and_wait('res-shape', payload) $$;
SELECT taskorch.register_task('res-parent', 'res_parent(jsonb)', max_attempts => 1);

CREATE TABLE res_outcome (n int, shape jsonb, as_run jsonb, as_step jsonb, as_child jsonb);
DO $$
DECLARE
	shape jsonb;
	n int := 0;
	r1 jsonb;
	r2 jsonb;
	r3 jsonb;
BEGIN
	FOR shape IN SELECT value FROM jsonb_array_elements('[
			{"success": false}, {"success": false, "data": 1}, {"success": "no"},
			{"success": true, "error": "x"}, {"success": true, "data": {"v": 1}}, {"plain": 1}]') LOOP
		n := n + 1;
		CALL taskorch.run_and_wait('res-shape', jsonb_build_object('shape', shape), NULL, '30 seconds', r1);
		CALL taskorch.run_and_wait('res-track', jsonb_build_object('shape', shape), NULL, '30 seconds', r2);
		CALL taskorch.run_and_wait('res-parent', jsonb_build_object('shape', shape), NULL, '30 seconds', r3);
		INSERT INTO res_outcome VALUES (n, shape, r1, r2, r3);
		COMMIT;
	END LOOP;
END
$$;

SELECT results_eq($$ SELECT n, (as_run->>'ok')::bool, (as_step->>'ok')::bool, (as_child->'output'->>'ok')::bool
					   FROM res_outcome ORDER BY n $$,
	$$ VALUES (1, false, false, false), (2, false, false, false), (3, true, true, true),
			  (4, true, true, true), (5, true, true, true), (6, true, true, true) $$,
	'each shape fails or succeeds alike as a run, as a track step and as a waited child');
SELECT results_eq($$ SELECT n, as_run->'error'->>'message', as_run->'error'->'result' = shape
					   FROM res_outcome WHERE n <= 2 ORDER BY n $$,
	$$ VALUES (1, 'task returned success: false', true), (2, 'task returned success: false', true) $$,
	'success: false is a failure whatever else it holds; the whole object is kept in error.result');
SELECT is((SELECT as_child->'output'->'error' FROM res_outcome WHERE n = 2),
	(SELECT as_run->'error' FROM res_outcome WHERE n = 2),
	'a waited child''s Result carries the same error as the run');
SELECT results_eq($$ SELECT n, as_run->'output' = shape FROM res_outcome WHERE n >= 3 ORDER BY n $$,
	$$ VALUES (3, true), (4, true), (5, true), (6, true) $$,
	'anything else completes the run with the output as returned');
SELECT results_eq($$ SELECT n, as_step->'output'->'results'->'res-shape' FROM res_outcome WHERE n >= 3 ORDER BY n $$,
	$$ VALUES (3, '{"success": "no"}'::jsonb), (4, '{"error": "x", "success": true}'), (5, '{"v": 1}'),
			  (6, '{"plain": 1}') $$,
	'a step hands on the data of a successful FP Result, else the output');
SELECT is(taskorch_internal.result_error('{"success": false, "error": {"message": "quota"}, "meta": {"m": 1}}'),
	'{"name": "ResultError", "message": "quota", "result": {"error": {"message": "quota"}, "meta": {"m": 1}, "success": false}}',
	'_result_error(): the message from error.message, data and meta kept');
SELECT is(taskorch_internal.token_result(false, '{"success": false, "error": "no"}')->>'ok', 'false',
	'a wait token completed with a failed FP Result is a failure for the waiting run');

SELECT * FROM finish();
DROP TABLE res_outcome;
