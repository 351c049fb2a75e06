-- batch_trigger (one task, and mixed tasks), batch_retrieve, list_runs,
-- and bulk cancel and replay.
\set SHOW_CONTEXT always
CREATE FUNCTION bat_echo(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT payload $$;
CREATE FUNCTION bat_fail(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'bad item %', payload->>'i'; END $$;
SELECT taskorch.register_task('bat-echo', 'bat_echo(jsonb)');
SELECT taskorch.register_task('bat-fail', 'bat_fail(jsonb)', max_attempts => 1);

-- one task; batch options apply where an item sets none
SELECT taskorch.batch_trigger('bat-echo',
	'[{"payload": {"i": 0}},
	  {"payload": {"i": 1}, "options": {"tags": ["own"]}},
	  {}]',
	'{"tags": ["batch"], "metadata": {"from": "batch"}}') AS b1 \gset
SELECT wait_for_runs();
SELECT batch_index, status, output, tags, metadata FROM taskorch.runs_wide
 WHERE batch_id = :'b1' ORDER BY batch_index;
SELECT r->>'id' = :'b1' AS same_id, r->>'taskIdentifier' AS task, r->'itemCount' AS items,
	   jsonb_path_query_array(r, '$.runs[*].output') AS outputs,
	   jsonb_path_query_array(r, '$.runs[*].status') AS statuses
  FROM taskorch.batch_retrieve(:'b1') r;

-- mixed tasks, in order, each with its own result
SELECT taskorch.batch_trigger('[{"task": "bat-echo", "payload": {"i": 10}},
								{"task": "bat-fail", "payload": {"i": 11}},
								{"task": "bat-echo", "payload": {"i": 12}}]') AS b2 \gset
SELECT wait_for_runs();
SELECT jsonb_path_query_array(r, '$.runs[*].taskIdentifier') AS tasks,
	   jsonb_path_query_array(r, '$.runs[*].status') AS statuses,
	   r->'runs'->1->'error'->>'message' AS second_error, r->>'taskIdentifier' AS task
  FROM taskorch.batch_retrieve(:'b2') r;

-- a batch is all or nothing; the error names the item and the phase
SELECT count(*) AS runs_before FROM taskorch.run \gset
SELECT count(*) AS batches_before FROM taskorch.batch \gset
SELECT taskorch.batch_trigger('bat-echo', '[{"payload": {"i": 1}}, {"payload": 5}]');
SELECT taskorch.batch_trigger('[{"task": "bat-echo"}, {"task": "no-such-task"}]');
SELECT taskorch.batch_trigger('[{"payload": {}}]');
SELECT taskorch.batch_trigger('bat-echo', '[{}, {"options": {"delay": "soon"}}]');
SELECT taskorch.batch_trigger('bat-echo', '[{"payload": {}, "bogus": 1, "options": {"dealy": 1}}]');
SELECT taskorch.batch_trigger('bat-echo', '{}');
SELECT taskorch.batch_trigger('bat-echo', '[]');
SELECT taskorch.batch_trigger('bat-echo',
	(SELECT jsonb_agg(jsonb_build_object('payload', jsonb_build_object('i', g)))
	   FROM generate_series(1, 1001) g));
SELECT taskorch.batch_trigger('bat-echo', '[{}]', '[]');
SELECT count(*) - :runs_before AS new_runs FROM taskorch.run;
SELECT count(*) - :batches_before AS new_batches FROM taskorch.batch;
SELECT taskorch.batch_retrieve('batch_999999');
-- the largest batch goes through
SELECT taskorch.batch_trigger('bat-echo',
	(SELECT jsonb_agg(jsonb_build_object('payload', jsonb_build_object('i', g)))
	   FROM generate_series(1, 1000) g)) AS big \gset
SELECT wait_for_runs();
SELECT count(*), min(batch_index), max(batch_index), bool_and(status = 'COMPLETED') AS all_completed
  FROM taskorch.runs_wide WHERE batch_id = :'big';

-- list_runs: filters, newest first, pages through a cursor
SELECT count(*) AS in_batch FROM taskorch.list_runs(batch => :'b1');
SELECT batch_index FROM taskorch.list_runs(batch => :'b1', page_size => 2);
SELECT id AS page1_last FROM taskorch.list_runs(batch => :'b1', page_size => 2)
 ORDER BY created_at, id LIMIT 1 \gset
SELECT batch_index FROM taskorch.list_runs(batch => :'b1', page_size => 2, cursor => :'page1_last');
SELECT count(*) AS tagged FROM taskorch.list_runs(tags => ARRAY['batch'], page_size => 1000);
SELECT count(*) AS failed FROM taskorch.list_runs(status => ARRAY['FAILED'], task => ARRAY['bat-fail']);
SELECT count(*) AS none_before FROM taskorch.list_runs(created_before => '2000-01-01');
SELECT count(*) AS in_range FROM taskorch.list_runs(batch => :'b1', created_after => now() - interval '1 hour',
													created_before => now() + interval '1 hour');
SELECT * FROM taskorch.list_runs(page_size => 0);
SELECT * FROM taskorch.list_runs(page_size => 1001);
SELECT * FROM taskorch.list_runs(status => ARRAY['DONE']);
SELECT * FROM taskorch.list_runs(cursor => 'run_999999999');

-- bulk cancel and replay
SELECT taskorch.batch_trigger('bat-echo', '[{"payload": {"d": 1}}, {"payload": {"d": 2}}]',
							  '{"delay": "1h", "tags": ["later"]}') AS b3 \gset
SELECT taskorch.cancel_runs(batch => :'b3') AS canceled;
SELECT taskorch.cancel_runs(batch => :'b3') AS canceled_again;
SELECT DISTINCT status FROM taskorch.runs_wide WHERE batch_id = :'b3';
SELECT count(*) AS replayed FROM taskorch.replay_runs(task => ARRAY['bat-fail']);
SELECT wait_for_runs();
SELECT count(*) AS replays_of_failures FROM taskorch.runs_wide
 WHERE task_id = 'bat-fail' AND replayed_from IS NOT NULL AND status = 'FAILED';

-- batch_trigger_query: the items are streamed from a query's rows
CREATE TABLE bat_records (id int PRIMARY KEY, kind text);
INSERT INTO bat_records SELECT g, CASE WHEN g % 2 = 0 THEN 'even' ELSE 'odd' END
  FROM generate_series(1, 2500) g;
SELECT taskorch.batch_trigger_query(
	'SELECT jsonb_build_object(''id'', id) AS payload FROM bat_records ORDER BY id',
	task => 'bat-echo', options => '{"tags": ["streamed"]}') AS bq \gset
SELECT wait_for_runs();
SELECT item_count FROM taskorch.batch WHERE id = :'bq';
SELECT count(*), min(batch_index), max(batch_index),
	   bool_and((output->>'id')::int = batch_index + 1) AS in_order,
	   bool_and(tags = '{streamed}') AS batch_options, bool_and(status = 'COMPLETED') AS all_completed
  FROM taskorch.runs_wide WHERE batch_id = :'bq';
-- mixed tasks and per-row options from columns
SELECT taskorch.batch_trigger_query($q$
	SELECT CASE WHEN id = 1 THEN 'bat-fail' ELSE 'bat-echo' END AS task,
		   jsonb_build_object('id', id) AS payload,
		   CASE WHEN id = 2 THEN '{"delay": "1h"}'::jsonb END AS options
	  FROM bat_records WHERE id <= 3 $q$) AS bq2 \gset
SELECT batch_index, task_id, status = 'DELAYED' AS delayed FROM taskorch.runs_wide WHERE batch_id = :'bq2' ORDER BY batch_index;
-- an empty result is an empty batch
SELECT taskorch.batch_trigger_query('SELECT ''{}''::jsonb AS payload WHERE false', 'bat-echo') AS bq3 \gset
SELECT item_count FROM taskorch.batch WHERE id = :'bq3';
-- bad queries and rows refuse the whole batch, naming the row
SELECT count(*) AS runs_before FROM taskorch.run \gset
SELECT taskorch.batch_trigger_query('SELECT 1 AS payload', 'bat-echo');
SELECT taskorch.batch_trigger_query('SELECT ''{}''::jsonb AS data', 'bat-echo');
SELECT taskorch.batch_trigger_query('SELECT ''{}''::jsonb AS payload, 1 AS extra', 'bat-echo');
SELECT taskorch.batch_trigger_query('SELECT ''{}''::jsonb AS payload, ''{}''::jsonb AS payload', 'bat-echo');
SELECT taskorch.batch_trigger_query('SELECT ''{}''::jsonb AS payload');
SELECT taskorch.batch_trigger_query('SELECT ''bat-echo'' AS task, ''{}''::jsonb AS payload', 'bat-echo');
SELECT taskorch.batch_trigger_query('DELETE FROM bat_records', 'bat-echo');
-- a statement that changes data is refused before it runs, even one that
-- returns rows (RETURNING) or hides in a WITH clause: no row is deleted
SELECT count(*) AS records_before FROM bat_records \gset
SELECT taskorch.batch_trigger_query(
	'DELETE FROM bat_records WHERE id <= 10 RETURNING jsonb_build_object(''id'', id) AS payload', 'bat-echo');
SELECT taskorch.batch_trigger_query(
	'WITH d AS (DELETE FROM bat_records WHERE id <= 10 RETURNING id) SELECT jsonb_build_object(''id'', id) AS payload FROM d', 'bat-echo');
SELECT taskorch.batch_trigger_query(
	'SELECT ''{}''::jsonb AS payload; DELETE FROM bat_records', 'bat-echo');
SELECT taskorch.batch_trigger_query('SELECT ''{}''::jsonb AS payload INTO bat_copy', 'bat-echo');
SELECT taskorch.check_items_query(
	'DELETE FROM bat_records WHERE id <= 10 RETURNING jsonb_build_object(''id'', id) AS payload', 'bat-echo');
SELECT :records_before - count(*) AS records_deleted FROM bat_records;
SELECT to_regclass('bat_copy') AS copy_made;
SELECT taskorch.batch_trigger_query('SELECT FROM nowhere', 'bat-echo');
SELECT taskorch.batch_trigger_query(NULL, 'bat-echo');
SELECT taskorch.batch_trigger_query(
	'SELECT CASE WHEN id = 3 THEN ''[1]'' ELSE ''{}'' END::jsonb AS payload FROM bat_records ORDER BY id',
	'bat-echo');
SELECT taskorch.batch_trigger_query(
	'SELECT CASE WHEN id < 5 THEN ''bat-echo'' END AS task, ''{}''::jsonb AS payload FROM bat_records ORDER BY id');
SELECT taskorch.batch_trigger_query(
	'SELECT ''{}''::jsonb AS payload FROM generate_series(1, 100001)', 'bat-echo');
SELECT count(*) - :runs_before AS new_runs FROM taskorch.run;
DROP TABLE bat_records;

-- items may also be an array of JSON values, as node-postgres sends a
-- JavaScript array and psycopg a list of Jsonb; a jsonb value still takes
-- the one-task form, and a JSON object is no list of items
SELECT taskorch.batch_trigger('bat-echo', '{"{\"payload\": {\"i\": 1}}","{\"payload\": {\"i\": 2}}"}') AS b \gset
SELECT jsonb_agg(payload ORDER BY batch_index) AS payloads FROM taskorch.runs_wide WHERE batch_id = :'b';
SELECT taskorch.batch_trigger('bat-echo', ARRAY['{"payload": {"i": 3}}'::jsonb]) AS b \gset
SELECT jsonb_agg(payload ORDER BY batch_index) AS payloads FROM taskorch.runs_wide WHERE batch_id = :'b';
SELECT taskorch.batch_trigger('bat-echo', jsonb_build_array(jsonb_build_object('payload', '{"i": 4}'::jsonb))) AS b \gset
SELECT jsonb_agg(payload ORDER BY batch_index) AS payloads FROM taskorch.runs_wide WHERE batch_id = :'b';
SELECT taskorch.batch_trigger('bat-echo', '{"a": 1}');

-- an idempotency key in the batch's options dedups the batch (Trigger.dev's
-- batchTrigger(items, {idempotencyKey})): a second call returns the first
-- batch and makes no run; the items do not inherit the key
SELECT count(*) AS runs_before FROM taskorch.run \gset
SELECT taskorch.batch_trigger('bat-echo', '[{"payload": {"k": 1}}, {"payload": {"k": 2}}]',
							  '{"idempotencyKey": "nightly", "delay": "1h"}') AS b \gset
SELECT taskorch.batch_trigger('bat-echo', '[{"payload": {"k": 1}}, {"payload": {"k": 2}}]',
							  '{"idempotencyKey": "nightly", "delay": "1h"}') = :'b' AS same_batch;
SELECT count(*) - :runs_before AS new_runs, count(idempotency_key) FILTER (WHERE batch_id = :'b') AS items_with_key
  FROM taskorch.run;
SELECT taskorch.batch_trigger(items => '[{"task": "bat-echo", "payload": {}}]',
							  options => '{"idempotency_key": "nightly", "delay": "1h"}') <> :'b' AS other_form_other_batch;
-- an item's own key is its own
SELECT taskorch.batch_trigger('bat-echo', '[{"payload": {}, "options": {"idempotencyKey": "item-key"}}]',
							  '{"idempotencyKey": "with-item-key", "idempotencyKeyTTL": "1h", "delay": "1h"}') AS b \gset
SELECT idempotency_key FROM taskorch.runs_wide WHERE batch_id = :'b';
SELECT idempotency_key, idempotency_key_expires_at - created_at < interval '1 hour 1 second' AS ttl_1h
  FROM taskorch.batch WHERE id = :'b';
