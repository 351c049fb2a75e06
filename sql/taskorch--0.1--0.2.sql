-- taskorch 0.1 -> 0.2: trigger options (delay, ttl, idempotency keys,
-- priority, tags, metadata, per-run limits), DELAYED and EXPIRED runs,
-- cancel(), reschedule(), replay(), batches, list_runs() and bulk
-- cancel/replay, run logs, run metadata, queues with concurrency limits,
-- debounce, durable waits (a time, child runs), role columns that keep the
-- role's name (a dump restores into a cluster that lacks some role).

\echo Use "ALTER EXTENSION taskorch UPDATE TO '0.2'" to load this file. \quit

------------------------------------------------------------------------------
-- Role references (role_ref.c): every column that names a role keeps its
-- OID and its name.  pg_dump writes the name; a restore into a cluster
-- without that role keeps the row, which names no role (its runs do not
-- execute) until a role of that name is created.  A number is never taken
-- for an OID.  Cast to oid, a role_ref is the role it names: its OID, or
-- (restored before its role existed) the role of its name, 0: none.
------------------------------------------------------------------------------
CREATE TYPE taskorch.role_ref;
CREATE FUNCTION taskorch.role_ref_in(cstring) RETURNS taskorch.role_ref
	LANGUAGE c STRICT STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_role_ref_in';
CREATE FUNCTION taskorch.role_ref_out(taskorch.role_ref) RETURNS cstring
	LANGUAGE c STRICT STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_role_ref_out';
CREATE FUNCTION taskorch.role_ref_recv(internal) RETURNS taskorch.role_ref
	LANGUAGE c STRICT STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_role_ref_recv';
CREATE FUNCTION taskorch.role_ref_send(taskorch.role_ref) RETURNS bytea
	LANGUAGE c STRICT STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_role_ref_send';
CREATE TYPE taskorch.role_ref (
	INPUT = taskorch.role_ref_in, OUTPUT = taskorch.role_ref_out,
	RECEIVE = taskorch.role_ref_recv, SEND = taskorch.role_ref_send,
	INTERNALLENGTH = VARIABLE, STORAGE = main);
CREATE FUNCTION taskorch.role_ref_oid(taskorch.role_ref) RETURNS oid
	LANGUAGE c STRICT STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_role_ref_oid';
CREATE FUNCTION taskorch.role_ref(oid) RETURNS taskorch.role_ref
	LANGUAGE c STRICT STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_role_ref_from_oid';
-- implicit: pg_has_role(owner, 'USAGE') and owner::oid read the role
CREATE CAST (taskorch.role_ref AS oid) WITH FUNCTION taskorch.role_ref_oid(taskorch.role_ref)
	AS IMPLICIT;
CREATE CAST (oid AS taskorch.role_ref) WITH FUNCTION taskorch.role_ref(oid) AS ASSIGNMENT;
CREATE CAST (regrole AS taskorch.role_ref) WITH FUNCTION taskorch.role_ref(oid) AS ASSIGNMENT;

-- The role columns of 0.1 become role_refs.  A regrole whose role was
-- dropped has no name left: an owner becomes the unknown role "" (its runs
-- never execute), a triggerer (who was granted nothing any more) is left
-- out.  The views and policies that read the columns are made again.
CREATE FUNCTION taskorch._role_ref_of(r regrole) RETURNS taskorch.role_ref
	LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
	AS $$ SELECT CASE WHEN EXISTS (SELECT FROM pg_roles WHERE oid = r)
					  THEN r::oid::taskorch.role_ref ELSE '""'::taskorch.role_ref END $$;
CREATE FUNCTION taskorch._role_refs_of(rs regrole[]) RETURNS taskorch.role_ref[]
	LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
	AS $$ SELECT ARRAY(SELECT g::oid::taskorch.role_ref FROM unnest(rs) WITH ORDINALITY AS u(g, i)
						WHERE EXISTS (SELECT FROM pg_roles WHERE oid = g) ORDER BY i) $$;
DROP POLICY task_visible ON taskorch.task;
DROP POLICY run_visible ON taskorch.run;
DROP VIEW taskorch.tasks;
DROP VIEW taskorch.runs;
ALTER TABLE taskorch.task ALTER owner TYPE taskorch.role_ref USING taskorch._role_ref_of(owner);
ALTER TABLE taskorch.task ALTER triggerers DROP DEFAULT;
ALTER TABLE taskorch.task
	ALTER triggerers TYPE taskorch.role_ref[] USING taskorch._role_refs_of(triggerers);
ALTER TABLE taskorch.task ALTER triggerers SET DEFAULT '{}';
ALTER TABLE taskorch.run
	ALTER owner TYPE taskorch.role_ref USING taskorch._role_ref_of(owner),
	ALTER triggered_by TYPE taskorch.role_ref USING taskorch._role_ref_of(triggered_by);
DROP FUNCTION taskorch._role_ref_of(regrole);
DROP FUNCTION taskorch._role_refs_of(regrole[]);
CREATE POLICY task_visible ON taskorch.task FOR SELECT USING (
	pg_catalog.pg_has_role(owner, 'USAGE')
	OR EXISTS (SELECT FROM pg_catalog.unnest(triggerers) AS g(r)
			   WHERE pg_catalog.pg_has_role(g.r, 'USAGE'))
	OR taskorch.is_admin());
CREATE POLICY run_visible ON taskorch.run FOR SELECT USING (
	pg_catalog.pg_has_role(owner, 'USAGE')
	OR pg_catalog.pg_has_role(triggered_by, 'USAGE')
	OR taskorch.is_admin());

