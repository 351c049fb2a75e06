------------------------------------------------------------------------------
-- Batches
------------------------------------------------------------------------------
-- One task: items are [{"payload": {...}, "options": {...}}, ...].  Two
-- signatures, one function: an untyped argument (a literal, a driver's
-- parameter, a JavaScript array) is read as taskorch.items; a jsonb value
-- takes the jsonb one, which batch_trigger(items, options) would take
-- otherwise (an exact match of its second argument).
CREATE OR REPLACE FUNCTION taskorch.batch_trigger(task text, items taskorch.items, options taskorch.json_input DEFAULT NULL)
	RETURNS text
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_batch_trigger';
CREATE OR REPLACE FUNCTION taskorch.batch_trigger(task text, items jsonb, options taskorch.json_input DEFAULT NULL)
	RETURNS text
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_batch_trigger';

-- Mixed tasks: items are [{"task": ..., "payload": {...}, "options": {...}}, ...].
CREATE OR REPLACE FUNCTION taskorch.batch_trigger(items taskorch.items, options taskorch.json_input DEFAULT NULL)
	RETURNS text
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_batch_trigger_mixed';

-- Items streamed from a query: its rows give payload (jsonb), and task
-- (text) when the batch has none, options (jsonb) if any.
CREATE OR REPLACE FUNCTION taskorch.batch_trigger_query(query text, task text DEFAULT NULL,
											 options taskorch.json_input DEFAULT NULL)
	RETURNS text
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_batch_trigger_query';

-- The batch and its runs, in item order.
CREATE OR REPLACE FUNCTION taskorch.batch_retrieve(batch text) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	result jsonb;
BEGIN
	SELECT jsonb_build_object('id', b.id, 'taskIdentifier', b.task_id,
			'itemCount', b.item_count, 'createdAt', b.created_at,
			'runs', coalesce((SELECT jsonb_agg(jsonb_build_object(
					'id', r.id, 'taskIdentifier', r.task_id, 'status', r.status,
					'output', r.output, 'error', r.error, 'attempts', r.attempts)
					ORDER BY r.batch_index)
				FROM taskorch.runs_wide r WHERE r.batch_id = b.id), '[]'))
	  INTO result
	  FROM taskorch.batch b WHERE b.id = batch_retrieve.batch;
	IF result IS NULL THEN
		RAISE EXCEPTION 'batch "%" does not exist', batch
			USING ERRCODE = 'undefined_object',
				  HINT = 'batch_trigger() returns batch ids such as batch_1; you see only your own batches.';
	END IF;
	RETURN result;
END
$$;
