------------------------------------------------------------------------------
-- Triggering and reading runs
------------------------------------------------------------------------------
-- Duration-like options are a taskorch.duration: a string ("1h52m18s"), an
-- interval, or a number of seconds; a taskorch.delay is one of those or a
-- point in time (a timestamptz, or a string "2024-12-01T09:00:00Z").
CREATE OR REPLACE FUNCTION taskorch.trigger(
	task text,
	payload taskorch.json_input DEFAULT '{}',
	options taskorch.json_input DEFAULT NULL,
	delay taskorch.delay DEFAULT NULL,
	ttl taskorch.duration DEFAULT NULL,
	idempotency_key text DEFAULT NULL,
	idempotency_key_ttl taskorch.duration DEFAULT NULL,
	queue text DEFAULT NULL,
	concurrency_key text DEFAULT NULL,
	priority int DEFAULT NULL,
	max_attempts int DEFAULT NULL,
	max_duration taskorch.duration DEFAULT NULL,
	tags text[] DEFAULT NULL,
	metadata taskorch.json_input DEFAULT NULL,
	machine text DEFAULT NULL,
	region text DEFAULT NULL,
	debounce taskorch.json_input DEFAULT NULL)
	RETURNS text
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_trigger_v2';

-- Trigger.dev's idempotencyKeys.create(): a key unique to the current run
-- ('run', the default), to its attempt ('attempt'), or to nothing
-- ('global'; also what 'run' means outside a task).  A raw key given to
-- trigger() inside a task is in the run's scope too (idempotency.c).
CREATE OR REPLACE FUNCTION taskorch.idempotency_key(name text, scope text DEFAULT 'run')
	RETURNS text
	LANGUAGE c CALLED ON NULL INPUT STABLE AS 'MODULE_PATHNAME', 'taskorch_idempotency_key';

-- Trigger.dev's idempotencyKeys.reset(): the key (of your role) names no
-- run any more; the next trigger with it makes a new one.  Returns how many
-- runs it named.  The key is taken as trigger() here would take it
-- (scope 'run'), or as idempotency_key(key, scope) makes it.
CREATE OR REPLACE FUNCTION taskorch.idempotency_key_reset(task text, key text, scope text DEFAULT 'run')
	RETURNS bigint
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_idempotency_key_reset';

CREATE OR REPLACE FUNCTION taskorch.retrieve(run text) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	result jsonb;
BEGIN
	IF run !~ '^run_[0-9]+$' THEN
		RAISE EXCEPTION 'invalid run id: "%"', run
			USING ERRCODE = 'invalid_text_representation',
				  HINT = 'A run id looks like run_123, as returned by taskorch.trigger().';
	END IF;
	SELECT jsonb_build_object(
			'id', r.id, 'taskIdentifier', r.task_id, 'status', r.status,
			'payload', r.payload, 'output', r.output, 'error', r.error,
			'attempts', r.attempts, 'maxAttempts', r.max_attempts,
			'queue', r.queue, 'createdAt', r.created_at,
			'startedAt', r.started_at, 'finishedAt', r.finished_at,
			'updatedAt', r.updated_at,
			'delayedUntil', r.delayed_until, 'ttl', r.ttl, 'expiresAt', r.expires_at,
			'priority', r.priority, 'tags', r.tags, 'metadata', r.metadata,
			'idempotencyKey', r.idempotency_key, 'concurrencyKey', r.concurrency_key,
			'replayedFrom', r.replayed_from, 'batchId', r.batch_id,
			'parentRunId', r.parent_run_id, 'rootRunId', r.root_run_id,
			'isQueued', taskorch.queued(r.status),
			'isExecuting', r.status = taskorch_internal.executing(),
			'isCompleted', taskorch.finished(r.status),
			'isSuccess', taskorch.succeeded(r.status),
			'isFailed', taskorch.failed(r.status),
			'attemptErrors', coalesce((
				SELECT jsonb_agg(jsonb_build_object('number', a.number,
						'status', a.status, 'error', a.error,
						'startedAt', a.started_at, 'finishedAt', a.finished_at)
						ORDER BY a.number)
				  FROM taskorch.attempt a WHERE a.run_id = r.id), '[]'))
	  INTO result
	  FROM taskorch.runs_wide r
	 WHERE r.id = retrieve.run;
	IF result IS NULL THEN
		RAISE EXCEPTION 'run "%" does not exist', run
			USING ERRCODE = 'undefined_object',
				  HINT = 'The run may belong to a role whose runs you cannot see; check taskorch.runs.';
	END IF;
	RETURN result;
END
$$;
