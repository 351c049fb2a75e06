------------------------------------------------------------------------------
-- What runs right now (from shared memory, not from a committed row)
------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION taskorch.executing_runs(
	OUT run_id text, OUT pid int, OUT started_at timestamptz, OUT metadata jsonb)
	RETURNS SETOF record
	LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'taskorch_executing_runs';

------------------------------------------------------------------------------
-- The runs and attempts views.  runs_wide has every column of a run;
-- runs the ones people look at first, the error as its message.
------------------------------------------------------------------------------
CREATE OR REPLACE VIEW taskorch.runs_wide WITH (security_invoker = true) AS
SELECT r.id, r.task_id,
	   CASE WHEN e.run_id IS NOT NULL THEN taskorch_internal.executing()
			ELSE r.status END AS status,
	   r.attempts, r.max_attempts, r.payload, r.output, r.error, r.queue,
	   r.owner, r.triggered_by, r.created_at, r.run_at,
	   coalesce(r.started_at, e.started_at) AS started_at, r.finished_at,
	   r.finished_at - coalesce(r.started_at, e.started_at) AS duration,
	   r.updated_at, r.delayed_until, r.ttl, r.expires_at, r.priority, r.tags,
	   coalesce(e.metadata, r.metadata) AS metadata, r.idempotency_key, r.concurrency_key, r.replayed_from,
	   r.batch_id, r.batch_index, r.debounce_key, r.parent_run_id, r.root_run_id,
	   r.external, r.lease_expires_at, r.claimed_by_pid
  FROM taskorch.run r
  LEFT JOIN taskorch.executing_runs() e ON e.run_id = r.id;

CREATE OR REPLACE VIEW taskorch.runs WITH (security_invoker = true) AS
SELECT id, task_id, status, attempts, tags, created_at, started_at, finished_at, duration,
	   payload, output, error->>'message' AS error_message
  FROM taskorch.runs_wide;

CREATE OR REPLACE VIEW taskorch.attempts WITH (security_invoker = true) AS
SELECT a.run_id, r.task_id, a.number, a.status,
	   a.error->>'message' AS message, a.error->>'sqlstate' AS sqlstate,
	   a.started_at, a.finished_at, a.error
  FROM taskorch.attempt a JOIN taskorch.run r ON r.id = a.run_id;

GRANT SELECT ON taskorch.runs, taskorch.runs_wide, taskorch.attempts TO PUBLIC;

-- Inside a task: the run being executed ({id, taskIdentifier, attempt, ...}).
CREATE OR REPLACE FUNCTION taskorch.current_run() RETURNS jsonb
	LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'taskorch_current_run';

-- Inside a task: fail the run now, without further attempts.
CREATE OR REPLACE FUNCTION taskorch.abort(message text, detail text DEFAULT NULL) RETURNS void
	LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'taskorch_abort';
