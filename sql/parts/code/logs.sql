------------------------------------------------------------------------------
-- Run logs: taskorch.log() and a task's own INFO/NOTICE/WARNING messages,
-- kept even when the attempt that wrote them failed
------------------------------------------------------------------------------
CREATE OR REPLACE VIEW taskorch.logs WITH (security_invoker = true) AS
SELECT l.run_id, r.task_id, l.attempt, l.position, l.logged_at, l.level, l.message, l.data
  FROM taskorch.log l JOIN taskorch.run r ON r.id = l.run_id;
GRANT SELECT ON taskorch.logs TO PUBLIC;

-- Inside a task: level is debug, log, info, warn or error.
CREATE OR REPLACE FUNCTION taskorch.log(level text, message text, data jsonb DEFAULT NULL)
	RETURNS void
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_log';
