------------------------------------------------------------------------------
-- Tracks and orchestrators (seeds 001, 002, 004): tasks whose run runs
-- other tasks, sequentially (a track's steps) or in parallel (an
-- orchestrator's members), by durable waits; and their job status,
-- derived from the runs.  None of these functions is SECURITY DEFINER: they
-- run as the caller (definitions) or as the task's owner (runners), and
-- resolve the mappers and queries they are given under that role's
-- search_path.
------------------------------------------------------------------------------
CREATE TABLE taskorch.composite (
	name			text PRIMARY KEY REFERENCES taskorch.task ON DELETE CASCADE,
	kind			text NOT NULL CHECK (kind IN ('track', 'orchestrator')),
	-- [{"name", "task", "input_mapper" | "input"}], in order; for a traverse
	-- orchestrator, one {"name", "task", "query", "page_size"}
	steps			jsonb NOT NULL,
	continue_on_failure bool NOT NULL DEFAULT false,
	base_fields		bool NOT NULL DEFAULT false
);
SELECT pg_catalog.pg_extension_config_dump('taskorch.composite', '');
ALTER TABLE taskorch.composite ENABLE ROW LEVEL SECURITY;
CREATE POLICY composite_read ON taskorch.composite FOR SELECT USING (
	EXISTS (SELECT FROM taskorch.task t WHERE t.id = composite.name));	-- tasks you may see
CREATE POLICY composite_insert ON taskorch.composite FOR INSERT WITH CHECK (
	EXISTS (SELECT FROM taskorch.task t WHERE t.id = composite.name
			 AND (pg_catalog.pg_has_role(t.owner, 'USAGE') OR taskorch.is_admin())));
CREATE POLICY composite_update ON taskorch.composite FOR UPDATE USING (
	EXISTS (SELECT FROM taskorch.task t WHERE t.id = composite.name
			 AND (pg_catalog.pg_has_role(t.owner, 'USAGE') OR taskorch.is_admin())));
REVOKE ALL ON taskorch.composite FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON taskorch.composite TO PUBLIC;
