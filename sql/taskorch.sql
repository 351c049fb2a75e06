-- taskorch install script (copied by the Makefile to taskorch--<version>.sql).
--
-- Objects:
--   taskorch.task           the task registry        (view: taskorch.tasks)
--   taskorch.run            one row per run          (view: taskorch.runs)
--   taskorch.attempt        one row per failed attempt (view: taskorch.attempts)
--
-- Users never write these tables directly: the C functions below check the
-- caller's privileges and then write as the extension owner.  Reading goes
-- through views with security_invoker, so row-level security decides which
-- rows a role sees.

\echo Use "CREATE EXTENSION taskorch" to load this file. \quit

DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'taskorch_admin') THEN
		CREATE ROLE taskorch_admin NOLOGIN;
	END IF;
END
$$;

-- Fails with a hint when the library is not in shared_preload_libraries.
CREATE FUNCTION taskorch._require_preload() RETURNS void
	LANGUAGE c AS 'MODULE_PATHNAME', 'taskorch_require_preload';
SELECT taskorch._require_preload();

------------------------------------------------------------------------------
-- Statuses (Trigger.dev's)
------------------------------------------------------------------------------
CREATE TYPE taskorch.run_status AS ENUM (
	'DELAYED', 'QUEUED', 'EXECUTING', 'WAITING',
	'COMPLETED', 'FAILED', 'CANCELED', 'EXPIRED', 'TIMED_OUT', 'CRASHED',
	'SYSTEM_FAILURE');

------------------------------------------------------------------------------
-- Registry
------------------------------------------------------------------------------
CREATE TABLE taskorch.task (
	id				text PRIMARY KEY,
	fn				regprocedure NOT NULL,
	owner			regrole NOT NULL,
	queue			text NOT NULL,
	max_attempts	int NOT NULL,
	retry_factor	float8 NOT NULL,
	retry_min_ms	int NOT NULL,
	retry_max_ms	int NOT NULL,
	retry_randomize	bool NOT NULL,
	max_duration	interval,
	triggerers		regrole[] NOT NULL DEFAULT '{}',
	description		text,
	created_at		timestamptz NOT NULL DEFAULT now(),
	updated_at		timestamptz NOT NULL DEFAULT now(),
	payload_schema	jsonb,						-- JSON Schemas checked at trigger
	output_schema	jsonb,						-- and on completion (schema.c)
	on_success		text,						-- hook tasks (hooks.c)
	on_failure		text
);

------------------------------------------------------------------------------
-- Runs
--
-- The claim reads run_queue_idx, a partial index holding only QUEUED runs in
-- claim order; a run leaves it when its status changes.
------------------------------------------------------------------------------
CREATE SEQUENCE taskorch.run_id_seq;

CREATE TABLE taskorch.run (
	id				text COLLATE "C" PRIMARY KEY
					DEFAULT 'run_' || nextval('taskorch.run_id_seq'),
	task_id			text NOT NULL,
	status			taskorch.run_status NOT NULL DEFAULT 'QUEUED',
	payload			jsonb NOT NULL,
	output			jsonb,
	error			jsonb,
	attempts		int NOT NULL DEFAULT 0,
	max_attempts	int NOT NULL,
	queue			text NOT NULL,
	owner			regrole NOT NULL,		-- the task's owner: runs it
	triggered_by	regrole NOT NULL,
	run_at			timestamptz NOT NULL,	-- claimable from then on
	created_at		timestamptz NOT NULL DEFAULT now(),
	started_at		timestamptz,
	finished_at		timestamptz,
	updated_at		timestamptz NOT NULL DEFAULT now(),
	-- trigger options
	priority		int NOT NULL DEFAULT 0,		-- seconds ahead in the queue
	ttl				interval,					-- from enqueue time
	expires_at		timestamptz,				-- set when queued, with ttl
	delayed_until	timestamptz,
	tags			text[] NOT NULL DEFAULT '{}',
	metadata		jsonb NOT NULL DEFAULT '{}',
	idempotency_key	text,
	idempotency_key_expires_at timestamptz,
	concurrency_key	text,
	max_duration	interval,					-- overrides the task's
	replayed_from	text,
	batch_id		text,
	batch_index		int,
	debounce_key	text,
	parent_run_id	text,						-- the run whose wait made this one
	parent_wait_seq	int
) WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_insert_scale_factor = 0.01);
ALTER SEQUENCE taskorch.run_id_seq OWNED BY taskorch.run.id;

