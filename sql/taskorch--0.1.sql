-- taskorch 0.1 install script, frozen: later versions upgrade from it with
-- taskorch--0.1--<next>.sql.
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
	updated_at		timestamptz NOT NULL DEFAULT now()
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
	updated_at		timestamptz NOT NULL DEFAULT now()
) WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_insert_scale_factor = 0.01);
ALTER SEQUENCE taskorch.run_id_seq OWNED BY taskorch.run.id;

CREATE INDEX run_queue_idx ON taskorch.run (run_at, id) WHERE status = 'QUEUED';
CREATE INDEX run_task_idx ON taskorch.run (task_id, created_at);

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
	OUT run_id text, OUT pid int, OUT started_at timestamptz)
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
	   t.max_duration, t.triggerers, t.description, t.created_at, t.updated_at
  FROM taskorch.task t;

CREATE VIEW taskorch.runs WITH (security_invoker = true) AS
SELECT r.id, r.task_id,
	   CASE WHEN e.run_id IS NOT NULL THEN 'EXECUTING'::taskorch.run_status
			ELSE r.status END AS status,
	   r.attempts, r.max_attempts, r.payload, r.output, r.error, r.queue,
	   r.owner, r.triggered_by, r.created_at, r.run_at,
	   coalesce(r.started_at, e.started_at) AS started_at, r.finished_at,
	   r.finished_at - coalesce(r.started_at, e.started_at) AS duration,
	   r.updated_at
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
	description text DEFAULT NULL)
	RETURNS text
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_register_task';

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
CREATE FUNCTION taskorch.trigger(task text, payload jsonb DEFAULT '{}')
	RETURNS text
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_trigger';

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
