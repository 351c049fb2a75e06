-- taskorch 0.1 -> 0.2: trigger options (delay, ttl, idempotency keys,
-- priority, tags, metadata, per-run limits), DELAYED and EXPIRED runs,
-- cancel(), reschedule(), replay().

\echo Use "ALTER EXTENSION taskorch UPDATE TO '0.2'" to load this file. \quit

ALTER TABLE taskorch.run
	ADD COLUMN priority		int NOT NULL DEFAULT 0,
	ADD COLUMN ttl				interval,
	ADD COLUMN expires_at		timestamptz,
	ADD COLUMN delayed_until	timestamptz,
	ADD COLUMN tags			text[] NOT NULL DEFAULT '{}',
	ADD COLUMN metadata		jsonb NOT NULL DEFAULT '{}',
	ADD COLUMN idempotency_key	text,
	ADD COLUMN idempotency_key_expires_at timestamptz,
	ADD COLUMN concurrency_key	text,
	ADD COLUMN max_duration	interval,
	ADD COLUMN replayed_from	text;

-- DELAYED runs by due time; workers promote them to QUEUED
CREATE INDEX run_delayed_idx ON taskorch.run (run_at) WHERE status = 'DELAYED';
-- QUEUED runs with a ttl, by expiry; workers expire them
CREATE INDEX run_expiry_idx ON taskorch.run (expires_at)
	WHERE status = 'QUEUED' AND expires_at IS NOT NULL;
CREATE INDEX run_idempotency_idx ON taskorch.run (task_id, idempotency_key)
	WHERE idempotency_key IS NOT NULL;

DROP VIEW taskorch.runs;
CREATE VIEW taskorch.runs WITH (security_invoker = true) AS
SELECT r.id, r.task_id,
	   CASE WHEN e.run_id IS NOT NULL THEN 'EXECUTING'::taskorch.run_status
			ELSE r.status END AS status,
	   r.attempts, r.max_attempts, r.payload, r.output, r.error, r.queue,
	   r.owner, r.triggered_by, r.created_at, r.run_at,
	   coalesce(r.started_at, e.started_at) AS started_at, r.finished_at,
	   r.finished_at - coalesce(r.started_at, e.started_at) AS duration,
	   r.updated_at, r.delayed_until, r.ttl, r.expires_at, r.priority, r.tags,
	   r.metadata, r.idempotency_key, r.concurrency_key, r.replayed_from
  FROM taskorch.run r
  LEFT JOIN taskorch.executing_runs() e ON e.run_id = r.id;
GRANT SELECT ON taskorch.runs TO PUBLIC;

DROP FUNCTION taskorch.trigger(text, jsonb);
-- Duration-like options are "any": a string ("1h52m18s"), an interval, a
-- number of seconds, or (delay) a timestamptz.
CREATE FUNCTION taskorch.trigger(
	task text,
	payload jsonb DEFAULT '{}',
	options jsonb DEFAULT NULL,
	delay "any" DEFAULT NULL::text,
	ttl "any" DEFAULT NULL::text,
	idempotency_key text DEFAULT NULL,
	idempotency_key_ttl "any" DEFAULT NULL::text,
	queue text DEFAULT NULL,
	concurrency_key text DEFAULT NULL,
	priority int DEFAULT NULL,
	max_attempts int DEFAULT NULL,
	max_duration "any" DEFAULT NULL::text,
	tags text[] DEFAULT NULL,
	metadata jsonb DEFAULT NULL,
	machine text DEFAULT NULL,
	region text DEFAULT NULL)
	RETURNS text
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_trigger_v2';

-- Trigger.dev's idempotencyKeys.create(): a key unique to the current run
-- ('run', the default), to its attempt ('attempt'), or to nothing
-- ('global'; also what 'run' means outside a task).
CREATE FUNCTION taskorch.idempotency_key(name text, scope text DEFAULT 'run')
	RETURNS text
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	run jsonb := taskorch.current_run();
	parts text;
BEGIN
	IF name IS NULL OR name = '' THEN
		RAISE EXCEPTION 'idempotency key name must not be empty'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass a name such as ''charge-'' || order_id.';
	END IF;
	parts := CASE scope
		WHEN 'global' THEN name
		WHEN 'run' THEN name || coalesce(E'\x1f' || (run->>'id'), '')
		WHEN 'attempt' THEN name || coalesce(E'\x1f' || (run->>'id') || E'\x1f' || (run->>'attempt'), '')
	END;
	IF parts IS NULL THEN
		RAISE EXCEPTION 'invalid idempotency key scope "%"', scope
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'The scope is ''run'', ''attempt'' or ''global''.';
	END IF;
	RETURN encode(sha256(convert_to(parts, 'UTF8')), 'hex');
END
$$;

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
			'replayedFrom', r.replayed_from,
			'isQueued', r.status = 'QUEUED',
			'isExecuting', r.status = 'EXECUTING',
			'isCompleted', r.status IN ('COMPLETED', 'FAILED', 'CANCELED',
										'EXPIRED', 'TIMED_OUT', 'CRASHED',
										'SYSTEM_FAILURE'),
			'isSuccess', r.status = 'COMPLETED',
			'isFailed', r.status IN ('FAILED', 'TIMED_OUT', 'CRASHED',
									 'SYSTEM_FAILURE'),
			'attemptErrors', coalesce((
				SELECT jsonb_agg(jsonb_build_object('number', a.number,
						'status', a.status, 'error', a.error,
						'startedAt', a.started_at, 'finishedAt', a.finished_at)
						ORDER BY a.number)
				  FROM taskorch.attempt a WHERE a.run_id = r.id), '[]'))
	  INTO result
	  FROM taskorch.runs r
	 WHERE r.id = retrieve.run;
	IF result IS NULL THEN
		RAISE EXCEPTION 'run "%" does not exist', run
			USING ERRCODE = 'undefined_object',
				  HINT = 'The run may belong to a role whose runs you cannot see; check taskorch.runs.';
	END IF;
	RETURN result;
END
$$;

------------------------------------------------------------------------------
-- Run management
------------------------------------------------------------------------------
-- true: the run is now CANCELED; false: it had already finished.
CREATE FUNCTION taskorch.cancel(run text) RETURNS bool
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_cancel';

-- A DELAYED run gets a new due time (a duration from now, or a time).
CREATE FUNCTION taskorch.reschedule(run text, delay "any") RETURNS timestamptz
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_reschedule';

-- A new run with the same task, payload and options; returns its id.
CREATE FUNCTION taskorch.replay(run text) RETURNS text
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_replay';

-- have the launcher start this database's workers for the new version
SELECT taskorch._wake_launcher();