CREATE INDEX run_queue_idx ON taskorch.run (run_at, id) WHERE status = 'QUEUED';
CREATE INDEX run_task_idx ON taskorch.run (task_id, created_at);
-- DELAYED runs by due time; workers promote them to QUEUED
CREATE INDEX run_delayed_idx ON taskorch.run (run_at) WHERE status = 'DELAYED';
-- QUEUED runs with a ttl, by expiry; workers expire them
CREATE INDEX run_expiry_idx ON taskorch.run (expires_at)
	WHERE status = 'QUEUED' AND expires_at IS NOT NULL;
CREATE INDEX run_idempotency_idx ON taskorch.run (task_id, idempotency_key)
	WHERE idempotency_key IS NOT NULL;
CREATE INDEX run_batch_idx ON taskorch.run (batch_id, batch_index)
	WHERE batch_id IS NOT NULL;
CREATE INDEX run_debounce_idx ON taskorch.run (task_id, debounce_key)
	WHERE status = 'DELAYED' AND debounce_key IS NOT NULL;
CREATE INDEX run_created_idx ON taskorch.run (created_at);

CREATE TABLE taskorch.attempt (
	run_id			text COLLATE "C" NOT NULL REFERENCES taskorch.run ON DELETE CASCADE,
	number			int NOT NULL,
	status			taskorch.run_status NOT NULL,
	error			jsonb NOT NULL,
	started_at		timestamptz NOT NULL,
	finished_at		timestamptz NOT NULL,
	PRIMARY KEY (run_id, number)
);

SELECT pg_catalog.pg_extension_config_dump('taskorch.task', '');
SELECT pg_catalog.pg_extension_config_dump('taskorch.run', '');
SELECT pg_catalog.pg_extension_config_dump('taskorch.run_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('taskorch.attempt', '');

------------------------------------------------------------------------------
-- Visibility: a role sees the runs of tasks it owns and the runs it
-- triggered; members of taskorch_admin see everything.
------------------------------------------------------------------------------
CREATE FUNCTION taskorch.is_admin() RETURNS bool
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
	AS $$ SELECT pg_has_role('taskorch_admin', 'USAGE') $$;

ALTER TABLE taskorch.task ENABLE ROW LEVEL SECURITY;
ALTER TABLE taskorch.run ENABLE ROW LEVEL SECURITY;
ALTER TABLE taskorch.attempt ENABLE ROW LEVEL SECURITY;

CREATE POLICY task_visible ON taskorch.task FOR SELECT USING (
	pg_catalog.pg_has_role(owner, 'USAGE')
	OR EXISTS (SELECT FROM pg_catalog.unnest(triggerers) AS g(r)
			   WHERE pg_catalog.pg_has_role(g.r, 'USAGE'))
	OR taskorch.is_admin());
CREATE POLICY run_visible ON taskorch.run FOR SELECT USING (
	pg_catalog.pg_has_role(owner, 'USAGE')
	OR pg_catalog.pg_has_role(triggered_by, 'USAGE')
	OR taskorch.is_admin());
CREATE POLICY attempt_visible ON taskorch.attempt FOR SELECT USING (
	EXISTS (SELECT FROM taskorch.run r WHERE r.id = attempt.run_id));

REVOKE ALL ON taskorch.task, taskorch.run, taskorch.attempt FROM PUBLIC;
GRANT SELECT ON taskorch.task, taskorch.run, taskorch.attempt TO PUBLIC;
GRANT USAGE ON SCHEMA taskorch TO PUBLIC;

------------------------------------------------------------------------------
-- What runs right now (from shared memory, not from a committed row)
------------------------------------------------------------------------------
CREATE FUNCTION taskorch.executing_runs(
	OUT run_id text, OUT pid int, OUT started_at timestamptz, OUT metadata jsonb)
	RETURNS SETOF record
	LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'taskorch_executing_runs';

------------------------------------------------------------------------------
-- Views
------------------------------------------------------------------------------
CREATE VIEW taskorch.tasks WITH (security_invoker = true) AS
SELECT t.id, t.fn AS function, t.owner, t.queue, t.max_attempts,
	   jsonb_build_object('factor', t.retry_factor,
						  'minTimeoutInMs', t.retry_min_ms,
						  'maxTimeoutInMs', t.retry_max_ms,
						  'randomize', t.retry_randomize) AS retry,
	   t.max_duration, t.triggerers, t.description, t.created_at, t.updated_at,
	   t.payload_schema, t.output_schema, t.on_success, t.on_failure
  FROM taskorch.task t;

CREATE VIEW taskorch.runs WITH (security_invoker = true) AS
SELECT r.id, r.task_id,
	   CASE WHEN e.run_id IS NOT NULL THEN 'EXECUTING'::taskorch.run_status
			ELSE r.status END AS status,
	   r.attempts, r.max_attempts, r.payload, r.output, r.error, r.queue,
	   r.owner, r.triggered_by, r.created_at, r.run_at,
	   coalesce(r.started_at, e.started_at) AS started_at, r.finished_at,
	   r.finished_at - coalesce(r.started_at, e.started_at) AS duration,
	   r.updated_at, r.delayed_until, r.ttl, r.expires_at, r.priority, r.tags,
	   coalesce(e.metadata, r.metadata) AS metadata, r.idempotency_key, r.concurrency_key, r.replayed_from,
	   r.batch_id, r.batch_index, r.debounce_key, r.parent_run_id
  FROM taskorch.run r
  LEFT JOIN taskorch.executing_runs() e ON e.run_id = r.id;

CREATE VIEW taskorch.attempts WITH (security_invoker = true) AS
SELECT a.run_id, r.task_id, a.number, a.status,
	   a.error->>'message' AS message, a.error->>'sqlstate' AS sqlstate,
	   a.error, a.started_at, a.finished_at
  FROM taskorch.attempt a JOIN taskorch.run r ON r.id = a.run_id;

GRANT SELECT ON taskorch.tasks, taskorch.runs, taskorch.attempts TO PUBLIC;

------------------------------------------------------------------------------
-- Registry API
------------------------------------------------------------------------------
CREATE FUNCTION taskorch.register_task(
	id text,
	fn regprocedure,
	queue text DEFAULT NULL,
	max_attempts int DEFAULT 3,
	retry jsonb DEFAULT NULL,
	max_duration interval DEFAULT NULL,
	description text DEFAULT NULL,
	payload_schema jsonb DEFAULT NULL,
	output_schema jsonb DEFAULT NULL,
	on_success text DEFAULT NULL,
	on_failure text DEFAULT NULL)
	RETURNS text
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_register_task_v2';

CREATE FUNCTION taskorch.unregister_task(id text) RETURNS bigint
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_unregister_task';

CREATE FUNCTION taskorch.grant_trigger(task text, role regrole) RETURNS void
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_grant_trigger';

CREATE FUNCTION taskorch.revoke_trigger(task text, role regrole) RETURNS void
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_revoke_trigger';

------------------------------------------------------------------------------
-- Triggering and reading runs
------------------------------------------------------------------------------
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
	region text DEFAULT NULL,
	debounce jsonb DEFAULT NULL)
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

