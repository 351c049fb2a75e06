------------------------------------------------------------------------------
-- Operations
------------------------------------------------------------------------------
-- Executes due runs in this session, as the background workers would.
CREATE OR REPLACE FUNCTION taskorch.run_pending(max_runs int DEFAULT 100) RETURNS int
	LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'taskorch_run_pending';
REVOKE ALL ON FUNCTION taskorch.run_pending(int) FROM PUBLIC;

-- This server's workers, by database, and the runs (you may see) they execute.
CREATE OR REPLACE FUNCTION taskorch.workers(
	OUT database name, OUT slot int, OUT pid int, OUT idle bool,
	OUT run_id text)
	RETURNS SETOF record
	LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'taskorch_workers';

-- Tell the launcher that this database now has the extension.
CREATE OR REPLACE FUNCTION taskorch_internal.wake_launcher() RETURNS void
	LANGUAGE c AS 'MODULE_PATHNAME', 'taskorch_wake_launcher_sql';
REVOKE ALL ON FUNCTION taskorch_internal.wake_launcher() FROM PUBLIC;

-- Each database with the extension: the workers it wants, those running,
-- and whether its first worker found no background worker slot.
CREATE OR REPLACE FUNCTION taskorch_internal.database_workers(
	OUT database name, OUT wanted int, OUT running int, OUT starved bool)
	RETURNS SETOF record
	LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'taskorch_database_workers';
CREATE OR REPLACE VIEW taskorch.database_workers AS
SELECT * FROM taskorch_internal.database_workers();
GRANT SELECT ON taskorch.database_workers TO PUBLIC;

CREATE OR REPLACE FUNCTION taskorch_internal.check_worker_slots() RETURNS void
	LANGUAGE c AS 'MODULE_PATHNAME', 'taskorch_check_worker_slots';
REVOKE ALL ON FUNCTION taskorch_internal.check_worker_slots() FROM PUBLIC;

-- The launcher starts this database's workers (a warning if the slots
-- will not hold them).
SELECT taskorch_internal.check_worker_slots();
SELECT taskorch_internal.wake_launcher();
