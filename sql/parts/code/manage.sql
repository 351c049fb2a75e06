------------------------------------------------------------------------------
-- Run management
------------------------------------------------------------------------------
-- true: the run is now CANCELED; false: it had already finished.
CREATE OR REPLACE FUNCTION taskorch.cancel(run text) RETURNS bool
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_cancel';

-- A DELAYED run gets a new due time (a duration from now, or a time).
CREATE OR REPLACE FUNCTION taskorch.reschedule(run text, delay taskorch.delay) RETURNS timestamptz
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_reschedule';

-- A new run with the same task, payload and options; returns its id.
CREATE OR REPLACE FUNCTION taskorch.replay(run text) RETURNS text
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_replay';

------------------------------------------------------------------------------
-- Listing, and bulk cancel and replay by the same filters
------------------------------------------------------------------------------
-- The runs (you may see) matching the filters of list_runs, cancel_runs
-- and replay_runs; NULL filters match everything.
CREATE OR REPLACE FUNCTION taskorch_internal.matching_runs(
	status text[], task text[], tags text[], batch text,
	created_after timestamptz, created_before timestamptz)
	RETURNS SETOF taskorch.runs_wide
	LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT r.* FROM taskorch.runs_wide r
	 WHERE ($1 IS NULL OR r.status::text = ANY ($1))
	   AND ($2 IS NULL OR r.task_id = ANY ($2))
	   AND ($3 IS NULL OR r.tags @> $3)
	   AND ($4 IS NULL OR r.batch_id = $4)
	   AND ($5 IS NULL OR r.created_at >= $5)
	   AND ($6 IS NULL OR r.created_at < $6)
$$;

-- The status filter of list_runs, cancel_runs and replay_runs names statuses.
CREATE OR REPLACE FUNCTION taskorch_internal.check_statuses(status text[]) RETURNS void
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
CREATE OR REPLACE FUNCTION taskorch.list_runs(
	status text[] DEFAULT NULL,
	task text[] DEFAULT NULL,
	tags text[] DEFAULT NULL,
	batch text DEFAULT NULL,
	created_after timestamptz DEFAULT NULL,
	created_before timestamptz DEFAULT NULL,
	page_size int DEFAULT 100,
	cursor text DEFAULT NULL)
	RETURNS SETOF taskorch.runs_wide
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
	PERFORM taskorch_internal.check_statuses(status);
	IF cursor IS NOT NULL THEN
		SELECT r.created_at INTO after_created FROM taskorch.runs_wide r WHERE r.id = cursor;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'cursor "%" is not a run you can see', cursor
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Pass the id of the last run of the previous page.';
		END IF;
	END IF;
	RETURN QUERY
	SELECT r.* FROM taskorch_internal.matching_runs(list_runs.status, task, list_runs.tags, batch,
											created_after, created_before) r
	 WHERE (cursor IS NULL OR (r.created_at, r.id) < (after_created, cursor))
	 ORDER BY r.created_at DESC, r.id DESC
	 LIMIT page_size;
END
$$;

-- Cancel every run matching the filters that has not finished; returns how many.
CREATE OR REPLACE FUNCTION taskorch.cancel_runs(
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
	SELECT taskorch_internal.check_statuses(status);
	SELECT count(*) FILTER (WHERE taskorch.cancel(r.id))
	  FROM taskorch_internal.matching_runs(status, task, tags, batch, created_after, created_before) r
	 WHERE NOT taskorch.finished(r.status)
$$;

-- Replay every finished run matching the filters; returns the new run ids.
CREATE OR REPLACE FUNCTION taskorch.replay_runs(
	status text[] DEFAULT taskorch.failed_statuses(),
	task text[] DEFAULT NULL,
	tags text[] DEFAULT NULL,
	batch text DEFAULT NULL,
	created_after timestamptz DEFAULT NULL,
	created_before timestamptz DEFAULT NULL)
	RETURNS SETOF text
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT taskorch_internal.check_statuses(status);
	SELECT taskorch.replay(r.id)
	  FROM taskorch_internal.matching_runs(status, task, tags, batch, created_after, created_before) r
	 WHERE taskorch.finished(r.status)
	 ORDER BY r.created_at
$$;