CREATE FUNCTION taskorch.retrieve(run text) RETURNS jsonb
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

------------------------------------------------------------------------------
-- Queues: concurrency limits (per concurrency key), pause and resume
------------------------------------------------------------------------------
CREATE TABLE taskorch.queue (
	name				text PRIMARY KEY,
	concurrency_limit	int CHECK (concurrency_limit >= 1),	-- NULL: no limit
	paused				bool NOT NULL DEFAULT false,
	owner				regrole NOT NULL,
	created_at			timestamptz NOT NULL DEFAULT now(),
	updated_at			timestamptz NOT NULL DEFAULT now()
);
SELECT pg_catalog.pg_extension_config_dump('taskorch.queue', '');
REVOKE ALL ON taskorch.queue FROM PUBLIC;
GRANT SELECT ON taskorch.queue TO PUBLIC;

CREATE VIEW taskorch.queues AS
SELECT q.name, q.concurrency_limit, q.paused, q.owner,
	   (SELECT count(*) FROM taskorch.run r WHERE r.queue = q.name AND r.status = 'QUEUED') AS queued,
	   q.created_at, q.updated_at
  FROM taskorch.queue q;
GRANT SELECT ON taskorch.queues TO PUBLIC;

CREATE FUNCTION taskorch.create_queue(name text, concurrency_limit int DEFAULT NULL)
	RETURNS text LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_create_queue';
CREATE FUNCTION taskorch.alter_queue(name text, concurrency_limit int)
	RETURNS void LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_alter_queue';
CREATE FUNCTION taskorch.pause_queue(name text, paused bool DEFAULT true)
	RETURNS void LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_pause_queue';
CREATE FUNCTION taskorch.resume_queue(name text) RETURNS void
	LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
	AS $$ SELECT taskorch.pause_queue(name, false) $$;
CREATE FUNCTION taskorch.drop_queue(name text)
	RETURNS void LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_drop_queue';

