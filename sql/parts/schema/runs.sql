------------------------------------------------------------------------------
-- Runs
--
-- The claim reads run_queue_idx, a partial index holding only QUEUED runs, each
-- queue's in claim order; a run leaves it when its status changes.  External runs are
-- in run_external_idx instead, per task.
------------------------------------------------------------------------------
CREATE SEQUENCE taskorch.run_id_seq;

CREATE TABLE taskorch.run (
	-- the cast keeps || textcat(): text || bigint is a SQL function, inlined
	-- (parsed) when a backend first prepares the default (run_insert.c)
	id				text COLLATE "C" PRIMARY KEY
					DEFAULT 'run_' || nextval('taskorch.run_id_seq')::text,
	task_id			text NOT NULL,
	status			taskorch.run_status NOT NULL DEFAULT 'QUEUED',
	payload			jsonb NOT NULL,
	output			jsonb,
	error			jsonb,
	attempts		int NOT NULL DEFAULT 0,
	max_attempts	int NOT NULL,
	queue			text NOT NULL,
	owner			taskorch.role_ref NOT NULL,	-- the task's owner: runs it
	triggered_by	taskorch.role_ref NOT NULL,
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
	parent_wait_seq	int,
	root_run_id		text,						-- the top of its tree of runs (NULL: it is one)
	-- external tasks (external.c): a run claimed over libpq is EXECUTING
	-- under a lease, until its worker completes, fails or loses it
	external		bool NOT NULL DEFAULT false,	-- its task's, when triggered
	claimed_at		timestamptz,				-- when this attempt was claimed
	lease_expires_at timestamptz,
	lease_ms		int,						-- its length, for heartbeats
	claimed_by_pid	int,						-- the backend that claimed it (or last heartbeat)
	claimed_by_start timestamptz,				-- and when that backend started
	holds_slot		bool NOT NULL DEFAULT false	-- counted against its queue's limit
) WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_insert_scale_factor = 0.01);
ALTER SEQUENCE taskorch.run_id_seq OWNED BY taskorch.run.id;

CREATE INDEX run_queue_idx ON taskorch.run (queue, run_at, id) WHERE status = 'QUEUED' AND NOT external;
-- external runs are claimed per task; leases are watched by their deadline
CREATE INDEX run_external_idx ON taskorch.run (task_id, run_at, id)
	WHERE status = 'QUEUED' AND external;
CREATE INDEX run_lease_idx ON taskorch.run (lease_expires_at) WHERE status = 'EXECUTING';
-- runs by task in creation order: listing, retention.  There is no index of
-- every run by creation time alone: an index holding every run takes an entry
-- for each row version (two per run a worker executes, three per external run)
CREATE INDEX run_task_idx ON taskorch.run (task_id, created_at);
-- DELAYED runs by due time; workers promote them to QUEUED
CREATE INDEX run_delayed_idx ON taskorch.run (run_at) WHERE status = 'DELAYED';
-- WAITING runs: with the indexes of the other unfinished statuses, what waits
-- is counted (stats.c) without reading the finished runs
CREATE INDEX run_waiting_idx ON taskorch.run (task_id) WHERE status = 'WAITING';
-- QUEUED runs with a ttl, by expiry; workers expire them
CREATE INDEX run_expiry_idx ON taskorch.run (expires_at)
	WHERE status = 'QUEUED' AND expires_at IS NOT NULL;
CREATE INDEX run_idempotency_idx ON taskorch.run (task_id, idempotency_key)
	WHERE idempotency_key IS NOT NULL;
CREATE INDEX run_batch_idx ON taskorch.run (batch_id, batch_index)
	WHERE batch_id IS NOT NULL;
CREATE INDEX run_debounce_idx ON taskorch.run (task_id, debounce_key)
	WHERE status = 'DELAYED' AND debounce_key IS NOT NULL;

CREATE TABLE taskorch.attempt (
	run_id			text COLLATE "C" NOT NULL REFERENCES taskorch.run ON DELETE CASCADE,
	number			int NOT NULL,
	status			taskorch.run_status NOT NULL,
	error			jsonb NOT NULL,
	started_at		timestamptz NOT NULL,
	finished_at		timestamptz NOT NULL,
	PRIMARY KEY (run_id, number)
);

SELECT pg_catalog.pg_extension_config_dump('taskorch.run', '');
SELECT pg_catalog.pg_extension_config_dump('taskorch.run_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('taskorch.attempt', '');

ALTER TABLE taskorch.run ENABLE ROW LEVEL SECURITY;
ALTER TABLE taskorch.attempt ENABLE ROW LEVEL SECURITY;

-- Who sees a run: the members of its owner and of its triggerer, and the
-- admins (taskorch.c: the workers' views of executing runs ask the same).
-- A call in C: a role that sees few runs reads the others at a fraction of
-- the cost of the expression, and each new backend parses a short policy.
CREATE FUNCTION taskorch.run_visible(owner taskorch.role_ref, triggered_by taskorch.role_ref)
	RETURNS bool LANGUAGE c STABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'taskorch_run_visible';
CREATE POLICY run_visible ON taskorch.run FOR SELECT
	USING (taskorch.run_visible(owner, triggered_by));
CREATE POLICY attempt_visible ON taskorch.attempt FOR SELECT USING (
	EXISTS (SELECT FROM taskorch.run r WHERE r.id = attempt.run_id));

REVOKE ALL ON taskorch.run, taskorch.attempt FROM PUBLIC;
GRANT SELECT ON taskorch.run, taskorch.attempt TO PUBLIC;

-- The key that signs the leases of external runs (external.c): made at
-- install, read by no role but the extension's owner.
CREATE TABLE taskorch_internal.lease_key (key bytea NOT NULL);
INSERT INTO taskorch_internal.lease_key
	SELECT decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex');
REVOKE ALL ON taskorch_internal.lease_key FROM PUBLIC;
