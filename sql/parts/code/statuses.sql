------------------------------------------------------------------------------
-- Statuses (the enum is in sql/parts/schema/statuses.sql; its C mirror and
-- the transition table are src/status.c's)
------------------------------------------------------------------------------
-- A run has finished (reached a status it never leaves).
CREATE OR REPLACE FUNCTION taskorch.finished(status taskorch.run_status) RETURNS bool
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	AS $$ SELECT status NOT IN ('DELAYED', 'QUEUED', 'EXECUTING', 'WAITING') $$;

-- The statuses as the C code knows them, in its enum's order: the SQL text
-- its statements use for each, and whether it is finished (test `statuses`
-- compares them with taskorch.run_status and taskorch.finished()).
CREATE OR REPLACE FUNCTION taskorch._statuses(OUT status text, OUT sql text, OUT finished bool)
	RETURNS SETOF record
	LANGUAGE c IMMUTABLE AS 'MODULE_PATHNAME', 'taskorch_statuses';

-- The transition table: every status change the engine makes, and the
-- module that makes it (from_status NULL: the run is created).
CREATE OR REPLACE FUNCTION taskorch._status_transitions(OUT from_status text, OUT to_status text,
	OUT module text, OUT why text)
	RETURNS SETOF record
	LANGUAGE c IMMUTABLE AS 'MODULE_PATHNAME', 'taskorch_status_transitions';
