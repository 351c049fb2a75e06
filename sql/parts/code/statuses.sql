------------------------------------------------------------------------------
-- Statuses (the enum is in sql/parts/schema/statuses.sql; its C mirror and
-- the transition table are src/status.c's)
------------------------------------------------------------------------------
-- The one place the SQL code names statuses: every other part asks these
-- functions, never writes a status literal.

-- A run has finished (reached a status it never leaves).
CREATE OR REPLACE FUNCTION taskorch.finished(status taskorch.run_status) RETURNS bool
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	AS $$ SELECT status NOT IN ('DELAYED', 'QUEUED', 'EXECUTING', 'WAITING') $$;

-- A run succeeded: its output is its Result's (Trigger.dev's isSuccess).
CREATE OR REPLACE FUNCTION taskorch.succeeded(status taskorch.run_status) RETURNS bool
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	AS $$ SELECT status = 'COMPLETED' $$;

-- A run failed: it ended with an error of its own, not canceled or expired
-- (Trigger.dev's isFailed); what replay_runs() replays by default.
CREATE OR REPLACE FUNCTION taskorch.failed_statuses() RETURNS text[]
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	AS $$ SELECT ARRAY['FAILED', 'CRASHED', 'TIMED_OUT', 'SYSTEM_FAILURE'] $$;

CREATE OR REPLACE FUNCTION taskorch.failed(status taskorch.run_status) RETURNS bool
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	AS $$ SELECT status::text = ANY (taskorch.failed_statuses()) $$;

-- A run is queued: due, or waiting for a worker.
CREATE OR REPLACE FUNCTION taskorch.queued(status taskorch.run_status) RETURNS bool
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	AS $$ SELECT status = 'QUEUED' $$;

-- The status shown for a run a worker executes now (the runs view), and
-- the status of a run that stopped at a wait.
CREATE OR REPLACE FUNCTION taskorch_internal.executing() RETURNS taskorch.run_status
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	AS $$ SELECT 'EXECUTING'::taskorch.run_status $$;
CREATE OR REPLACE FUNCTION taskorch_internal.waiting() RETURNS taskorch.run_status
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	AS $$ SELECT 'WAITING'::taskorch.run_status $$;

-- The statuses of a run that did not succeed and of one that did, for
-- what the engine reports as a run's (a step it refused, a traverse page).
CREATE OR REPLACE FUNCTION taskorch_internal.failed() RETURNS taskorch.run_status
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	AS $$ SELECT 'FAILED'::taskorch.run_status $$;
CREATE OR REPLACE FUNCTION taskorch_internal.completed() RETURNS taskorch.run_status
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	AS $$ SELECT 'COMPLETED'::taskorch.run_status $$;

-- The statuses as the C code knows them, in its enum's order: the SQL text
-- its statements use for each, whether it is finished and whether it is a
-- failure (test `statuses` compares them with taskorch.run_status,
-- taskorch.finished() and taskorch.failed()).
CREATE OR REPLACE FUNCTION taskorch_internal.statuses(OUT status text, OUT sql text, OUT finished bool,
											  OUT failed bool)
	RETURNS SETOF record
	LANGUAGE c IMMUTABLE AS 'MODULE_PATHNAME', 'taskorch_statuses';

-- The transition table: every status change the engine makes, and the
-- module that makes it (from_status NULL: the run is created).
CREATE OR REPLACE FUNCTION taskorch_internal.status_transitions(OUT from_status text, OUT to_status text,
	OUT module text, OUT why text)
	RETURNS SETOF record
	LANGUAGE c IMMUTABLE AS 'MODULE_PATHNAME', 'taskorch_status_transitions';
