-- taskorch 0.1 -> 0.2, schema changes: trigger options (delay, ttl,
-- idempotency keys, priority, tags, metadata, per-run limits), DELAYED and
-- EXPIRED runs, batches, run logs, queues with concurrency limits, debounce,
-- durable waits (a time, child runs, tokens), JSON Schemas, hooks, tracks
-- and orchestrators, task ids owned by their first registrant, role
-- columns that keep the role's name (a dump restores into a cluster that
-- lacks some role).
--
-- A modfile (sql/parts/README.md): the Makefile builds
-- taskorch--0.1--0.2.sql from it followed by every code part, so it holds
-- only what CREATE OR REPLACE cannot do: new types, tables, columns,
-- indexes and policies, column type changes, the data they need, and
-- DROP of the functions and views whose signature or columns changed (the
-- code parts make them again).

\echo Use "ALTER EXTENSION taskorch UPDATE TO '0.2'" to load this file. \quit

-- taskorch_internal: what the API's functions and views use and users do
-- not call (type support, status constants, the steps of tracks), kept out
-- of \df taskorch.*.  Its functions are executable as the API needs them
-- (views run them as their invoker); nothing in it is an interface.
CREATE SCHEMA taskorch_internal;
GRANT USAGE ON SCHEMA taskorch_internal TO PUBLIC;
ALTER FUNCTION taskorch._require_preload() SET SCHEMA taskorch_internal;
ALTER FUNCTION taskorch_internal._require_preload() RENAME TO require_preload;
DROP FUNCTION taskorch._wake_launcher();

------------------------------------------------------------------------------
-- Role references (role_ref.c): every column that names a role keeps its
-- OID and its name.  pg_dump writes the name; a restore into a cluster
-- without that role keeps the row, which names no role (its runs do not
-- execute) until a role of that name is created.  A number is never taken
-- for an OID.  Cast to oid, a role_ref is the role it names: its OID, or
-- (restored before its role existed) the role of its name, 0: none.
------------------------------------------------------------------------------
CREATE TYPE taskorch.role_ref;
CREATE FUNCTION taskorch_internal.role_ref_in(cstring) RETURNS taskorch.role_ref
	LANGUAGE c STRICT STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_role_ref_in';
CREATE FUNCTION taskorch_internal.role_ref_out(taskorch.role_ref) RETURNS cstring
	LANGUAGE c STRICT STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_role_ref_out';
CREATE FUNCTION taskorch_internal.role_ref_recv(internal) RETURNS taskorch.role_ref
	LANGUAGE c STRICT STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_role_ref_recv';
CREATE FUNCTION taskorch_internal.role_ref_send(taskorch.role_ref) RETURNS bytea
	LANGUAGE c STRICT STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_role_ref_send';
CREATE TYPE taskorch.role_ref (
	INPUT = taskorch_internal.role_ref_in, OUTPUT = taskorch_internal.role_ref_out,
	RECEIVE = taskorch_internal.role_ref_recv, SEND = taskorch_internal.role_ref_send,
	INTERNALLENGTH = VARIABLE, STORAGE = main);
CREATE FUNCTION taskorch_internal.role_ref_oid(taskorch.role_ref) RETURNS oid
	LANGUAGE c STRICT STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_role_ref_oid';
CREATE FUNCTION taskorch_internal.role_ref(oid) RETURNS taskorch.role_ref
	LANGUAGE c STRICT STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_role_ref_from_oid';
-- implicit: pg_has_role(owner, 'USAGE') and owner::oid read the role
CREATE CAST (taskorch.role_ref AS oid) WITH FUNCTION taskorch_internal.role_ref_oid(taskorch.role_ref)
	AS IMPLICIT;
CREATE CAST (oid AS taskorch.role_ref) WITH FUNCTION taskorch_internal.role_ref(oid) AS ASSIGNMENT;
CREATE CAST (regrole AS taskorch.role_ref) WITH FUNCTION taskorch_internal.role_ref(oid) AS ASSIGNMENT;

-- The role columns of 0.1 become role_refs.  A regrole whose role was
-- dropped has no name left: an owner becomes the unknown role "" (its runs
-- never execute), a triggerer (who was granted nothing any more) is left
-- out.  The policies that read the columns are made again, the views by
-- the code parts.
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
DROP VIEW taskorch.attempts;		-- the whole error comes last
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

