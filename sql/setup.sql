-- Helpers shared by the regression tests (they run in one database, in order).

-- Wait until no run is QUEUED or EXECUTING, nor WAITING with every wait
-- over (about to resume); background workers do the work.  External runs
-- wait for their test to claim them.
CREATE FUNCTION wait_for_runs(timeout interval DEFAULT '60s') RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	deadline timestamptz := clock_timestamp() + timeout;
BEGIN
	LOOP
		IF NOT EXISTS (SELECT FROM taskorch.runs_wide
					   WHERE status IN ('QUEUED', 'EXECUTING') AND NOT external)
		   AND NOT EXISTS (SELECT FROM taskorch.run r
						   WHERE r.status = 'WAITING'
							 AND EXISTS (SELECT FROM taskorch.waitpoint w WHERE w.run_id = r.id)
							 AND NOT EXISTS (SELECT FROM taskorch.waitpoint w
											 WHERE w.run_id = r.id AND w.completed_at IS NULL)) THEN
			RETURN 'settled';
		END IF;
		IF clock_timestamp() > deadline THEN
			RETURN 'timed out';
		END IF;
		PERFORM pg_sleep(0.01);
	END LOOP;
END
$$;

-- Workers of this database are up (the launcher started them at CREATE EXTENSION).
DO $$
BEGIN
	FOR i IN 1..1000 LOOP
		EXIT WHEN (SELECT count(*) FROM taskorch.workers() w
					WHERE w.database = current_database()
					  AND w.pid IS NOT NULL) = 2;
		PERFORM pg_sleep(0.01);
	END LOOP;
END
$$;
SELECT count(*) AS workers_running FROM taskorch.workers()
 WHERE database = current_database()
   AND pid IS NOT NULL;

-- Run a statement and report its error as "SQLSTATE: message" (run ids
-- masked), for refusals whose message names a run id.
CREATE FUNCTION try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, 'run_[0-9]+', 'run_N', 'g');
END
$$;
