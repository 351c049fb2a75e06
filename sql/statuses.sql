-- The statuses of a run: the C enum (src/status.h) mirrors taskorch.run_status,
-- and the transition table (src/status.c) is a state machine that fits it.
-- Run right after setup: it also starts recording every status change the
-- following suites make, which test `transitions` checks against the table.

-- The C enum and the SQL enum, side by side, in order; the SQL text the C
-- statements use for each status; finished as C and SQL see it.
SELECT e.ord, e.label, c.status AS c_status, c.sql, c.finished AS c_finished,
	   taskorch.finished(e.label::taskorch.run_status) AS sql_finished
  FROM unnest(enum_range(NULL::taskorch.run_status)::text[]) WITH ORDINALITY AS e(label, ord)
  FULL JOIN taskorch_internal.statuses() WITH ORDINALITY AS c(status, sql, finished, failed, ord) USING (ord)
 ORDER BY coalesce(e.ord, c.ord);
SELECT array_agg(status ORDER BY ord) = enum_range(NULL::taskorch.run_status)::text[]
	   AND bool_and(sql = quote_literal(status))
	   AND bool_and(finished = taskorch.finished(status::taskorch.run_status))
	   AND bool_and(failed = taskorch.failed(status::taskorch.run_status)) AS c_mirrors_sql
  FROM taskorch_internal.statuses() WITH ORDINALITY AS c(status, sql, finished, failed, ord);

-- The transition table names statuses of the enum (the casts fail otherwise)
SELECT count(t) AS transitions, count(t) - count(f) AS creating,
	   array_agg(DISTINCT module ORDER BY module) AS modules
  FROM (SELECT from_status::taskorch.run_status AS f, to_status::taskorch.run_status AS t, module
		  FROM taskorch_internal.status_transitions()) x;
-- a finished run never changes again: no transition leaves a finished status
SELECT * FROM taskorch_internal.status_transitions()
 WHERE taskorch.finished(from_status::taskorch.run_status);
-- a new run is created unfinished and not EXECUTING (written only for an
-- external run its worker claimed; the runs view shows it for a QUEUED run a
-- worker executes)
SELECT * FROM taskorch_internal.status_transitions()
 WHERE from_status IS NULL AND (taskorch.finished(to_status::taskorch.run_status)
								 OR to_status = 'EXECUTING');
-- the statuses a run can reach from its creation: every one (EXECUTING: an
-- external run)
WITH RECURSIVE reach(status) AS (
	SELECT to_status FROM taskorch_internal.status_transitions() WHERE from_status IS NULL
	UNION
	SELECT t.to_status FROM reach JOIN taskorch_internal.status_transitions() t ON t.from_status = reach.status)
SELECT label AS unreachable
  FROM unnest(enum_range(NULL::taskorch.run_status)::text[]) AS label
 WHERE label NOT IN (SELECT status FROM reach);

-- Record every status written from now on (by sessions and by workers), for
-- test `transitions`: (NULL, status) for a new run, (old, new) for an update
-- that sets the status.
CREATE TABLE status_seen (from_status text, to_status text);
GRANT INSERT ON status_seen TO PUBLIC;
CREATE FUNCTION status_seen_record() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
	INSERT INTO public.status_seen
	VALUES (CASE WHEN TG_OP = 'UPDATE' THEN OLD.status::text END, NEW.status::text);
	RETURN NULL;
END
$$;
CREATE TRIGGER status_seen AFTER INSERT OR UPDATE OF status ON taskorch.run
	FOR EACH ROW EXECUTE FUNCTION status_seen_record();
