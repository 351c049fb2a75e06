-- The orchestration patterns of docs/patterns.md: the page's own examples
-- run first (test/pgtap.sh puts them in patterns.inc), then each pattern's
-- contract is checked from the runs they left.  Not in a transaction: the
-- examples commit their triggers for the workers to run.
\o /dev/null
\set QUIET on
\ir patterns.inc
\o
SELECT plan(22);

CREATE FUNCTION pg_temp.output_of(task text) RETURNS jsonb LANGUAGE sql AS $$
	SELECT output FROM taskorch.runs WHERE task_id = task ORDER BY created_at LIMIT 1 $$;
CREATE FUNCTION pg_temp.children_of(task text) RETURNS SETOF taskorch.run LANGUAGE sql AS $$
	SELECT c.* FROM taskorch.run c JOIN taskorch.run p ON c.parent_run_id = p.id
	 WHERE p.task_id = task ORDER BY c.created_at, c.id $$;

-- basic usage: results by position
SELECT is(pg_temp.output_of('basic'), '{"first": {"foo": "bar"}, "second": {"n": 42, "square": 1764}}',
	'basic: each run''s output at its item''s position');
-- destructured results
SELECT is(pg_temp.output_of('profile')->'posts', '[]', 'destructured: a failed run gives its fallback');
SELECT is(pg_temp.output_of('profile')->'settings', '{"theme": "dark"}', 'destructured: the third run is the third item');
-- error handling per task
SELECT is(jsonb_path_query_array(pg_temp.output_of('per-task'), '$[*].success'), '[true, false, true]',
	'per task: every run succeeds or fails on its own');
SELECT is(pg_temp.output_of('per-task')->1->>'taskId', 'square', 'per task: a failure names its task');
SELECT results_eq($$ SELECT status::text, error->>'message' FROM taskorch.runs_wide
					  WHERE task_id = 'per-task' AND status <> 'COMPLETED' $$,
	$$ VALUES ('FAILED', '1 tasks failed') $$, 'per task: or the parent fails when any child failed');
-- filtering by task identifier
SELECT is(jsonb_array_length(pg_temp.output_of('check-claims')->'verifications'), 2,
	'filter: the verify-source outputs only');
SELECT ok(jsonb_path_exists(pg_temp.output_of('check-claims'), '$.analyses[*].seen_before')
		  AND NOT jsonb_path_exists(pg_temp.output_of('check-claims'), '$.analyses[*].verified'),
	'filter: the analyze-history outputs only');
-- fan-out / fan-in
SELECT is((SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(pg_temp.output_of('process-items')) k),
	ARRAY['errors', 'failed', 'processed', 'results'], 'fan-in: {processed, failed, results, errors}');
SELECT is(pg_temp.output_of('process-items') - 'errors', '{"failed": 1, "processed": 3, "results": [1, 4, 16]}',
	'fan-in: counts and the successful outputs in item order');
SELECT is((SELECT status::text FROM taskorch.runs_wide
			WHERE id = pg_temp.output_of('process-items')->'errors'->0->>'id'), 'FAILED',
	'fan-in: an error names the failed child run');
SELECT is((SELECT count(*) FROM pg_temp.children_of('process-items')), 4::bigint,
	'fan-out: one child per item');
-- sequential, then parallel, then sequential
SELECT is(pg_temp.output_of('pipeline'), '{"sum_of_squares": 14}', 'pipeline: the aggregate of the squares');
SELECT is((SELECT array_agg(task_id || ':' || parent_wait_seq ORDER BY created_at, id)
			 FROM pg_temp.children_of('pipeline')),
	ARRAY['preprocess:0', 'square:1', 'square:1', 'square:1', 'aggregate:2'],
	'pipeline: each step''s children made once, by its own wait, in order');
SELECT is((SELECT attempts FROM taskorch.runs WHERE task_id = 'pipeline'), 1,
	'pipeline: waiting spent no attempt');
-- the same task over many items
SELECT is(pg_temp.output_of('same-task')->'one_task', pg_temp.output_of('same-task')->'by_task',
	'same task: both batch forms give the same results');
-- concurrency control on the child's queue
SELECT is((SELECT concurrency_limit FROM taskorch.queues WHERE name = 'api-calls'), 5,
	'concurrency: the child''s queue is limited to 5');
SELECT results_eq($$ SELECT queue, count(*) FROM pg_temp.children_of('batch-process') GROUP BY queue $$,
	$$ VALUES ('api-calls', 20::bigint) $$, 'concurrency: every child ran on the limited queue');
SELECT is((SELECT queue FROM taskorch.runs_wide WHERE task_id = 'batch-process'), 'batch-process',
	'concurrency: the parent is on its own queue (its task''s), not the limited one');
-- streaming batch items from a query
SELECT is(pg_temp.output_of('process-records'), '{"runs": 2000, "sum": 57000}',
	'streaming: every row of the query became a child, its result in row order');
SELECT is((SELECT cardinality(children) FROM taskorch.waitpoint w
			 JOIN taskorch.runs p ON p.id = w.run_id WHERE p.task_id = 'process-records'), 2000,
	'streaming: one wait on 2,000 children');
SELECT is((SELECT count(DISTINCT parent_wait_seq) FROM pg_temp.children_of('process-records')), 1::bigint,
	'streaming: all linked to that one wait');

SELECT * FROM finish();