-- A run has finished (reached a status it never leaves).
CREATE FUNCTION taskorch.finished(status taskorch.run_status) RETURNS bool
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	AS $$ SELECT status NOT IN ('DELAYED', 'QUEUED', 'EXECUTING', 'WAITING') $$;

ALTER TABLE taskorch.task
	ADD COLUMN payload_schema	jsonb,
	ADD COLUMN output_schema	jsonb,
	ADD COLUMN on_success		text,
	ADD COLUMN on_failure		text;
CREATE VIEW taskorch.tasks WITH (security_invoker = true) AS
SELECT t.id, t.fn AS function, t.owner, t.queue, t.max_attempts,
	   jsonb_build_object('factor', t.retry_factor,
						  'minTimeoutInMs', t.retry_min_ms,
						  'maxTimeoutInMs', t.retry_max_ms,
						  'randomize', t.retry_randomize) AS retry,
	   t.max_duration, t.triggerers, t.description, t.created_at, t.updated_at,
	   t.payload_schema, t.output_schema, t.on_success, t.on_failure
  FROM taskorch.task t;
GRANT SELECT ON taskorch.tasks TO PUBLIC;
DROP FUNCTION taskorch.register_task(text, regprocedure, text, int, jsonb, interval, text);
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
	ADD COLUMN replayed_from	text,
	ADD COLUMN batch_id		text,
	ADD COLUMN batch_index		int,
	ADD COLUMN debounce_key	text,
	ADD COLUMN parent_run_id	text,
	ADD COLUMN parent_wait_seq	int;

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

-- executing runs now show the metadata their task changed
DROP FUNCTION taskorch.executing_runs();
CREATE FUNCTION taskorch.executing_runs(
	OUT run_id text, OUT pid int, OUT started_at timestamptz, OUT metadata jsonb)
	RETURNS SETOF record
	LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'taskorch_executing_runs';
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
			'isQueued', r.status = 'QUEUED',
			'isExecuting', r.status = 'EXECUTING',
			'isCompleted', taskorch.finished(r.status),
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
	owner				taskorch.role_ref NOT NULL,
	users				taskorch.role_ref[] NOT NULL DEFAULT '{}',	-- grant_queue(): may use it
	created_at			timestamptz NOT NULL DEFAULT now(),
	updated_at			timestamptz NOT NULL DEFAULT now()
);
SELECT pg_catalog.pg_extension_config_dump('taskorch.queue', '');
REVOKE ALL ON taskorch.queue FROM PUBLIC;
GRANT SELECT ON taskorch.queue TO PUBLIC;

-- queued counts the runs the reader may see (security_invoker: row-level security)
CREATE VIEW taskorch.queues WITH (security_invoker = true) AS
SELECT q.name, q.concurrency_limit, q.paused, q.owner, q.users,
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
-- The role (and its members) may register tasks in the queue and trigger into it.
CREATE FUNCTION taskorch.grant_queue(queue text, role regrole)
	RETURNS void LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_grant_queue';
CREATE FUNCTION taskorch.revoke_queue(queue text, role regrole)
	RETURNS void LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_revoke_queue';

