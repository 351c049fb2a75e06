------------------------------------------------------------------------------
-- Statuses (the enum is in sql/parts/schema/statuses.sql)
------------------------------------------------------------------------------
-- A run has finished (reached a status it never leaves).
CREATE OR REPLACE FUNCTION taskorch.finished(status taskorch.run_status) RETURNS bool
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	AS $$ SELECT status NOT IN ('DELAYED', 'QUEUED', 'EXECUTING', 'WAITING') $$;
