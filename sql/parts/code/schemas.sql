------------------------------------------------------------------------------
-- JSON Schemas (schema.c): checking values, and named schemas others refer
-- to as {"$ref": "name"}
------------------------------------------------------------------------------
CREATE OR REPLACE VIEW taskorch.schemas AS
SELECT name, schema, owner, description, created_at, updated_at FROM taskorch.schema;
GRANT SELECT ON taskorch.schemas TO PUBLIC;

-- Errors unless the schema uses only the supported keywords, well formed.
CREATE OR REPLACE FUNCTION taskorch.check_schema(schema jsonb) RETURNS void
	LANGUAGE c STRICT STABLE AS 'MODULE_PATHNAME', 'taskorch_check_schema';
-- The failures of value against schema, each "path: rule: what"; {} when it matches.
CREATE OR REPLACE FUNCTION taskorch.validate(value jsonb, schema jsonb) RETURNS text[]
	LANGUAGE c STRICT STABLE AS 'MODULE_PATHNAME', 'taskorch_validate';
-- Define, or (as its owner) redefine, a named schema.
CREATE OR REPLACE FUNCTION taskorch.define_schema(name text, schema jsonb, description text DEFAULT NULL)
	RETURNS text
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_define_schema';
-- Refused while a task or another schema refers to it.
CREATE OR REPLACE FUNCTION taskorch.drop_schema(name text) RETURNS void
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_drop_schema';