------------------------------------------------------------------------------
-- Batches
------------------------------------------------------------------------------
CREATE SEQUENCE taskorch.batch_id_seq;
CREATE TABLE taskorch.batch (
	id				text COLLATE "C" PRIMARY KEY
					DEFAULT 'batch_' || nextval('taskorch.batch_id_seq'),
	task_id			text,						-- NULL: items name their tasks
	item_count		int NOT NULL,
	triggered_by	regrole NOT NULL,
	options			jsonb,
	created_at		timestamptz NOT NULL DEFAULT now()
);
ALTER SEQUENCE taskorch.batch_id_seq OWNED BY taskorch.batch.id;
SELECT pg_catalog.pg_extension_config_dump('taskorch.batch', '');
SELECT pg_catalog.pg_extension_config_dump('taskorch.batch_id_seq', '');
ALTER TABLE taskorch.batch ENABLE ROW LEVEL SECURITY;
CREATE POLICY batch_visible ON taskorch.batch FOR SELECT USING (
	pg_catalog.pg_has_role(triggered_by, 'USAGE') OR taskorch.is_admin());
REVOKE ALL ON taskorch.batch FROM PUBLIC;
GRANT SELECT ON taskorch.batch TO PUBLIC;

-- One task: items are [{"payload": {...}, "options": {...}}, ...].
CREATE FUNCTION taskorch.batch_trigger(task text, items jsonb, options jsonb DEFAULT NULL)
	RETURNS text
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_batch_trigger';

-- Mixed tasks: items are [{"task": ..., "payload": {...}, "options": {...}}, ...].
CREATE FUNCTION taskorch.batch_trigger(items jsonb, options jsonb DEFAULT NULL)
	RETURNS text
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_batch_trigger_mixed';

-- Items streamed from a query: its rows give payload (jsonb), and task
-- (text) when the batch has none, options (jsonb) if any.
CREATE FUNCTION taskorch.batch_trigger_query(query text, task text DEFAULT NULL,
											 options jsonb DEFAULT NULL)
	RETURNS text
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_batch_trigger_query';

-- The batch and its runs, in item order.
CREATE FUNCTION taskorch.batch_retrieve(batch text) RETURNS jsonb
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
				FROM taskorch.runs r WHERE r.batch_id = b.id), '[]'))
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

------------------------------------------------------------------------------
-- Listing, and bulk cancel and replay by the same filters
------------------------------------------------------------------------------
-- The runs (you may see) matching the filters of list_runs, cancel_runs
-- and replay_runs; NULL filters match everything.
CREATE FUNCTION taskorch._matching_runs(
	status text[], task text[], tags text[], batch text,
	created_after timestamptz, created_before timestamptz)
	RETURNS SETOF taskorch.runs
	LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT r.* FROM taskorch.runs r
	 WHERE ($1 IS NULL OR r.status::text = ANY ($1))
	   AND ($2 IS NULL OR r.task_id = ANY ($2))
	   AND ($3 IS NULL OR r.tags @> $3)
	   AND ($4 IS NULL OR r.batch_id = $4)
	   AND ($5 IS NULL OR r.created_at >= $5)
	   AND ($6 IS NULL OR r.created_at < $6)
$$;

