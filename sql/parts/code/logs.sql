------------------------------------------------------------------------------
-- Run logs: taskorch.log() and a task's own INFO/NOTICE/WARNING messages,
-- kept even when the attempt that wrote them failed
------------------------------------------------------------------------------
-- The log entries of a track's step: its start, and its end (completed or
-- failed).  They are not written: a step's checkpoint (its waitpoint,
-- keyed by the step's name) records when it started and how it ended, and
-- taskorch.logs shows them from it; the runner writes the end of a step it
-- refused, which has no checkpoint.
CREATE OR REPLACE FUNCTION taskorch_internal.step_started_log(name text, task text, n int)
	RETURNS TABLE (level text, message text, data jsonb)
	LANGUAGE sql STABLE
	AS $$
	SELECT 'info', format('step %s (%s) started', name, task), jsonb_build_object('step', name, 'index', n) $$;

CREATE OR REPLACE FUNCTION taskorch_internal.step_ended_log(name text, n int, result jsonb)
	RETURNS TABLE (level text, message text, data jsonb)
	LANGUAGE sql STABLE
	AS $$
	SELECT CASE WHEN (result->>'ok')::bool THEN 'info' ELSE 'error' END,
		   format('step %s (%s) %s', name, result->>'taskIdentifier',
				  CASE WHEN (result->>'ok')::bool THEN 'completed' ELSE 'failed' END),
		   jsonb_build_object('step', name, 'index', n, 'runId', result->'id') $$;

-- Every run's log entries: those written, and its track steps' (position
-- 0, in the track's attempt; a traverse's pages, also checkpoints, are not
-- logged).
CREATE OR REPLACE VIEW taskorch.logs WITH (security_invoker = true) AS
SELECT l.run_id, r.task_id, l.attempt, l.position, l.logged_at, l.level, l.message, l.data
  FROM taskorch.log l JOIN taskorch.run r ON r.id = l.run_id
UNION ALL
SELECT w.run_id, r.task_id, greatest(r.attempts, 1), 0, e.logged_at, e.level, e.message, e.data
  FROM taskorch.waitpoint w JOIN taskorch.run r ON r.id = w.run_id
	   CROSS JOIN LATERAL (
		SELECT w.created_at AS logged_at, s.*
		  FROM taskorch_internal.step_started_log(w.key, (SELECT c.task_id FROM taskorch.run c
												   WHERE c.id = w.children[1]), w.seq) s
		UNION ALL
		SELECT w.completed_at, s.* FROM taskorch_internal.step_ended_log(w.key, w.seq, w.result) s
		 WHERE w.completed_at IS NOT NULL) e
 WHERE w.key IS NOT NULL AND w.kind = 'run';	-- a checkpoint for one child: a track's step
GRANT SELECT ON taskorch.logs TO PUBLIC;

-- Inside a task: level is debug, log, info, warn or error.
CREATE OR REPLACE FUNCTION taskorch.log(level text, message text, data jsonb DEFAULT NULL)
	RETURNS void
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_log';
