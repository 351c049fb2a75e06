------------------------------------------------------------------------------
-- Run logs: taskorch.log() and a task's own INFO/NOTICE/WARNING messages,
-- kept even when the attempt that wrote them failed
------------------------------------------------------------------------------
CREATE TABLE taskorch.log (
	run_id			text COLLATE "C" NOT NULL REFERENCES taskorch.run ON DELETE CASCADE,
	attempt			int NOT NULL,
	position		int NOT NULL,				-- within the attempt
	logged_at		timestamptz NOT NULL,
	level			text NOT NULL,
	message			text NOT NULL,
	data			jsonb
);
CREATE INDEX log_run_idx ON taskorch.log (run_id, attempt, position);
SELECT pg_catalog.pg_extension_config_dump('taskorch.log', '');
ALTER TABLE taskorch.log ENABLE ROW LEVEL SECURITY;
CREATE POLICY log_visible ON taskorch.log FOR SELECT USING (
	EXISTS (SELECT FROM taskorch.run r WHERE r.id = log.run_id));
REVOKE ALL ON taskorch.log FROM PUBLIC;
GRANT SELECT ON taskorch.log TO PUBLIC;