-- new columns: JSON Schemas and hooks of tasks
ALTER TABLE taskorch.task
	ADD COLUMN payload_schema	jsonb,
	ADD COLUMN output_schema	jsonb,
	ADD COLUMN on_success		text,
	ADD COLUMN on_failure		text,
	ADD COLUMN on_start		text,
	ADD COLUMN retention		interval;

-- new columns of runs: the trigger options, batches, debounce, waits
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
	ADD COLUMN parent_wait_seq	int,
	ADD COLUMN root_run_id		text;

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
CREATE INDEX run_waiting_idx ON taskorch.run (task_id) WHERE status = 'WAITING';

-- changed signatures (made again by the code parts)
DROP FUNCTION taskorch.register_task(text, regprocedure, text, int, jsonb, interval, text);
DROP FUNCTION taskorch.trigger(text, jsonb);
-- executing runs now show the metadata their task changed
DROP FUNCTION taskorch.executing_runs();
DROP FUNCTION taskorch.workers();		-- its database is a name now

------------------------------------------------------------------------------
-- New tables
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

CREATE SEQUENCE taskorch.batch_id_seq;
CREATE TABLE taskorch.batch (
	id				text COLLATE "C" PRIMARY KEY
					DEFAULT 'batch_' || nextval('taskorch.batch_id_seq'),
	task_id			text,						-- NULL: items name their tasks
	item_count		int NOT NULL,
	triggered_by	taskorch.role_ref NOT NULL,
	options			jsonb,
	created_at		timestamptz NOT NULL DEFAULT now(),
	idempotency_key	text,						-- the batch's own: a second call returns this batch
	idempotency_key_expires_at timestamptz
);
CREATE INDEX batch_idempotency_key ON taskorch.batch (idempotency_key) WHERE idempotency_key IS NOT NULL;
-- retention removes batches by age (retention.c): no scan of the table
CREATE INDEX batch_created_idx ON taskorch.batch (created_at);
ALTER SEQUENCE taskorch.batch_id_seq OWNED BY taskorch.batch.id;
SELECT pg_catalog.pg_extension_config_dump('taskorch.batch', '');
SELECT pg_catalog.pg_extension_config_dump('taskorch.batch_id_seq', '');
ALTER TABLE taskorch.batch ENABLE ROW LEVEL SECURITY;
CREATE POLICY batch_visible ON taskorch.batch FOR SELECT USING (
	pg_catalog.pg_has_role(triggered_by, 'USAGE') OR taskorch.is_admin());
REVOKE ALL ON taskorch.batch FROM PUBLIC;
GRANT SELECT ON taskorch.batch TO PUBLIC;

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

