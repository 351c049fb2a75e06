------------------------------------------------------------------------------
-- Batches
------------------------------------------------------------------------------
CREATE SEQUENCE taskorch.batch_id_seq;
CREATE TABLE taskorch.batch (
	id				text COLLATE "C" PRIMARY KEY
					DEFAULT 'batch_' || nextval('taskorch.batch_id_seq'),
	task_id			text,						-- NULL: items name their tasks
	item_count		int NOT NULL,
	triggered_by	taskorch.role_ref NOT NULL,
	options			jsonb,
	created_at		timestamptz NOT NULL DEFAULT now()
);
ALTER SEQUENCE taskorch.batch_id_seq OWNED BY taskorch.batch.id;
SELECT pg_catalog.pg_extension_config_dump('taskorch.batch', '');
SELECT pg_catalog.pg_extension_config_dump('taskorch.batch_id_seq', '');
ALTER TABLE taskorch.batch ENABLE ROW LEVEL SECURITY;
CREATE POLICY batch_visible ON taskorch.batch FOR SELECT USING (
	pg_catalog.pg_has_role(triggered_by, 'USAGE') OR taskorch.is_admin());
REVOKE ALL ON taskorch.batch FROM PUBLIC;
GRANT SELECT ON taskorch.batch TO PUBLIC;
