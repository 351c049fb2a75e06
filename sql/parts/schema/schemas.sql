------------------------------------------------------------------------------
-- JSON Schemas (schema.c): checking values, and named schemas others refer
-- to as {"$ref": "name"}
------------------------------------------------------------------------------
CREATE TABLE taskorch.schema (
	name			text COLLATE "C" PRIMARY KEY,
	schema			jsonb NOT NULL,
	owner			taskorch.role_ref NOT NULL,
	description		text,
	created_at		timestamptz NOT NULL DEFAULT now(),
	updated_at		timestamptz NOT NULL DEFAULT now()
);
SELECT pg_catalog.pg_extension_config_dump('taskorch.schema', '');
REVOKE ALL ON taskorch.schema FROM PUBLIC;
GRANT SELECT ON taskorch.schema TO PUBLIC;