-- Newest first; pass the last id of a page as cursor for the next page.
CREATE FUNCTION taskorch.list_runs(
	status text[] DEFAULT NULL,
	task text[] DEFAULT NULL,
	tags text[] DEFAULT NULL,
	batch text DEFAULT NULL,
	created_after timestamptz DEFAULT NULL,
	created_before timestamptz DEFAULT NULL,
	page_size int DEFAULT 100,
	cursor text DEFAULT NULL)
	RETURNS SETOF taskorch.runs
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	after_created timestamptz;
BEGIN
	IF page_size IS NULL OR page_size < 1 OR page_size > 1000 THEN
		RAISE EXCEPTION 'page_size must be between 1 and 1000, not %', coalesce(page_size::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Page through more runs with cursor => the last id of a page.';
	END IF;
	IF status IS NOT NULL AND NOT status <@ enum_range(NULL::taskorch.run_status)::text[] THEN
		RAISE EXCEPTION 'unknown status in %', status
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Statuses are ' || array_to_string(enum_range(NULL::taskorch.run_status)::text[], ', ') || '.';
	END IF;
	IF cursor IS NOT NULL THEN
		SELECT r.created_at INTO after_created FROM taskorch.runs r WHERE r.id = cursor;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'cursor "%" is not a run you can see', cursor
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Pass the id of the last run of the previous page.';
		END IF;
	END IF;
	RETURN QUERY
	SELECT r.* FROM taskorch._matching_runs(list_runs.status, task, list_runs.tags, batch,
											created_after, created_before) r
	 WHERE (cursor IS NULL OR (r.created_at, r.id) < (after_created, cursor))
	 ORDER BY r.created_at DESC, r.id DESC
	 LIMIT page_size;
END
$$;

-- Cancel every run matching the filters that has not finished; returns how many.
CREATE FUNCTION taskorch.cancel_runs(
	status text[] DEFAULT NULL,
	task text[] DEFAULT NULL,
	tags text[] DEFAULT NULL,
	batch text DEFAULT NULL,
	created_after timestamptz DEFAULT NULL,
	created_before timestamptz DEFAULT NULL)
	RETURNS bigint
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT count(*) FILTER (WHERE taskorch.cancel(r.id))
	  FROM taskorch._matching_runs(status, task, tags, batch, created_after, created_before) r
	 WHERE r.status IN ('DELAYED', 'QUEUED', 'EXECUTING', 'WAITING')
$$;

-- Replay every finished run matching the filters; returns the new run ids.
CREATE FUNCTION taskorch.replay_runs(
	status text[] DEFAULT ARRAY['FAILED', 'CRASHED', 'TIMED_OUT', 'SYSTEM_FAILURE'],
	task text[] DEFAULT NULL,
	tags text[] DEFAULT NULL,
	batch text DEFAULT NULL,
	created_after timestamptz DEFAULT NULL,
	created_before timestamptz DEFAULT NULL)
	RETURNS SETOF text
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT taskorch.replay(r.id)
	  FROM taskorch._matching_runs(status, task, tags, batch, created_after, created_before) r
	 WHERE r.status IN ('COMPLETED', 'FAILED', 'CANCELED', 'EXPIRED', 'TIMED_OUT',
						'CRASHED', 'SYSTEM_FAILURE')
	 ORDER BY r.created_at
$$;

------------------------------------------------------------------------------
-- Run logs: taskorch.log() and a task's own INFO/NOTICE/WARNING messages,
-- kept even when the attempt that wrote them failed
------------------------------------------------------------------------------
CREATE TABLE taskorch.log (
	run_id			text COLLATE "C" NOT NULL REFERENCES taskorch.run ON DELETE CASCADE,
	attempt			int NOT NULL,
	position		int NOT NULL,				-- within the attempt
	logged_at		timestamptz NOT NULL,
	level			text NOT NULL,
	message			text NOT NULL,
	data			jsonb
);
CREATE INDEX log_run_idx ON taskorch.log (run_id, attempt, position);
SELECT pg_catalog.pg_extension_config_dump('taskorch.log', '');
ALTER TABLE taskorch.log ENABLE ROW LEVEL SECURITY;
CREATE POLICY log_visible ON taskorch.log FOR SELECT USING (
	EXISTS (SELECT FROM taskorch.run r WHERE r.id = log.run_id));
REVOKE ALL ON taskorch.log FROM PUBLIC;
GRANT SELECT ON taskorch.log TO PUBLIC;

CREATE VIEW taskorch.logs WITH (security_invoker = true) AS
SELECT l.run_id, r.task_id, l.attempt, l.position, l.logged_at, l.level, l.message, l.data
  FROM taskorch.log l JOIN taskorch.run r ON r.id = l.run_id;
GRANT SELECT ON taskorch.logs TO PUBLIC;

-- Inside a task: level is debug, log, info, warn or error.
CREATE FUNCTION taskorch.log(level text, message text, data jsonb DEFAULT NULL)
	RETURNS void
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_log';

------------------------------------------------------------------------------
-- Run metadata, from inside a task (Trigger.dev's metadata.set/append/...)
-- Changes are kept whatever the attempt's outcome, and other sessions see
-- them in taskorch.runs while the run executes.
------------------------------------------------------------------------------
CREATE FUNCTION taskorch.metadata() RETURNS jsonb
	LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'taskorch_metadata';
CREATE FUNCTION taskorch.metadata_replace(metadata jsonb) RETURNS jsonb
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_metadata_replace';
CREATE FUNCTION taskorch.metadata_set(key text, value jsonb) RETURNS jsonb
	LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
	AS $$ SELECT taskorch.metadata_replace(taskorch.metadata() || jsonb_build_object(key, value)) $$;
CREATE FUNCTION taskorch.metadata_del(key text) RETURNS jsonb
	LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
	AS $$ SELECT taskorch.metadata_replace(taskorch.metadata() - key) $$;
-- Append to the array at key (a scalar there becomes the array's first element).
CREATE FUNCTION taskorch.metadata_append(key text, value jsonb) RETURNS jsonb
	LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT taskorch.metadata_replace(m || jsonb_build_object(key,
		CASE WHEN jsonb_typeof(m->key) = 'array' THEN (m->key) || jsonb_build_array(value)
			 WHEN m ? key THEN jsonb_build_array(m->key, value)
			 ELSE jsonb_build_array(value) END))
	  FROM (SELECT taskorch.metadata() AS m) s $$;
-- Remove every element equal to value from the array at key.
CREATE FUNCTION taskorch.metadata_remove(key text, value jsonb) RETURNS jsonb
	LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT taskorch.metadata_replace(m || jsonb_build_object(key,
		coalesce((SELECT jsonb_agg(e) FROM jsonb_array_elements(
					CASE WHEN jsonb_typeof(m->key) = 'array' THEN m->key ELSE '[]' END) e
				   WHERE e <> value), '[]')))
	  FROM (SELECT taskorch.metadata() AS m) s $$;
-- Add by (default 1) to the number at key (missing: 0).
CREATE FUNCTION taskorch.metadata_increment(key text, by numeric DEFAULT 1) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	m jsonb := taskorch.metadata();
BEGIN
	IF m ? key AND jsonb_typeof(m->key) <> 'number' THEN
		RAISE EXCEPTION 'metadata key "%" holds %, not a number', key, jsonb_typeof(m->key)
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Increment a key that holds a number, or a new key.';
	END IF;
	RETURN taskorch.metadata_replace(m || jsonb_build_object(key, coalesce((m->>key)::numeric, 0) + by));
END
$$;

------------------------------------------------------------------------------
-- JSON Schemas (schema.c): checking values, and named schemas others refer
-- to as {"$ref": "name"}
------------------------------------------------------------------------------
CREATE TABLE taskorch.schema (
	name			text COLLATE "C" PRIMARY KEY,
	schema			jsonb NOT NULL,
	owner			regrole NOT NULL,
	description		text,
	created_at		timestamptz NOT NULL DEFAULT now(),
	updated_at		timestamptz NOT NULL DEFAULT now()
);
SELECT pg_catalog.pg_extension_config_dump('taskorch.schema', '');
REVOKE ALL ON taskorch.schema FROM PUBLIC;
GRANT SELECT ON taskorch.schema TO PUBLIC;
CREATE VIEW taskorch.schemas AS
SELECT name, schema, owner, description, created_at, updated_at FROM taskorch.schema;
GRANT SELECT ON taskorch.schemas TO PUBLIC;

-- Errors unless the schema uses only the supported keywords, well formed.
CREATE FUNCTION taskorch.check_schema(schema jsonb) RETURNS void
	LANGUAGE c STRICT STABLE AS 'MODULE_PATHNAME', 'taskorch_check_schema';
-- The failures of value against schema, each "path: rule: what"; {} when it matches.
CREATE FUNCTION taskorch.validate(value jsonb, schema jsonb) RETURNS text[]
	LANGUAGE c STRICT STABLE AS 'MODULE_PATHNAME', 'taskorch_validate';
-- Define, or (as its owner) redefine, a named schema.
CREATE FUNCTION taskorch.define_schema(name text, schema jsonb, description text DEFAULT NULL)
	RETURNS text
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_define_schema';
-- Refused while a task or another schema refers to it.
CREATE FUNCTION taskorch.drop_schema(name text) RETURNS void
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_drop_schema';

------------------------------------------------------------------------------
-- Durable waits: a WAITING run's waitpoints (waits.c)
------------------------------------------------------------------------------
CREATE TABLE taskorch.waitpoint (
	run_id			text COLLATE "C" NOT NULL REFERENCES taskorch.run ON DELETE CASCADE,
	seq				int NOT NULL,				-- the wait call's order in the execution
	kind			text NOT NULL,				-- 'time', 'run'/'batch' (children), 'token'
	resume_at		timestamptz,
	children		text[],						-- the runs waited for, in call order
	token			text,						-- the wait token waited for
	created_at		timestamptz NOT NULL,
	completed_at	timestamptz,				-- NULL: still waiting
	result			jsonb,
	PRIMARY KEY (run_id, seq)
);
CREATE INDEX waitpoint_time_idx ON taskorch.waitpoint (resume_at)
	WHERE completed_at IS NULL AND kind = 'time';
-- The unfinished children of each wait: whether a wait is over is one probe
CREATE INDEX run_waited_idx ON taskorch.run (parent_run_id, parent_wait_seq)
	WHERE parent_run_id IS NOT NULL
	  AND status IN ('DELAYED', 'QUEUED', 'EXECUTING', 'WAITING');
SELECT pg_catalog.pg_extension_config_dump('taskorch.waitpoint', '');
ALTER TABLE taskorch.waitpoint ENABLE ROW LEVEL SECURITY;
CREATE POLICY waitpoint_visible ON taskorch.waitpoint FOR SELECT USING (
	EXISTS (SELECT FROM taskorch.run r WHERE r.id = waitpoint.run_id));
REVOKE ALL ON taskorch.waitpoint FROM PUBLIC;
GRANT SELECT ON taskorch.waitpoint TO PUBLIC;

-- Inside a task: suspend the run (holding no worker) for a duration, or
-- until a time.  Code before the wait runs again when the run resumes.
CREATE FUNCTION taskorch.wait_for(duration "any") RETURNS void
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_wait_for';
CREATE FUNCTION taskorch.wait_until("time" timestamptz) RETURNS void
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_wait_until';

-- Inside a task: trigger child runs and wait for them; the result is the
-- Result object {ok, id, taskIdentifier, output | error} (for a batch,
-- {"runs": [...]} in item order).
CREATE FUNCTION taskorch.trigger_and_wait(task text, payload jsonb DEFAULT '{}',
										  options jsonb DEFAULT NULL) RETURNS jsonb
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_trigger_and_wait';
CREATE FUNCTION taskorch.batch_trigger_and_wait(task text, items jsonb) RETURNS jsonb
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_batch_trigger_and_wait';
CREATE FUNCTION taskorch.batch_trigger_and_wait(items jsonb) RETURNS jsonb
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_batch_trigger_and_wait';
-- The items streamed from a query, as batch_trigger_query(); the query runs
-- when the children are made, after the attempt's own writes are undone.
CREATE FUNCTION taskorch.batch_trigger_and_wait_query(query text, task text DEFAULT NULL)
	RETURNS jsonb
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_batch_trigger_and_wait_query';

-- Inside a task: trigger_and_wait that returns the child's output, or
-- raises its failure (Trigger.dev's SubtaskUnwrapError: the detail carries
-- runId, taskId and cause).
CREATE FUNCTION taskorch.trigger_and_wait_unwrap(task text, payload jsonb DEFAULT '{}',
												 options jsonb DEFAULT NULL) RETURNS jsonb
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
CREATE SEQUENCE taskorch.wait_token_id_seq;
CREATE TABLE taskorch.wait_token (
	id				text COLLATE "C" PRIMARY KEY
					DEFAULT 'waittoken_' || nextval('taskorch.wait_token_id_seq'),
	owner			regrole NOT NULL,
	created_at		timestamptz NOT NULL DEFAULT now(),
	timeout_at		timestamptz,					-- NULL: none
	completed_at	timestamptz,
	timed_out		bool NOT NULL DEFAULT false,
	output			jsonb,
	idempotency_key	text,
	tags			text[] NOT NULL DEFAULT '{}'
);
ALTER SEQUENCE taskorch.wait_token_id_seq OWNED BY taskorch.wait_token.id;
CREATE INDEX wait_token_timeout_idx ON taskorch.wait_token (timeout_at)
	WHERE completed_at IS NULL AND timeout_at IS NOT NULL;
SELECT pg_catalog.pg_extension_config_dump('taskorch.wait_token', '');
SELECT pg_catalog.pg_extension_config_dump('taskorch.wait_token_id_seq', '');
ALTER TABLE taskorch.wait_token ENABLE ROW LEVEL SECURITY;
CREATE POLICY wait_token_visible ON taskorch.wait_token FOR SELECT USING (
	pg_catalog.pg_has_role(owner, 'USAGE') OR taskorch.is_admin());
REVOKE ALL ON taskorch.wait_token FROM PUBLIC;
GRANT SELECT ON taskorch.wait_token TO PUBLIC;
CREATE VIEW taskorch.wait_tokens WITH (security_invoker = true) AS
SELECT id, owner, created_at, timeout_at, completed_at, timed_out, output, idempotency_key, tags,
	   CASE WHEN timed_out THEN 'TIMED_OUT' WHEN completed_at IS NOT NULL THEN 'COMPLETED'
			ELSE 'WAITING' END AS status
  FROM taskorch.wait_token;
GRANT SELECT ON taskorch.wait_tokens TO PUBLIC;

CREATE FUNCTION taskorch.create_wait_token(timeout "any" DEFAULT NULL::text,
										   idempotency_key text DEFAULT NULL,
										   tags text[] DEFAULT NULL) RETURNS text
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_create_wait_token';
-- Inside a task: {ok: true, output} once completed, {ok: false, error} on timeout.
CREATE FUNCTION taskorch.wait_for_token(token text) RETURNS jsonb
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_wait_for_token';
CREATE FUNCTION taskorch.complete_wait_token(token text, output jsonb DEFAULT '{}') RETURNS void
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_complete_wait_token';

CREATE FUNCTION taskorch._in_transaction_block() RETURNS bool
	LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'taskorch_in_transaction_block';

-- The Result object of a finished run (Trigger.dev's): {ok, id,
-- taskIdentifier, output} or {ok: false, id, taskIdentifier, error}.
CREATE FUNCTION taskorch._result(status taskorch.run_status, id text, task_id text,
								 output jsonb, error jsonb) RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	AS $$
	SELECT pg_catalog.jsonb_build_object('ok', status = 'COMPLETED', 'id', id, 'taskIdentifier', task_id)
		   || CASE WHEN status = 'COMPLETED' THEN pg_catalog.jsonb_build_object('output', output)
				   ELSE pg_catalog.jsonb_build_object('error', coalesce(error,
						pg_catalog.jsonb_build_object('message', 'run ' || status))) END $$;

-- The Result object of a run you can see; NULL while it has not finished.
CREATE FUNCTION taskorch.result(run text) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	r record;
BEGIN
	SELECT id, task_id, status, output, error INTO r FROM taskorch.runs WHERE id = run;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'run "%" does not exist', run
			USING ERRCODE = 'undefined_object',
				  HINT = 'The run may belong to a role whose runs you cannot see; check taskorch.runs.';
	END IF;
	IF r.status IN ('DELAYED', 'QUEUED', 'EXECUTING', 'WAITING') THEN
		RETURN NULL;
	END IF;
	RETURN taskorch._result(r.status, r.id, r.task_id, r.output, r.error);
END
$$;

-- From top-level SQL (not in a transaction block): wait up to timeout for
-- a run to finish; result is its Result object, or NULL after the timeout
-- (the run goes on).
CREATE PROCEDURE taskorch.wait_for_run(run text, timeout interval DEFAULT '1 minute',
									   INOUT result jsonb DEFAULT NULL)
	LANGUAGE plpgsql
	AS $$
DECLARE
	deadline timestamptz := clock_timestamp() + timeout;
BEGIN
	IF taskorch._in_transaction_block() THEN
		RAISE EXCEPTION 'taskorch.wait_for_run() cannot run inside a transaction block'
			USING ERRCODE = 'active_sql_transaction',
				  HINT = 'CALL it on its own (autocommit), so that it sees the run change; or read taskorch.result() later.';
	END IF;
	LOOP
		result := taskorch.result(run);
		EXIT WHEN result IS NOT NULL OR clock_timestamp() >= deadline;
		PERFORM pg_sleep(0.01);
		COMMIT;		-- a new snapshot for the next look
	END LOOP;
END
$$;

-- Trigger, commit, and wait_for_run().
CREATE PROCEDURE taskorch.run_and_wait(task text, payload jsonb DEFAULT '{}',
									   options jsonb DEFAULT NULL,
									   timeout interval DEFAULT '1 minute',
									   INOUT result jsonb DEFAULT NULL)
	LANGUAGE plpgsql
	AS $$
DECLARE
	run text;
BEGIN
	IF taskorch._in_transaction_block() THEN
		RAISE EXCEPTION 'taskorch.run_and_wait() cannot run inside a transaction block'
			USING ERRCODE = 'active_sql_transaction',
				  HINT = 'CALL it on its own (autocommit): the run must be committed before it can run; or use taskorch.trigger() and read the run later.';
	END IF;
	run := taskorch.trigger(task, coalesce(payload, '{}'), options);
	COMMIT;
	CALL taskorch.wait_for_run(run, timeout, result);
END
$$;


-- Inside a task: the run being executed ({id, taskIdentifier, attempt, ...}).
CREATE FUNCTION taskorch.current_run() RETURNS jsonb
	LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'taskorch_current_run';

-- Inside a task: fail the run now, without further attempts.
CREATE FUNCTION taskorch.abort(message text, detail text DEFAULT NULL) RETURNS void
	LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'taskorch_abort';

------------------------------------------------------------------------------
-- Operations
------------------------------------------------------------------------------
-- Executes due runs in this session, as the background workers would.
CREATE FUNCTION taskorch.run_pending(max_runs int DEFAULT 100) RETURNS int
	LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'taskorch_run_pending';
REVOKE ALL ON FUNCTION taskorch.run_pending(int) FROM PUBLIC;

CREATE FUNCTION taskorch.workers(
	OUT database oid, OUT slot int, OUT pid int, OUT idle bool,
	OUT run_id text)
	RETURNS SETOF record
	LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'taskorch_workers';

-- Tell the launcher that this database now has the extension.
CREATE FUNCTION taskorch._wake_launcher() RETURNS void
	LANGUAGE c AS 'MODULE_PATHNAME', 'taskorch_wake_launcher_sql';
REVOKE ALL ON FUNCTION taskorch._wake_launcher() FROM PUBLIC;
REVOKE ALL ON FUNCTION taskorch._require_preload() FROM PUBLIC;
SELECT taskorch._wake_launcher();
