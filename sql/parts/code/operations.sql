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
	OUT run_id text, OUT runs_executed bigint, OUT runs_let_go bigint)
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

------------------------------------------------------------------------------
-- taskorch.stats: per task, per queue and for the database, from shared
-- memory (stats.c): what waits now (counted at most a second ago), what
-- ended over the last minute and since the last stats_reset().
------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION taskorch_internal.stats(
	OUT scope text, OUT name text, OUT delayed bigint, OUT queued bigint, OUT executing bigint,
	OUT waiting bigint, OUT due bigint, OUT oldest_due_s float8, OUT completed_per_s float8,
	OUT failed_per_s float8, OUT wait_p50_ms float8, OUT wait_p95_ms float8,
	OUT exec_p50_ms float8, OUT exec_p95_ms float8, OUT completed bigint, OUT failed bigint,
	OUT canceled bigint, OUT expired bigint)
	RETURNS SETOF record
	LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'taskorch_stats';

-- A role sees the rows of the tasks it may see, of their queues and of the
-- queues it owns; the database's row is taskorch_admin's.
CREATE OR REPLACE VIEW taskorch.stats WITH (security_invoker = true) AS
SELECT s.scope, s.name, s.delayed, s.queued, s.executing, s.waiting, s.due,
	   s.oldest_due_s, s.completed_per_s, s.failed_per_s,
	   s.wait_p50_ms, s.wait_p95_ms, s.exec_p50_ms, s.exec_p95_ms,
	   s.completed AS completed_since_reset, s.failed AS failed_since_reset,
	   s.canceled AS canceled_since_reset, s.expired AS expired_since_reset,
	   q.concurrency_limit, w.running AS workers, w.wanted AS workers_wanted,
	   w.starved AS workers_starved
  FROM taskorch_internal.stats() s
  LEFT JOIN taskorch.queue q ON s.scope = 'queue' AND q.name = s.name
  LEFT JOIN taskorch.database_workers w ON s.scope = 'database' AND w.database = current_database()
 WHERE (s.scope = 'task' AND EXISTS (SELECT FROM taskorch.task t WHERE t.id = s.name))
	OR (s.scope = 'queue' AND (pg_catalog.pg_has_role(q.owner, 'USAGE') OR taskorch.is_admin()
							   OR EXISTS (SELECT FROM taskorch.task t WHERE t.queue = s.name)))
	OR (s.scope = 'database' AND taskorch.is_admin());
GRANT SELECT ON taskorch.stats TO PUBLIC;

CREATE OR REPLACE FUNCTION taskorch.stats_reset() RETURNS void
	LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'taskorch_stats_reset';