------------------------------------------------------------------------------
-- Batches
------------------------------------------------------------------------------
CREATE SEQUENCE taskorch.batch_id_seq;
CREATE TABLE taskorch.batch (
	id				text COLLATE "C" PRIMARY KEY
					DEFAULT 'batch_' || nextval('taskorch.batch_id_seq'),
	task_id			text,						-- NULL: items name their tasks
	item_count		int NOT NULL,
	triggered_by	taskorch.role_ref NOT NULL,
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

-- The status filter of list_runs, cancel_runs and replay_runs names statuses.
CREATE FUNCTION taskorch._check_statuses(status text[]) RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF status IS NOT NULL AND NOT status <@ enum_range(NULL::taskorch.run_status)::text[] THEN
		RAISE EXCEPTION 'unknown status in %', status
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Statuses are ' || array_to_string(enum_range(NULL::taskorch.run_status)::text[], ', ') || '.';
	END IF;
END
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
	PERFORM taskorch._check_statuses(status);
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
	SELECT taskorch._check_statuses(status);
	SELECT count(*) FILTER (WHERE taskorch.cancel(r.id))
	  FROM taskorch._matching_runs(status, task, tags, batch, created_after, created_before) r
	 WHERE NOT taskorch.finished(r.status)
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
	SELECT taskorch._check_statuses(status);
	SELECT taskorch.replay(r.id)
	  FROM taskorch._matching_runs(status, task, tags, batch, created_after, created_before) r
	 WHERE taskorch.finished(r.status)
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
	IF by IS NULL OR by IN ('NaN', 'Infinity', '-Infinity') THEN
		RAISE EXCEPTION 'metadata increment must be a finite number, not %', coalesce(by::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass a number such as 1 or -2.5.';
	END IF;
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
	owner			taskorch.role_ref NOT NULL,
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
	owner			taskorch.role_ref NOT NULL,
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
	IF NOT taskorch.finished(r.status) THEN
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



------------------------------------------------------------------------------
-- Tracks and orchestrators (seeds 001, 002, 004): tasks whose run runs
-- other tasks, sequentially (a track's steps) or in parallel (an
-- orchestrator's members), by durable waits; and their job status,
-- derived from the runs.  None of these functions is SECURITY DEFINER: they
-- run as the caller (definitions) or as the task's owner (runners), and
-- resolve the mappers and queries they are given under that role's
-- search_path.
------------------------------------------------------------------------------
CREATE TABLE taskorch.composite (
	name			text PRIMARY KEY REFERENCES taskorch.task ON DELETE CASCADE,
	kind			text NOT NULL CHECK (kind IN ('track', 'orchestrator')),
	-- [{"name", "task", "input_mapper" | "input"}], in order; for a traverse
	-- orchestrator, one {"name", "task", "query", "page_size"}
	steps			jsonb NOT NULL,
	continue_on_failure bool NOT NULL DEFAULT false,
	base_fields		bool NOT NULL DEFAULT false
);
SELECT pg_catalog.pg_extension_config_dump('taskorch.composite', '');
ALTER TABLE taskorch.composite ENABLE ROW LEVEL SECURITY;
CREATE POLICY composite_read ON taskorch.composite FOR SELECT USING (
	EXISTS (SELECT FROM taskorch.task t WHERE t.id = composite.name));	-- tasks you may see
CREATE POLICY composite_insert ON taskorch.composite FOR INSERT WITH CHECK (
	EXISTS (SELECT FROM taskorch.task t WHERE t.id = composite.name
			 AND (pg_catalog.pg_has_role(t.owner, 'USAGE') OR taskorch.is_admin())));
CREATE POLICY composite_update ON taskorch.composite FOR UPDATE USING (
	EXISTS (SELECT FROM taskorch.task t WHERE t.id = composite.name
			 AND (pg_catalog.pg_has_role(t.owner, 'USAGE') OR taskorch.is_admin())));
REVOKE ALL ON taskorch.composite FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON taskorch.composite TO PUBLIC;

CREATE FUNCTION taskorch._next_wait_done() RETURNS bool
	LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'taskorch_next_wait_done';
CREATE FUNCTION taskorch._replaying() RETURNS bool
	LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'taskorch_replaying';

-- A declarative input: the template with every string "$.prev..." or
-- "$.input..." replaced by that JSON path's value in {prev, input}.
CREATE FUNCTION taskorch.fill_template(template jsonb, prev jsonb, input jsonb) RETURNS jsonb
	LANGUAGE sql STABLE
	AS $$
	SELECT CASE jsonb_typeof(template)
		WHEN 'object' THEN (SELECT coalesce(jsonb_object_agg(key, taskorch.fill_template(value, prev, input)), '{}')
							  FROM jsonb_each(template))
		WHEN 'array' THEN (SELECT coalesce(jsonb_agg(taskorch.fill_template(value, prev, input) ORDER BY n), '[]')
							 FROM jsonb_array_elements(template) WITH ORDINALITY AS e(value, n))
		WHEN 'string' THEN CASE WHEN template #>> '{}' ~ '^\$\.(prev|input)\M'
								THEN jsonb_path_query_first(jsonb_build_object('prev', prev, 'input', input),
															(template #>> '{}')::jsonpath)
								ELSE template END
		ELSE template END $$;

-- Check and normalise the steps (or members) of a definition: each has a
-- task that exists, a unique name (default: the task), and at most one of
-- input_mapper (a function (prev jsonb, input jsonb) -> jsonb the caller may
-- execute, kept as its signature) and input (a template).
CREATE FUNCTION taskorch._check_steps(what text, steps jsonb) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	AS $$
DECLARE
	step jsonb;
	i int := 0;
	names text[] := '{}';
	name text;
	mapper regprocedure;
	out jsonb := '[]';
BEGIN
	IF jsonb_typeof(steps) IS DISTINCT FROM 'array' OR jsonb_array_length(steps) = 0 THEN
		RAISE EXCEPTION '% must be a non-empty JSON array', what
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass [{"task": "first-task"}, {"task": "second-task", "input_mapper": "map_step(jsonb,jsonb)"}].';
	END IF;
	FOR step IN SELECT value FROM jsonb_array_elements(steps) LOOP
		IF jsonb_typeof(step) <> 'object' OR jsonb_typeof(step->'task') IS DISTINCT FROM 'string' THEN
			RAISE EXCEPTION '% item % must be an object with a "task"', what, i
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'An item is {"task": ..., "name": ..., "input_mapper": ... or "input": ...}.';
		END IF;
		IF EXISTS (SELECT FROM jsonb_object_keys(step) k
					WHERE k NOT IN ('task', 'name', 'input_mapper', 'input')) THEN
			RAISE EXCEPTION '% item % has an unknown key: %', what, i,
				(SELECT string_agg(k, ', ') FROM jsonb_object_keys(step) k
				  WHERE k NOT IN ('task', 'name', 'input_mapper', 'input'))
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Keys are task, name, input_mapper and input.';
		END IF;
		IF NOT EXISTS (SELECT FROM taskorch.task t WHERE t.id = step->>'task') THEN
			RAISE EXCEPTION '% item %: task "%" is not registered', what, i, step->>'task'
				USING ERRCODE = 'undefined_object',
					  HINT = 'Register the task first; taskorch.tasks lists the tasks.';
		END IF;
		name := coalesce(step->>'name', step->>'task');
		IF name = ANY (names) THEN
			RAISE EXCEPTION '% item %: name "%" is used twice', what, i, name
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Give the items that run the same task distinct "name"s.';
		END IF;
		names := names || name;
		IF step ? 'input_mapper' AND step ? 'input' THEN
			RAISE EXCEPTION '% item % has both input_mapper and input', what, i
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Map the input with a function or with a template, not both.';
		END IF;
		step := jsonb_build_object('name', name, 'task', step->'task')
				|| CASE WHEN step ? 'input' THEN jsonb_build_object('input', step->'input') ELSE '{}' END;
		IF steps->i ? 'input_mapper' THEN
			BEGIN
				mapper := (steps->i->>'input_mapper')::regprocedure;
			EXCEPTION WHEN undefined_function OR invalid_text_representation OR undefined_object
					   OR invalid_schema_name THEN
				RAISE EXCEPTION '% item %: input_mapper "%" is not a function', what, i,
					steps->i->>'input_mapper'
					USING ERRCODE = 'undefined_function',
						  HINT = 'Name it by signature, as "map_step(jsonb,jsonb)": a function (prev_output jsonb, original_input jsonb) returning jsonb.';
			END;
			IF (SELECT p.prorettype <> 'jsonb'::regtype OR p.pronargs <> 2
					   OR p.proargtypes[0] <> 'jsonb'::regtype OR p.proargtypes[1] <> 'jsonb'::regtype
				  FROM pg_proc p WHERE p.oid = mapper) THEN
				RAISE EXCEPTION '% item %: input_mapper % must take (jsonb, jsonb) and return jsonb', what, i, mapper
					USING ERRCODE = 'invalid_function_definition',
						  HINT = 'Define it as CREATE FUNCTION map_step(prev jsonb, input jsonb) RETURNS jsonb.';
			END IF;
			IF NOT has_function_privilege(mapper, 'EXECUTE') THEN
				RAISE EXCEPTION 'permission denied for input_mapper %', mapper
					USING ERRCODE = 'insufficient_privilege',
						  HINT = 'The track runs as you: you must be allowed to execute its mappers.';
			END IF;
			-- kept schema-qualified: the runner resolves it under its own search_path
			step := step || jsonb_build_object('input_mapper',
				(SELECT format('%I.%I(%s)', n.nspname, p.proname, oidvectortypes(p.proargtypes))
				   FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.oid = mapper));
		END IF;
		out := out || jsonb_build_array(step);
		i := i + 1;
	END LOOP;
	RETURN out;
END
$$;

-- The input of a step: mapped from the previous output and the original
-- input, and carrying trampData unless the mapping set it.
CREATE FUNCTION taskorch._step_input(step jsonb, prev jsonb, input jsonb, tramp jsonb, first bool)
	RETURNS jsonb
	LANGUAGE plpgsql
	AS $$
DECLARE
	result jsonb;
	mapper regprocedure := (step->>'input_mapper')::regprocedure;
BEGIN
	IF mapper IS NOT NULL THEN
		EXECUTE format('SELECT %s($1, $2)', (SELECT format('%I.%I', n.nspname, p.proname)
											   FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
											  WHERE p.oid = mapper))
			INTO result USING prev, input;
	ELSIF step ? 'input' THEN
		result := taskorch.fill_template(step->'input', prev, input);
	ELSIF first THEN
		result := input;
	ELSE
		result := prev;
	END IF;
	result := coalesce(result, '{}');
	IF tramp IS NOT NULL AND jsonb_typeof(result) = 'object' AND NOT result ? 'trampData' THEN
		result := result || jsonb_build_object('trampData', tramp);
	END IF;
	RETURN result;
END
$$;

-- Why a step could not be triggered with `input` (NULL: it can): its task
-- is not one the track's owner may trigger, or the input fails its schema.
CREATE FUNCTION taskorch._step_refusal(task text, input jsonb) RETURNS text
	LANGUAGE plpgsql STABLE
	AS $$
DECLARE
	schema jsonb;
	failures text[];
BEGIN
	SELECT t.payload_schema INTO schema FROM taskorch.task t WHERE t.id = task;
	IF NOT FOUND THEN
		RETURN format('task "%s" is not registered (or may not be triggered by this track''s owner)', task);
	END IF;
	IF schema IS NULL THEN
		RETURN NULL;
	END IF;
	failures := taskorch.validate(input, schema);
	IF cardinality(failures) = 0 THEN
		RETURN NULL;
	END IF;
	RETURN format('payload of task "%s" does not match its schema: %s', task, failures[1]);
END
$$;

-- A child's Result, unwrapped the same way everywhere: an FP Result
-- {success, data, error, meta} gives its data; a track's envelope counts
-- as failed when its job did.  Returns {ok, output | error}.
CREATE FUNCTION taskorch._unwrap(result jsonb) RETURNS jsonb
	LANGUAGE sql IMMUTABLE
	AS $$
	SELECT CASE
		WHEN NOT (result->>'ok')::bool THEN jsonb_build_object('ok', false, 'error', result->'error')
		WHEN jsonb_typeof(result->'output'->'success') = 'boolean'
			 AND (result->'output' ? 'data' OR result->'output' ? 'error')
			THEN CASE WHEN (result->'output'->>'success')::bool
					  THEN jsonb_build_object('ok', true, 'output', result->'output'->'data')
					  ELSE jsonb_build_object('ok', false, 'error', result->'output'->'error') END
		WHEN jsonb_typeof(result->'output'->'job'->'success') = 'boolean'
			 AND NOT (result->'output'->'job'->>'success')::bool
			THEN jsonb_build_object('ok', false, 'error', result->'output'->'job'->'error',
									'output', result->'output')
		ELSE jsonb_build_object('ok', true, 'output', result->'output') END $$;

-- The definition of the composite the current run runs, its input checked
-- for the base fields if it declares them (a failure is not retried).
CREATE FUNCTION taskorch._definition(kind text, input jsonb) RETURNS taskorch.composite
	LANGUAGE plpgsql
	AS $$
DECLARE
	me text := taskorch.current_run()->>'taskIdentifier';
	def taskorch.composite;
	failures text[];
BEGIN
	IF me IS NULL THEN
		RAISE EXCEPTION 'taskorch.run_%() runs the run of a %, inside a task', kind, kind
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = format('Trigger the %s with taskorch.trigger(<its name>, <input>).', kind);
	END IF;
	SELECT * INTO def FROM taskorch.composite c WHERE c.name = me AND c.kind = _definition.kind;
	IF NOT FOUND THEN
		PERFORM taskorch.abort(format('"%s" is not a defined %s', me, kind),
							   format('Define it with taskorch.define_%s().', kind));
	END IF;
	IF def.base_fields THEN
		failures := taskorch.validate(input, '{
			"type": "object", "required": ["tenantId", "projectId"],
			"properties": {"tenantId": {"type": "string", "minLength": 1},
						   "projectId": {"type": "string", "minLength": 1},
						   "userId": {"type": "string"},
						   "trampData": {"type": "object"}}}');
		IF cardinality(failures) > 0 THEN
			PERFORM taskorch.abort('the input lacks its base fields: ' || array_to_string(failures, '; '),
								   'A track declaring base fields needs tenantId and projectId (strings), and optionally userId.');
		END IF;
	END IF;
	RETURN def;
END
$$;

-- The runner of every track: its steps in order, each a child run it waits
-- for.  The track's output is the envelope {job, results, metadata,
-- trampData}; a failed step stops it (FAILED, the envelope in its error)
-- unless it continues on failure, when it fails only if every step did.
CREATE FUNCTION taskorch.run_track(payload jsonb) RETURNS jsonb
	LANGUAGE plpgsql
	AS $$
DECLARE
	me jsonb := taskorch.current_run();
	def taskorch.composite;
	step jsonb;
	n int := 0;
	prev jsonb;
	tramp jsonb := payload->'trampData';
	results jsonb := '{}';
	errors jsonb := '[]';
	r jsonb;
	res jsonb;
	input jsonb;
	refusal text;
	envelope jsonb;
BEGIN
	def := taskorch._definition('track', payload);
	FOR step IN SELECT value FROM jsonb_array_elements(def.steps) LOOP
		IF taskorch._next_wait_done() THEN
			-- an earlier execution ran this step: the wait returns its result
			r := taskorch.trigger_and_wait(step->>'task', '{}');
		ELSE
			input := taskorch._step_input(step, prev, payload, tramp, n = 0);
			refusal := taskorch._step_refusal(step->>'task', input);
			IF refusal IS NULL THEN
				PERFORM taskorch.log('info', format('step %s (%s) started', step->>'name', step->>'task'),
									 jsonb_build_object('step', step->>'name', 'index', n));
				r := taskorch.trigger_and_wait(step->>'task', input);
			ELSE
				-- the step cannot run: it fails, and a wait that is already over
				-- keeps its place among the run's waits
				PERFORM taskorch.wait_until('-infinity');
				r := jsonb_build_object('ok', false, 'taskIdentifier', step->>'task',
										'error', jsonb_build_object('message', refusal));
			END IF;
		END IF;
		res := taskorch._unwrap(r);
		IF (res->>'ok')::bool THEN
			prev := res->'output';
			results := results || jsonb_build_object(step->>'name', prev);
			IF jsonb_typeof(prev->'trampData') = 'object' THEN
				tramp := prev->'trampData';
			END IF;
		ELSE
			errors := errors || jsonb_build_array(jsonb_build_object(
				'step', step->>'name', 'task', step->>'task', 'runId', r->'id', 'error', res->'error'));
		END IF;
		IF NOT taskorch._replaying() THEN
			PERFORM taskorch.log(CASE WHEN (res->>'ok')::bool THEN 'info' ELSE 'error' END,
								 format('step %s (%s) %s', step->>'name', step->>'task',
										CASE WHEN (res->>'ok')::bool THEN 'completed' ELSE 'failed' END),
								 jsonb_build_object('step', step->>'name', 'index', n, 'runId', r->'id'));
		END IF;
		n := n + 1;
		EXIT WHEN NOT (res->>'ok')::bool AND NOT def.continue_on_failure;
	END LOOP;
	envelope := jsonb_build_object(
		'job', jsonb_build_object('success', jsonb_array_length(errors) = 0, 'taskName', def.name,
								  'runId', me->'id', 'input', payload)
			   || CASE WHEN jsonb_array_length(errors) > 0
					   THEN jsonb_build_object('error', errors->0->'error'->>'message') ELSE '{}' END,
		'results', results,
		'metadata', jsonb_build_object('steps', jsonb_array_length(def.steps),
									   'completed', (SELECT count(*) FROM jsonb_object_keys(results)),
									   'failed', jsonb_array_length(errors), 'errors', errors),
		'trampData', tramp);
	IF jsonb_array_length(errors) > 0 AND
	   (NOT def.continue_on_failure OR results = '{}') THEN
		RETURN jsonb_build_object('success', false, 'data', envelope,
			'error', format('step %s (%s) failed: %s', errors->0->>'step', errors->0->>'task',
							errors->0->'error'->>'message'));
	END IF;
	RETURN envelope;
END
$$;
GRANT EXECUTE ON FUNCTION taskorch.run_track(jsonb) TO PUBLIC;

-- The runner of every orchestrator: its members in parallel (one batch
-- wait), or for a traverse orchestrator the rows of a query, a page at a
-- time.  The output is {success, processed, failed, results, errors}.
CREATE FUNCTION taskorch.run_orchestrator(payload jsonb) RETURNS jsonb
	LANGUAGE plpgsql
	AS $$
DECLARE
	def taskorch.composite;
	runs jsonb;
	results jsonb := '{}';
	errors jsonb := '[]';
	r record;
	res jsonb;
	page jsonb;
	processed bigint := 0;
	failed bigint := 0;
	pages int := 0;
	out jsonb;
BEGIN
	def := taskorch._definition('orchestrator', payload);
	IF def.steps->0 ? 'query' THEN
		LOOP
			page := taskorch.traverse(def.steps->0->>'query', def.steps->0->>'task',
									  (def.steps->0->>'page_size')::int, pages);
			processed := processed + (page->>'processed')::int;
			failed := failed + (page->>'failed')::int;
			errors := errors || (page->'errors');
			pages := pages + 1;
			EXIT WHEN NOT (page->>'has_more')::bool;
		END LOOP;
		out := jsonb_build_object('success', failed = 0, 'processed', processed, 'failed', failed,
								  'pages', pages, 'results', '{}'::jsonb, 'errors', errors);
	ELSE
		runs := taskorch.batch_trigger_and_wait(
			(SELECT jsonb_agg(jsonb_build_object('task', m->>'task',
						'payload', taskorch._step_input(m, NULL, payload, payload->'trampData', true))
					 ORDER BY n)
			   FROM jsonb_array_elements(def.steps) WITH ORDINALITY AS e(m, n)))->'runs';
		FOR r IN SELECT m, runs->(n::int - 1) AS result
				   FROM jsonb_array_elements(def.steps) WITH ORDINALITY AS e(m, n) ORDER BY n LOOP
			res := taskorch._unwrap(r.result);
			IF (res->>'ok')::bool THEN
				processed := processed + 1;
				results := results || jsonb_build_object(r.m->>'name', res->'output');
			ELSE
				failed := failed + 1;
				errors := errors || jsonb_build_array(jsonb_build_object(
					'member', r.m->>'name', 'task', r.m->>'task', 'runId', r.result->'id',
					'error', res->'error'));
			END IF;
		END LOOP;
		out := jsonb_build_object('success', failed = 0, 'processed', processed, 'failed', failed,
								  'results', results, 'errors', errors);
	END IF;
	IF processed = 0 AND failed > 0 THEN
		RETURN jsonb_build_object('success', false, 'data', out,
								  'error', format('all %s failed', failed));
	END IF;
	RETURN out;
END
$$;
GRANT EXECUTE ON FUNCTION taskorch.run_orchestrator(jsonb) TO PUBLIC;

-- Inside a task, the traverse pattern: run `task` over page `page` (from
-- 0) of the rows of `query` (page_size rows; give the query an ORDER BY),
-- each row's payload column a child; successes and failures apart.
CREATE FUNCTION taskorch.traverse(query text, task text, page_size int DEFAULT 100, page int DEFAULT 0)
	RETURNS jsonb
	LANGUAGE plpgsql
	AS $$
DECLARE
	runs jsonb;
	successes jsonb;
	failures jsonb;
BEGIN
	IF page_size IS NULL OR page_size < 1 OR page_size > 100000 THEN
		RAISE EXCEPTION 'page_size must be between 1 and 100000, not %', page_size
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass the number of rows to process per page, such as 100.';
	END IF;
	IF page IS NULL OR page < 0 THEN
		RAISE EXCEPTION 'page must be 0 or more, not %', page
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Pages count from 0.';
	END IF;
	runs := taskorch.batch_trigger_and_wait_query(
		format('SELECT * FROM (%s) AS rows LIMIT %s OFFSET %s', query, page_size,
			   page::bigint * page_size), task)->'runs';
	-- successes {runId, output}; failures {runId, item (the row's payload), error}
	SELECT coalesce(jsonb_agg(jsonb_build_object('runId', r->'id', 'output', u->'output') ORDER BY n)
						FILTER (WHERE (u->>'ok')::bool), '[]'),
		   coalesce(jsonb_agg(jsonb_build_object('runId', r->'id', 'error', u->'error', 'item',
									(SELECT c.payload FROM taskorch.run c WHERE c.id = r->>'id')) ORDER BY n)
						FILTER (WHERE NOT (u->>'ok')::bool), '[]')
	  INTO successes, failures
	  FROM jsonb_array_elements(runs) WITH ORDINALITY AS e(r, n), taskorch._unwrap(r) AS u;
	RETURN jsonb_build_object(
		'success', jsonb_array_length(failures) = 0,
		'processed', jsonb_array_length(successes),
		'failed', jsonb_array_length(failures),
		'has_more', jsonb_array_length(runs) = page_size,
		'successes', successes,
		'errors', failures);
END
$$;

-- Errors unless the query's rows can be the items of a batch of task.
CREATE FUNCTION taskorch.check_items_query(query text, task text DEFAULT NULL) RETURNS void
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_check_items_query';

-- Register (or redefine) a composite's task and definition.
CREATE FUNCTION taskorch._define_composite(kind text, name text, steps jsonb,
										   continue_on_failure bool, base_fields bool,
										   queue text, payload_schema jsonb, output_schema jsonb,
										   on_success text, on_failure text, description text)
	RETURNS text
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	fn regprocedure := CASE kind WHEN 'track' THEN 'taskorch.run_track(jsonb)'
								 ELSE 'taskorch.run_orchestrator(jsonb)' END;
	existing regprocedure;
	cycle text[];
BEGIN
	-- a composite that reaches itself through its steps would run forever
	WITH RECURSIVE reach(task, path) AS (
		SELECT s->>'task', ARRAY[name, s->>'task'] FROM jsonb_array_elements(steps) s
		UNION ALL
		SELECT s->>'task', r.path || (s->>'task')
		  FROM reach r JOIN taskorch.composite c ON c.name = r.task
			   CROSS JOIN jsonb_array_elements(c.steps) s
		 WHERE r.task <> _define_composite.name AND cardinality(r.path) < 64
	)
	SELECT path INTO cycle FROM reach WHERE task = _define_composite.name LIMIT 1;
	IF cycle IS NOT NULL THEN
		RAISE EXCEPTION '% "%" would run itself: %', kind, name, array_to_string(cycle, ' -> ')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'A track or orchestrator runs other tasks; none of them may lead back to it.';
	END IF;
	SELECT t.fn INTO existing FROM taskorch.task t WHERE t.id = name;
	IF FOUND AND existing <> fn THEN
		RAISE EXCEPTION 'task "%" exists and is not a %', name, replace(kind, '_', ' ')
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Pick another name, or unregister the task first.';
	END IF;
	PERFORM taskorch.register_task(name, fn, queue => queue, max_attempts => 1,
								   description => description, payload_schema => payload_schema,
								   output_schema => output_schema, on_success => on_success,
								   on_failure => on_failure);
	PERFORM taskorch._write_composite(name, kind, steps, continue_on_failure, base_fields);
	RETURN name;
END
$$;

-- The definition's row; the table's policies let only the task's owner write it.
CREATE FUNCTION taskorch._write_composite(name text, kind text, steps jsonb,
										  continue_on_failure bool, base_fields bool)
	RETURNS void
	LANGUAGE sql
	SET search_path = pg_catalog, pg_temp
	AS $$
	INSERT INTO taskorch.composite AS c VALUES (name, kind, steps, continue_on_failure, base_fields)
	ON CONFLICT ON CONSTRAINT composite_pkey DO UPDATE
	   SET kind = EXCLUDED.kind, steps = EXCLUDED.steps,
		   continue_on_failure = EXCLUDED.continue_on_failure, base_fields = EXCLUDED.base_fields $$;

CREATE FUNCTION taskorch.define_track(name text, steps jsonb,
									  continue_on_failure bool DEFAULT false,
									  base_fields bool DEFAULT false,
									  queue text DEFAULT NULL,
									  payload_schema jsonb DEFAULT NULL,
									  output_schema jsonb DEFAULT NULL,
									  on_success text DEFAULT NULL,
									  on_failure text DEFAULT NULL,
									  description text DEFAULT NULL)
	RETURNS text
	LANGUAGE plpgsql
	AS $$
BEGIN
	RETURN taskorch._define_composite('track', name, taskorch._check_steps('steps', steps),
		coalesce(continue_on_failure, false), coalesce(base_fields, false), queue,
		payload_schema, output_schema, on_success, on_failure, description);
END
$$;

CREATE FUNCTION taskorch.define_orchestrator(name text, members jsonb DEFAULT NULL,
											 traverse jsonb DEFAULT NULL,
											 base_fields bool DEFAULT false,
											 queue text DEFAULT NULL,
											 payload_schema jsonb DEFAULT NULL,
											 output_schema jsonb DEFAULT NULL,
											 on_success text DEFAULT NULL,
											 on_failure text DEFAULT NULL,
											 description text DEFAULT NULL)
	RETURNS text
	LANGUAGE plpgsql
	AS $$
DECLARE
	steps jsonb;
BEGIN
	IF (members IS NULL) = (traverse IS NULL) THEN
		RAISE EXCEPTION 'an orchestrator has members or traverse, one of the two'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'members => ''[{"task": "AUDIO_TRACK"}, {"task": "VIDEO_TRACK"}]'', or traverse => ''{"query": ..., "task": ..., "page_size": 100}''.';
	END IF;
	IF members IS NOT NULL THEN
		steps := taskorch._check_steps('members', members);
	ELSE
		IF jsonb_typeof(traverse) <> 'object' OR jsonb_typeof(traverse->'query') IS DISTINCT FROM 'string'
		   OR jsonb_typeof(traverse->'task') IS DISTINCT FROM 'string'
		   OR EXISTS (SELECT FROM jsonb_object_keys(traverse) k WHERE k NOT IN ('query', 'task', 'page_size', 'name')) THEN
			RAISE EXCEPTION 'traverse must be {"query": ..., "task": ..., "page_size": ...}, not %', traverse
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'The query''s rows (a payload column, in a fixed ORDER BY) are run by the task, page_size at a time.';
		END IF;
		IF jsonb_typeof(traverse->'page_size') IS DISTINCT FROM 'number' AND traverse ? 'page_size'
		   OR coalesce((traverse->>'page_size')::numeric, 100) NOT BETWEEN 1 AND 100000 THEN
			RAISE EXCEPTION 'traverse page_size must be a number from 1 to 100000, not %', traverse->'page_size'
				USING ERRCODE = 'invalid_parameter_value', HINT = 'Such as 100.';
		END IF;
		PERFORM taskorch.check_items_query(traverse->>'query', traverse->>'task');
		steps := jsonb_build_array(jsonb_build_object(
			'name', coalesce(traverse->>'name', traverse->>'task'), 'task', traverse->'task',
			'query', traverse->'query', 'page_size', coalesce((traverse->>'page_size')::int, 100)));
	END IF;
	RETURN taskorch._define_composite('orchestrator', name, steps, false,
		coalesce(base_fields, false), queue, payload_schema, output_schema, on_success,
		on_failure, description);
END
$$;

-- Jobs: every track and orchestrator run, its status derived from the runs
-- (seed 004's job record: Started, Processing, Partial, Complete, Error).
CREATE VIEW taskorch.jobs WITH (security_invoker = true) AS
SELECT j.id, j.task_id AS name, d.kind,
	   CASE WHEN j.status = 'COMPLETED'
			THEN CASE WHEN coalesce((j.output->'metadata'->>'failed')::int, (j.output->>'failed')::int, 0) > 0
					  THEN 'Partial' ELSE 'Complete' END
			WHEN taskorch.finished(j.status) THEN 'Error'
			WHEN EXISTS (SELECT FROM taskorch.run c WHERE c.parent_run_id = j.id) THEN 'Processing'
			ELSE 'Started' END AS status,
	   j.status AS run_status, j.created_at, j.started_at AS started, j.finished_at AS ended,
	   greatest(j.updated_at, (SELECT max(c.updated_at) FROM taskorch.run c WHERE c.parent_run_id = j.id))
		   AS lastupdated,
	   j.error
  FROM taskorch.runs j JOIN taskorch.composite d ON d.name = j.task_id;
GRANT SELECT ON taskorch.jobs TO PUBLIC;

-- The steps of every job: a track's steps and an orchestrator's members
-- (each with the child run that ran it, once there is one), or the pages
-- of a traverse orchestrator.  done: the step has ended (however).
CREATE VIEW taskorch.job_steps WITH (security_invoker = true) AS
SELECT j.id AS job_id, s.n::int - 1 AS position, s.step->>'name' AS step, s.step->>'task' AS task_id,
	   c.id AS run_id, c.status, c.started_at AS started, c.finished_at AS ended,
	   coalesce(taskorch.finished(c.status), false) AS done
  FROM taskorch.run j
  JOIN taskorch.composite d ON d.name = j.task_id AND NOT d.steps->0 ? 'query'
  CROSS JOIN LATERAL jsonb_array_elements(d.steps) WITH ORDINALITY AS s(step, n)
  LEFT JOIN LATERAL (
	SELECT ch.id, ch.status, ch.started_at, ch.finished_at FROM taskorch.run ch
	 WHERE ch.parent_run_id = j.id
	   AND CASE WHEN d.kind = 'track' THEN ch.parent_wait_seq = s.n - 1
				ELSE ch.id = (SELECT w.children[s.n] FROM taskorch.waitpoint w
							   WHERE w.run_id = j.id AND w.seq = 0) END) c ON true
UNION ALL
SELECT j.id, w.seq, 'page_' || w.seq, d.steps->0->>'task', NULL,
	   CASE WHEN w.completed_at IS NULL THEN 'WAITING' ELSE 'COMPLETED' END::taskorch.run_status,
	   w.created_at, w.completed_at, w.completed_at IS NOT NULL
  FROM taskorch.run j
  JOIN taskorch.composite d ON d.name = j.task_id AND d.steps->0 ? 'query'
  JOIN taskorch.waitpoint w ON w.run_id = j.id;
GRANT SELECT ON taskorch.job_steps TO PUBLIC;

-- A job as seed 004's record: {status, started, ended, lastupdated, and per
-- step {step}: done, {step}_started, {step}_ended}.
CREATE FUNCTION taskorch.job(run text) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	result jsonb;
BEGIN
	SELECT jsonb_build_object('status', j.status, 'started', j.started, 'ended', j.ended,
							  'lastupdated', j.lastupdated)
		   || coalesce((SELECT jsonb_object_agg(k, v)
						  FROM taskorch.job_steps s,
							   LATERAL (VALUES (s.step, to_jsonb(s.done)),
											   (s.step || '_started', to_jsonb(s.started)),
											   (s.step || '_ended', to_jsonb(s.ended))) AS x(k, v)
						 WHERE s.job_id = j.id), '{}')
	  INTO result
	  FROM taskorch.jobs j WHERE j.id = job.run;
	IF result IS NULL THEN
		RAISE EXCEPTION 'job "%" does not exist', run
			USING ERRCODE = 'undefined_object',
				  HINT = 'A job is a run of a track or an orchestrator you can see; taskorch.jobs lists them.';
	END IF;
	RETURN result;
END
$$;

-- Task ids belong to the role that first registered them and stay with it
-- after unregister_task(): a run, hook or track step that names a task
-- never reaches another role's function (registry.c).
CREATE TABLE taskorch.task_name (
	id				text PRIMARY KEY,
	owner			taskorch.role_ref NOT NULL
);
SELECT pg_catalog.pg_extension_config_dump('taskorch.task_name', '');
REVOKE ALL ON taskorch.task_name FROM PUBLIC;
INSERT INTO taskorch.task_name SELECT id, owner FROM taskorch.task;

------------------------------------------------------------------------------
-- Missing roles: the roles that rows name but that do not exist (after a
-- restore into a cluster without them, or a role dropped while it owned
-- tasks), and how many rows of each column name them.  Creating a role of
-- that name makes restored rows whole (docs/operations.md, "Backups and
-- restore"); a dropped role's rows stay missing.
------------------------------------------------------------------------------
CREATE VIEW taskorch.missing_roles WITH (security_invoker = true) AS
SELECT m.role::text AS role, m.in_column, count(*) AS rows
  FROM (SELECT owner, 'task.owner' FROM taskorch.task
		UNION ALL
		SELECT g, 'task.triggerers' FROM taskorch.task, pg_catalog.unnest(triggerers) AS g
		UNION ALL
		SELECT owner, 'run.owner' FROM taskorch.run
		UNION ALL
		SELECT triggered_by, 'run.triggered_by' FROM taskorch.run
		UNION ALL
		SELECT triggered_by, 'batch.triggered_by' FROM taskorch.batch
		UNION ALL
		SELECT owner, 'queue.owner' FROM taskorch.queue
		UNION ALL
		SELECT owner, 'schema.owner' FROM taskorch.schema
		UNION ALL
		SELECT g, 'queue.users' FROM taskorch.queue, pg_catalog.unnest(users) AS g
		UNION ALL
		SELECT owner, 'wait_token.owner' FROM taskorch.wait_token) AS m(role, in_column)
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.oid = m.role::oid)
 GROUP BY 1, 2
 ORDER BY 1, 2;
GRANT SELECT ON taskorch.missing_roles TO PUBLIC;

-- have the launcher start this database's workers for the new version
SELECT taskorch._wake_launcher();