CREATE TABLE taskorch.waitpoint (
	run_id			text COLLATE "C" NOT NULL REFERENCES taskorch.run ON DELETE CASCADE,
	seq				int NOT NULL,				-- the wait call's order in the execution
	kind			text NOT NULL,				-- 'time', 'run'/'batch' (children), 'token'
	resume_at		timestamptz,
	children		text[],						-- the runs waited for, in call order
	token			text,						-- the wait token waited for
	target			text,						-- what the call waited for (its task and payload...)
	key				text,						-- a checkpoint's key: the track step it runs
	state			jsonb,						-- what the run carries past it (a track's steps so far)
	created_at		timestamptz NOT NULL,
	completed_at	timestamptz,				-- NULL: still waiting
	result			jsonb,
	PRIMARY KEY (run_id, seq)
);
CREATE INDEX waitpoint_time_idx ON taskorch.waitpoint (resume_at)
	WHERE completed_at IS NULL AND kind = 'time';
-- the pending waits on tokens, which each maintenance pass looks over: never
-- a scan of every wait made (those on children it finds from the WAITING
-- runs: a small partial index on them was what the batches' statements,
-- which look waits up by key, planned a scan of whole for each batch)
CREATE INDEX waitpoint_token_idx ON taskorch.waitpoint (token)
	WHERE completed_at IS NULL AND kind = 'token';
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
-- retention removes finished tokens by age (retention.c): no scan of the
-- table, nor of the tokens still awaited (completed_at is in the predicate of
-- wait_token_timeout_idx already: a completion was never a HOT update)
CREATE INDEX wait_token_finished_idx ON taskorch.wait_token (created_at)
	WHERE completed_at IS NOT NULL OR timed_out;
SELECT pg_catalog.pg_extension_config_dump('taskorch.wait_token', '');
SELECT pg_catalog.pg_extension_config_dump('taskorch.wait_token_id_seq', '');
ALTER TABLE taskorch.wait_token ENABLE ROW LEVEL SECURITY;
CREATE POLICY wait_token_visible ON taskorch.wait_token FOR SELECT USING (
	pg_catalog.pg_has_role(owner, 'USAGE') OR taskorch.is_admin());
REVOKE ALL ON taskorch.wait_token FROM PUBLIC;
GRANT SELECT ON taskorch.wait_token TO PUBLIC;

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
-- Durations and delays as users write them (duration.c): the type of every
-- argument that takes a duration (ttl, max_duration, idempotency_key_ttl,
-- wait_for, a wait token's timeout) or a delay (trigger's and reschedule's
-- delay: a duration from now, or a point in time).  A value is text as
-- written ("1h52m18s", "3600" seconds, "2024-12-01T09:00:00Z"), read by the
-- function it is given to, whose error names the option.  Like citext, the
-- types are text inside.  The implicit casts let every driver bind these
-- arguments as it binds anything (untyped text, a number of seconds, an
-- interval, a timestamp) with no cast in the SQL.
------------------------------------------------------------------------------
CREATE TYPE taskorch.duration;
CREATE FUNCTION taskorch_internal.duration_in(cstring) RETURNS taskorch.duration
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_text_in';
CREATE FUNCTION taskorch_internal.duration_out(taskorch.duration) RETURNS cstring
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_text_out';
CREATE FUNCTION taskorch_internal.duration_recv(internal) RETURNS taskorch.duration
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_text_recv';
CREATE FUNCTION taskorch_internal.duration_send(taskorch.duration) RETURNS bytea
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_text_send';
CREATE TYPE taskorch.duration (
	INPUT = taskorch_internal.duration_in, OUTPUT = taskorch_internal.duration_out,
	RECEIVE = taskorch_internal.duration_recv, SEND = taskorch_internal.duration_send,
	LIKE = text, CATEGORY = 'T');
CREATE TYPE taskorch.delay;
CREATE FUNCTION taskorch_internal.delay_in(cstring) RETURNS taskorch.delay
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_text_in';
CREATE FUNCTION taskorch_internal.delay_out(taskorch.delay) RETURNS cstring
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_text_out';
CREATE FUNCTION taskorch_internal.delay_recv(internal) RETURNS taskorch.delay
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_text_recv';
CREATE FUNCTION taskorch_internal.delay_send(taskorch.delay) RETURNS bytea
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_text_send';
CREATE TYPE taskorch.delay (
	INPUT = taskorch_internal.delay_in, OUTPUT = taskorch_internal.delay_out,
	RECEIVE = taskorch_internal.delay_recv, SEND = taskorch_internal.delay_send,
	LIKE = text, CATEGORY = 'T');

-- the casts: text as is; an interval as "1h30m"; a number as seconds (a
-- real or a double precision written as a numeric: 1e+06 is "1000000"); a
-- timestamp (delay) at UTC, "2024-12-01T09:00:00Z"
CREATE FUNCTION taskorch_internal.duration(interval) RETURNS taskorch.duration
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_duration_from_interval';
CREATE FUNCTION taskorch_internal.delay(interval) RETURNS taskorch.delay
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_duration_from_interval';
CREATE FUNCTION taskorch_internal.delay(timestamptz) RETURNS taskorch.delay
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_delay_from_timestamptz';
CREATE FUNCTION taskorch_internal.delay(timestamp) RETURNS taskorch.delay
	LANGUAGE sql STRICT STABLE PARALLEL SAFE RETURN taskorch_internal.delay($1::timestamptz);
CREATE CAST (interval AS taskorch.duration) WITH FUNCTION taskorch_internal.duration(interval) AS IMPLICIT;
CREATE CAST (interval AS taskorch.delay) WITH FUNCTION taskorch_internal.delay(interval) AS IMPLICIT;
CREATE CAST (timestamptz AS taskorch.delay) WITH FUNCTION taskorch_internal.delay(timestamptz) AS IMPLICIT;
CREATE CAST (timestamp AS taskorch.delay) WITH FUNCTION taskorch_internal.delay(timestamp) AS IMPLICIT;
CREATE CAST (text AS taskorch.duration) WITHOUT FUNCTION AS IMPLICIT;
CREATE CAST (varchar AS taskorch.duration) WITHOUT FUNCTION AS IMPLICIT;
CREATE FUNCTION taskorch_internal.duration(smallint) RETURNS taskorch.duration
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::numeric::text::taskorch.duration;
CREATE CAST (smallint AS taskorch.duration) WITH FUNCTION taskorch_internal.duration(smallint) AS IMPLICIT;
CREATE FUNCTION taskorch_internal.duration(integer) RETURNS taskorch.duration
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::numeric::text::taskorch.duration;
CREATE CAST (integer AS taskorch.duration) WITH FUNCTION taskorch_internal.duration(integer) AS IMPLICIT;
CREATE FUNCTION taskorch_internal.duration(bigint) RETURNS taskorch.duration
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::numeric::text::taskorch.duration;
CREATE CAST (bigint AS taskorch.duration) WITH FUNCTION taskorch_internal.duration(bigint) AS IMPLICIT;
CREATE FUNCTION taskorch_internal.duration(numeric) RETURNS taskorch.duration
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::numeric::text::taskorch.duration;
CREATE CAST (numeric AS taskorch.duration) WITH FUNCTION taskorch_internal.duration(numeric) AS IMPLICIT;
CREATE FUNCTION taskorch_internal.duration(real) RETURNS taskorch.duration
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::numeric::text::taskorch.duration;
CREATE CAST (real AS taskorch.duration) WITH FUNCTION taskorch_internal.duration(real) AS IMPLICIT;
CREATE FUNCTION taskorch_internal.duration(double precision) RETURNS taskorch.duration
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::numeric::text::taskorch.duration;
CREATE CAST (double precision AS taskorch.duration) WITH FUNCTION taskorch_internal.duration(double precision) AS IMPLICIT;
CREATE CAST (text AS taskorch.delay) WITHOUT FUNCTION AS IMPLICIT;
CREATE CAST (varchar AS taskorch.delay) WITHOUT FUNCTION AS IMPLICIT;
CREATE FUNCTION taskorch_internal.delay(smallint) RETURNS taskorch.delay
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::numeric::text::taskorch.delay;
CREATE CAST (smallint AS taskorch.delay) WITH FUNCTION taskorch_internal.delay(smallint) AS IMPLICIT;
CREATE FUNCTION taskorch_internal.delay(integer) RETURNS taskorch.delay
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::numeric::text::taskorch.delay;
CREATE CAST (integer AS taskorch.delay) WITH FUNCTION taskorch_internal.delay(integer) AS IMPLICIT;
CREATE FUNCTION taskorch_internal.delay(bigint) RETURNS taskorch.delay
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::numeric::text::taskorch.delay;
CREATE CAST (bigint AS taskorch.delay) WITH FUNCTION taskorch_internal.delay(bigint) AS IMPLICIT;
CREATE FUNCTION taskorch_internal.delay(numeric) RETURNS taskorch.delay
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::numeric::text::taskorch.delay;
CREATE CAST (numeric AS taskorch.delay) WITH FUNCTION taskorch_internal.delay(numeric) AS IMPLICIT;
CREATE FUNCTION taskorch_internal.delay(real) RETURNS taskorch.delay
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::numeric::text::taskorch.delay;
CREATE CAST (real AS taskorch.delay) WITH FUNCTION taskorch_internal.delay(real) AS IMPLICIT;
CREATE FUNCTION taskorch_internal.delay(double precision) RETURNS taskorch.delay
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::numeric::text::taskorch.delay;
CREATE CAST (double precision AS taskorch.delay) WITH FUNCTION taskorch_internal.delay(double precision) AS IMPLICIT;

------------------------------------------------------------------------------
-- JSON as clients send it (payloads, options, metadata, outputs): a jsonb
-- that is also given as text or varchar (an ORM that types its strings, a
-- text expression), or json.  jsonb inside: the casts to and from jsonb are
-- binary, so the C functions read it as a jsonb.
------------------------------------------------------------------------------
CREATE TYPE taskorch.json_input;
CREATE FUNCTION taskorch_internal.json_input_in(cstring) RETURNS taskorch.json_input
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_jsonb_in';
CREATE FUNCTION taskorch_internal.json_input_out(taskorch.json_input) RETURNS cstring
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_jsonb_out';
CREATE FUNCTION taskorch_internal.json_input_recv(internal) RETURNS taskorch.json_input
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_jsonb_recv';
CREATE FUNCTION taskorch_internal.json_input_send(taskorch.json_input) RETURNS bytea
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_jsonb_send';
CREATE TYPE taskorch.json_input (
	INPUT = taskorch_internal.json_input_in, OUTPUT = taskorch_internal.json_input_out,
	RECEIVE = taskorch_internal.json_input_recv, SEND = taskorch_internal.json_input_send,
	LIKE = jsonb);
CREATE CAST (jsonb AS taskorch.json_input) WITHOUT FUNCTION AS IMPLICIT;
CREATE CAST (taskorch.json_input AS jsonb) WITHOUT FUNCTION AS IMPLICIT;
CREATE FUNCTION taskorch_internal.json_input(text) RETURNS taskorch.json_input
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::jsonb::taskorch.json_input;
CREATE FUNCTION taskorch_internal.json_input(json) RETURNS taskorch.json_input
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::jsonb::taskorch.json_input;
CREATE CAST (text AS taskorch.json_input) WITH FUNCTION taskorch_internal.json_input(text) AS IMPLICIT;
CREATE CAST (varchar AS taskorch.json_input) WITH FUNCTION taskorch_internal.json_input(text) AS IMPLICIT;
CREATE CAST (json AS taskorch.json_input) WITH FUNCTION taskorch_internal.json_input(json) AS IMPLICIT;

------------------------------------------------------------------------------
-- A batch's items (batch_items.c): a jsonb that also reads a PostgreSQL
-- array of JSON values, which is how node-postgres sends a JavaScript array
-- and psycopg a list of Jsonb.  jsonb inside: the casts to and from jsonb
-- are binary.  The preferred type of its category, so that an untyped
-- argument is read as items where a function also takes jsonb there.
------------------------------------------------------------------------------
CREATE TYPE taskorch.items;
CREATE FUNCTION taskorch_internal.items_in(cstring) RETURNS taskorch.items
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_items_in';
CREATE FUNCTION taskorch_internal.items_out(taskorch.items) RETURNS cstring
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_jsonb_out';
CREATE FUNCTION taskorch_internal.items_recv(internal) RETURNS taskorch.items
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_jsonb_recv';
CREATE FUNCTION taskorch_internal.items_send(taskorch.items) RETURNS bytea
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_jsonb_send';
CREATE TYPE taskorch.items (
	INPUT = taskorch_internal.items_in, OUTPUT = taskorch_internal.items_out,
	RECEIVE = taskorch_internal.items_recv, SEND = taskorch_internal.items_send,
	LIKE = jsonb, CATEGORY = 'U', PREFERRED = true);
CREATE FUNCTION taskorch_internal.items(jsonb[]) RETURNS taskorch.items
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_items_from_array';
CREATE CAST (jsonb AS taskorch.items) WITHOUT FUNCTION AS IMPLICIT;
CREATE CAST (taskorch.items AS jsonb) WITHOUT FUNCTION AS IMPLICIT;
CREATE FUNCTION taskorch_internal.items(json) RETURNS taskorch.items
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::jsonb::taskorch.items;
CREATE CAST (jsonb[] AS taskorch.items) WITH FUNCTION taskorch_internal.items(jsonb[]) AS IMPLICIT;
CREATE CAST (json AS taskorch.items) WITH FUNCTION taskorch_internal.items(json) AS IMPLICIT;

------------------------------------------------------------------------------
-- Schedules (schedules.c): runs of a task on a cron expression in a time
-- zone.  next_tick is the instant of the next tick; a worker's maintenance
-- pass fires due ticks and moves it, in one transaction with their runs.
------------------------------------------------------------------------------
CREATE SEQUENCE taskorch.schedule_id_seq;
CREATE TABLE taskorch.schedule (
	id				text COLLATE "C" PRIMARY KEY,
	task_id			text NOT NULL,
	cron			text NOT NULL,
	timezone		text NOT NULL,
	payload			jsonb,						-- added to each tick's fields
	deduplication_key text,						-- per owner: schedule() updates
	external_id		text,
	options			jsonb,						-- trigger options of each run
	overlap			text NOT NULL CHECK (overlap IN ('allow', 'skip')),
	missed			int NOT NULL CHECK (missed BETWEEN 0 AND 100),	-- missed ticks that run
	active			bool NOT NULL,
	owner			taskorch.role_ref NOT NULL,
	next_tick		timestamptz,				-- NULL: inactive, or no tick to come
	last_tick		timestamptz,
	last_run_id		text,
	last_error		text,						-- why the last tick made no run
	created_at		timestamptz NOT NULL DEFAULT now(),
	updated_at		timestamptz NOT NULL DEFAULT now()
);
ALTER SEQUENCE taskorch.schedule_id_seq OWNED BY taskorch.schedule.id;
CREATE INDEX schedule_due ON taskorch.schedule (next_tick) WHERE active;
CREATE INDEX schedule_deduplication_key ON taskorch.schedule (deduplication_key)
	WHERE deduplication_key IS NOT NULL;
SELECT pg_catalog.pg_extension_config_dump('taskorch.schedule', '');
SELECT pg_catalog.pg_extension_config_dump('taskorch.schedule_id_seq', '');
ALTER TABLE taskorch.schedule ENABLE ROW LEVEL SECURITY;
CREATE POLICY schedule_visible ON taskorch.schedule FOR SELECT USING (
	pg_catalog.pg_has_role(owner, 'USAGE') OR taskorch.is_admin());
REVOKE ALL ON taskorch.schedule FROM PUBLIC;
GRANT SELECT ON taskorch.schedule TO PUBLIC;

-- external tasks: claimed over libpq under a lease (external.c)
ALTER TABLE taskorch.task
	ALTER fn DROP NOT NULL,
	ADD COLUMN external		bool NOT NULL DEFAULT false,
	ADD COLUMN executors		taskorch.role_ref[] NOT NULL DEFAULT '{}',
	ADD CONSTRAINT task_function_or_external CHECK (external = (fn IS NULL));
ALTER TABLE taskorch.run
	ADD COLUMN external		bool NOT NULL DEFAULT false,
	ADD COLUMN claimed_at		timestamptz,
	ADD COLUMN lease_expires_at	timestamptz,
	ADD COLUMN lease_ms		int,
	ADD COLUMN claimed_by_pid	int,
	ADD COLUMN claimed_by_start	timestamptz,
	ADD COLUMN holds_slot		bool NOT NULL DEFAULT false;
DROP INDEX taskorch.run_queue_idx;
CREATE INDEX run_queue_idx ON taskorch.run (queue, run_at, id) WHERE status = 'QUEUED' AND NOT external;
CREATE INDEX run_external_idx ON taskorch.run (task_id, run_at, id)
	WHERE status = 'QUEUED' AND external;
CREATE INDEX run_lease_idx ON taskorch.run (lease_expires_at) WHERE status = 'EXECUTING';

-- The key that signs the leases of external runs (external.c): made at
-- install, read by no role but the extension's owner.
CREATE TABLE taskorch_internal.lease_key (key bytea NOT NULL);
INSERT INTO taskorch_internal.lease_key
	SELECT decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex');
REVOKE ALL ON taskorch_internal.lease_key FROM PUBLIC;

-- a run id's default without a SQL function to inline (runs.sql)
ALTER TABLE taskorch.run
	ALTER id SET DEFAULT 'run_' || nextval('taskorch.run_id_seq')::text;

-- the policy of taskorch.task calls a function in C (registry.sql)
CREATE FUNCTION taskorch.task_visible(owner taskorch.role_ref, triggerers taskorch.role_ref[])
	RETURNS bool LANGUAGE c STABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'taskorch_task_visible';
ALTER POLICY task_visible ON taskorch.task USING (taskorch.task_visible(owner, triggerers));

-- and that of taskorch.run too (runs.sql)
CREATE FUNCTION taskorch.run_visible(owner taskorch.role_ref, triggered_by taskorch.role_ref)
	RETURNS bool LANGUAGE c STABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'taskorch_run_visible';
ALTER POLICY run_visible ON taskorch.run USING (taskorch.run_visible(owner, triggered_by));

-- is_admin(), called by the policies for each row, in C (preload.sql)
CREATE OR REPLACE FUNCTION taskorch.is_admin() RETURNS bool
	LANGUAGE c STABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'taskorch_is_admin';

