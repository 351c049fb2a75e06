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
	created_at		timestamptz NOT NULL DEFAULT now(),
	idempotency_key	text,						-- the batch's own: a second call returns this batch
	idempotency_key_expires_at timestamptz
);
CREATE INDEX batch_idempotency_key ON taskorch.batch (idempotency_key) WHERE idempotency_key IS NOT NULL;
-- retention removes batches by age (retention.c): no scan of the table
CREATE INDEX batch_created_idx ON taskorch.batch (created_at);
ALTER SEQUENCE taskorch.batch_id_seq OWNED BY taskorch.batch.id;
SELECT pg_catalog.pg_extension_config_dump('taskorch.batch', '');
SELECT pg_catalog.pg_extension_config_dump('taskorch.batch_id_seq', '');
ALTER TABLE taskorch.batch ENABLE ROW LEVEL SECURITY;
CREATE POLICY batch_visible ON taskorch.batch FOR SELECT USING (
	pg_catalog.pg_has_role(triggered_by, 'USAGE') OR taskorch.is_admin());
REVOKE ALL ON taskorch.batch FROM PUBLIC;
GRANT SELECT ON taskorch.batch TO PUBLIC;

------------------------------------------------------------------------------
-- A batch's items (batch_items.c): a jsonb that also reads a PostgreSQL
-- array of JSON values, which is how node-postgres sends a JavaScript array
-- and psycopg a list of Jsonb.  jsonb inside: the casts to and from jsonb
-- are binary.  The preferred type of its category, so that an untyped
-- argument is read as items where a function also takes jsonb there.
------------------------------------------------------------------------------
CREATE TYPE taskorch.items;
CREATE FUNCTION taskorch_internal.items_in(cstring) RETURNS taskorch.items
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_items_in';
CREATE FUNCTION taskorch_internal.items_out(taskorch.items) RETURNS cstring
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_jsonb_out';
CREATE FUNCTION taskorch_internal.items_recv(internal) RETURNS taskorch.items
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_jsonb_recv';
CREATE FUNCTION taskorch_internal.items_send(taskorch.items) RETURNS bytea
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_jsonb_send';
CREATE TYPE taskorch.items (
	INPUT = taskorch_internal.items_in, OUTPUT = taskorch_internal.items_out,
	RECEIVE = taskorch_internal.items_recv, SEND = taskorch_internal.items_send,
	LIKE = jsonb, CATEGORY = 'U', PREFERRED = true);
CREATE FUNCTION taskorch_internal.items(jsonb[]) RETURNS taskorch.items
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_items_from_array';
CREATE CAST (jsonb AS taskorch.items) WITHOUT FUNCTION AS IMPLICIT;
CREATE CAST (taskorch.items AS jsonb) WITHOUT FUNCTION AS IMPLICIT;
CREATE FUNCTION taskorch_internal.items(json) RETURNS taskorch.items
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::jsonb::taskorch.items;
CREATE CAST (jsonb[] AS taskorch.items) WITH FUNCTION taskorch_internal.items(jsonb[]) AS IMPLICIT;
CREATE CAST (json AS taskorch.items) WITH FUNCTION taskorch_internal.items(json) AS IMPLICIT;
