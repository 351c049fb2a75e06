------------------------------------------------------------------------------
-- Durable waits: a WAITING run's waitpoints (waits.c)
------------------------------------------------------------------------------
-- Inside a task: suspend the run (holding no worker) for a duration, or
-- until a time.  Code before the wait runs again when the run resumes.
CREATE OR REPLACE FUNCTION taskorch.wait_for(duration taskorch.duration) RETURNS void
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_wait_for';
CREATE OR REPLACE FUNCTION taskorch.wait_until(date timestamptz) RETURNS void
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_wait_until';

-- Inside a task: trigger child runs and wait for them; the result is the
-- Result object {ok, id, taskIdentifier, output | error} (for a batch,
-- {"runs": [...]} in item order).
CREATE OR REPLACE FUNCTION taskorch.trigger_and_wait(task text, payload taskorch.json_input DEFAULT '{}',
										  options taskorch.json_input DEFAULT NULL) RETURNS jsonb
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_trigger_and_wait';
CREATE OR REPLACE FUNCTION taskorch.batch_trigger_and_wait(task text, items taskorch.items) RETURNS jsonb
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_batch_trigger_and_wait';
CREATE OR REPLACE FUNCTION taskorch.batch_trigger_and_wait(items taskorch.items) RETURNS jsonb
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_batch_trigger_and_wait';
-- The items streamed from a query, as batch_trigger_query(); the query runs
-- when the children are made, after the attempt's own writes are undone.
CREATE OR REPLACE FUNCTION taskorch.batch_trigger_and_wait_query(query text, task text DEFAULT NULL)
	RETURNS jsonb
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_batch_trigger_and_wait_query';

-- Inside a task: trigger_and_wait that returns the child's output, or
-- raises its failure (Trigger.dev's SubtaskUnwrapError: the detail carries
-- runId, taskId and cause).
CREATE OR REPLACE FUNCTION taskorch.trigger_and_wait_unwrap(task text, payload taskorch.json_input DEFAULT '{}',
												 options taskorch.json_input DEFAULT NULL) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	result jsonb := taskorch.trigger_and_wait(task, payload, options);
BEGIN
	IF (result->>'ok')::bool THEN
		RETURN result->'output';
	END IF;
	RAISE EXCEPTION 'child run % of task "%" failed: %', result->>'id', task,
		coalesce(result->'error'->>'message', 'unknown error')
		USING ERRCODE = 'TOSUB',
			  DETAIL = jsonb_build_object('name', 'SubtaskUnwrapError', 'runId', result->>'id',
										  'taskId', task, 'cause', result->'error')::text,
			  HINT = 'Use taskorch.trigger_and_wait() to get the Result object instead of an error.';
END
$$;

-- Wait tokens: completed by any session of the role that made them
CREATE OR REPLACE VIEW taskorch.wait_tokens WITH (security_invoker = true) AS
SELECT id, owner, created_at, timeout_at, completed_at, timed_out, output, idempotency_key, tags,
	   CASE WHEN timed_out THEN 'TIMED_OUT' WHEN completed_at IS NOT NULL THEN 'COMPLETED'
			ELSE 'WAITING' END AS status
  FROM taskorch.wait_token;
GRANT SELECT ON taskorch.wait_tokens TO PUBLIC;

CREATE OR REPLACE FUNCTION taskorch.create_wait_token(timeout taskorch.duration DEFAULT NULL,
										   idempotency_key text DEFAULT NULL,
										   tags text[] DEFAULT NULL) RETURNS text
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_create_wait_token';
-- Inside a task: {ok: true, output} once completed, {ok: false, error} on timeout.
CREATE OR REPLACE FUNCTION taskorch.wait_for_token(token text) RETURNS jsonb
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_wait_for_token';
CREATE OR REPLACE FUNCTION taskorch.complete_wait_token(token text, output taskorch.json_input DEFAULT '{}') RETURNS void
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_complete_wait_token';
