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
