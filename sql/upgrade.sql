-- The upgrade path: 0.1 upgraded to the current version must equal a fresh
-- install of it, keep its data, and run runs afterwards.
CREATE DATABASE upgrade_fresh;
CREATE DATABASE upgrade_old;

\c upgrade_old
CREATE EXTENSION taskorch VERSION '0.1';
CREATE FUNCTION up_echo(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT payload $$;
-- the library is newer than this schema: its functions that changed refuse
SELECT taskorch.register_task('up-echo', 'up_echo(jsonb)');
SELECT taskorch.trigger('up-echo', '{"before": "upgrade"}');
-- a task registered under 0.1 (as 0.1's register_task() wrote it)
INSERT INTO taskorch.task (id, fn, owner, queue, max_attempts, retry_factor, retry_min_ms,
						   retry_max_ms, retry_randomize)
VALUES ('up-echo', 'up_echo(jsonb)', current_user::regrole, 'up-echo', 3, 2, 1000, 10000, true);
-- a run queued under 0.1 (as 0.1's trigger() wrote it) waits: no worker
-- runs a schema of another version
INSERT INTO taskorch.run (task_id, payload, max_attempts, queue, owner, triggered_by, run_at)
VALUES ('up-echo', '{"before": "upgrade"}', 3, 'up-echo', current_user::regrole, current_user::regrole, now());
SELECT pg_sleep(0.5);
SELECT id, status FROM taskorch.runs;
ALTER EXTENSION taskorch UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'taskorch';
-- after the update, the workers start and run the queued run
DO $$
BEGIN
	FOR i IN 1..1000 LOOP
		EXIT WHEN NOT EXISTS (SELECT FROM taskorch.runs WHERE status IN ('QUEUED', 'EXECUTING'));
		PERFORM pg_sleep(0.01);
	END LOOP;
END $$;
SELECT id, status, output, tags, metadata, priority FROM taskorch.runs_wide;
SELECT taskorch.trigger('up-echo', delay => '1h') AS delayed \gset
SELECT status FROM taskorch.runs WHERE id = :'delayed';

-- what an object list looks like, to compare the two databases
\i sql/fingerprint.inc
SELECT pg_temp.schema_fingerprint() AS upgraded \gset

\c upgrade_fresh
CREATE EXTENSION taskorch;
\i sql/fingerprint.inc
SELECT pg_temp.schema_fingerprint() = :'upgraded' AS upgrade_equals_fresh_install;

\c contrib_regression
DROP DATABASE upgrade_fresh;
DROP DATABASE upgrade_old;
