-- JSON Schemas: validate() names each failure's path and rule; schemas are
-- checked when defined; a task's payload_schema is checked at trigger time
-- (a bad payload makes no run) and its output_schema on completion.

-- every rule of the subset, one failure each
SELECT taskorch.validate('"x"', '{"type": "number"}');
SELECT taskorch.validate('true', '{"type": ["string", "null"]}');
SELECT taskorch.validate('1.5', '{"type": "integer"}');
SELECT taskorch.validate('2.0', '{"type": "integer"}') AS integral_float_is_integer;
SELECT taskorch.validate('{"a": 1}', '{"required": ["a", "tenantId"]}');
SELECT taskorch.validate('{"user": {"email": 5}}',
	'{"properties": {"user": {"properties": {"email": {"type": "string"}}}}}');
SELECT taskorch.validate('{"a": 1, "b": 2}', '{"properties": {"a": {}}, "additionalProperties": false}');
SELECT taskorch.validate('{"a": 1, "b": "x"}',
	'{"properties": {"a": {}}, "additionalProperties": {"type": "number"}}');
SELECT taskorch.validate('[1, "two", 3, null]', '{"items": {"type": "integer"}}');
SELECT taskorch.validate('"purple"', '{"enum": ["red", "green", 1]}');
SELECT taskorch.validate('{"v": 2}', '{"const": {"v": 1}}');
SELECT taskorch.validate('1.0', '{"const": 1}') AS equal_numbers_are_const;
SELECT taskorch.validate('-1', '{"minimum": 0}');
SELECT taskorch.validate('101', '{"maximum": 100}');
SELECT taskorch.validate('"hé"', '{"minLength": 3}');
SELECT taskorch.validate('"héllo"', '{"maxLength": 4}');
SELECT taskorch.validate('"abc-12"', '{"pattern": "^[a-z]+$"}');
SELECT taskorch.validate('"order-12"', '{"pattern": "[0-9]+"}') AS pattern_is_searched;
SELECT taskorch.validate('{}', 'false');
SELECT taskorch.validate('{"anything": [1]}', 'true') AS true_accepts_all;
-- every failure is reported, up to ten
SELECT unnest(taskorch.validate('{"tenantId": 7, "extra": true, "tags": ["a", 2]}',
	'{"type": "object", "required": ["tenantId", "projectId"],
	  "properties": {"tenantId": {"type": "string"}, "tags": {"items": {"type": "string"}}},
	  "additionalProperties": false}')) AS failure;
SELECT cardinality(taskorch.validate(
	(SELECT jsonb_agg(g) FROM generate_series(1, 20) g), '{"items": {"type": "string"}}')) AS at_most;

-- schemas are checked when used or defined: the subset only
SELECT taskorch.check_schema('{"type": "text"}');
SELECT taskorch.check_schema('{"type": "string", "minLenght": 3}');
SELECT taskorch.check_schema('{"minLength": -1}');
SELECT taskorch.check_schema('{"pattern": "(unclosed"}');
SELECT taskorch.check_schema('{"properties": ["a"]}');
SELECT taskorch.check_schema('{"required": [1]}');
SELECT taskorch.check_schema('{"items": {"properties": {"a": {"maximum": "10"}}}}');
SELECT taskorch.check_schema('{"$ref": "nope"}');
SELECT taskorch.check_schema('[]');
-- minLength and maxLength are counts, 0 to 2147483647: a bigger one would
-- pass here and fail every validation
SELECT taskorch.check_schema('{"maxLength": 10000000000}');
SELECT try($$SELECT taskorch.check_schema('{"properties": {"a": {"minLength": 2147483648}}}')$$);
SELECT try($$SELECT taskorch.check_schema('{"minLength": 2.5}')$$);
SELECT try($$SELECT taskorch.define_schema('too-long', '{"maxLength": 1e10}')$$);
SELECT taskorch.validate('"abc"', '{"minLength": 0, "maxLength": 2147483647}') AS largest_count_ok;
SELECT taskorch.validate('"abc"', '{"minLength": 3.0, "maxLength": 2.0}') AS integral_counts;
SELECT taskorch.check_schema('{"title": "t", "description": "d", "default": 1, "examples": [],
							  "$schema": "x", "$id": "y", "$comment": "z"}') AS annotations_ok;

-- named schemas, referred to as {"$ref": name} (the seed's generic schemas)
SELECT taskorch.define_schema('base-input', '{
	"type": "object",
	"required": ["tenantId", "projectId"],
	"properties": {"tenantId": {"type": "string", "minLength": 1},
				   "projectId": {"type": "string", "minLength": 1},
				   "userId": {"type": "string"},
				   "trampData": {"type": "object"}}}', 'tenantId, projectId, optional userId');
SELECT name, description FROM taskorch.schemas;
SELECT taskorch.validate('{"tenantId": "", "projectId": "p"}', '{"$ref": "base-input"}');
SELECT taskorch.define_schema('bad', '{"type": "strng"}');
SELECT taskorch.define_schema('has space', '{}');

-- a schema may not refer to itself, directly or through others: the
-- refused definition changes nothing
SELECT taskorch.define_schema('cyc-a', 'true');
SELECT taskorch.define_schema('cyc-b', '{"properties": {"next": {"$ref": "cyc-a"}}}');
SELECT taskorch.define_schema('cyc-c', '{"items": {"$ref": "cyc-b"}}');
SELECT taskorch.define_schema('cyc-a', '{"additionalProperties": {"$ref": "cyc-c"}}');
SELECT try($$SELECT taskorch.define_schema('cyc-a', '{"$ref": "cyc-b"}')$$);
SELECT try($$SELECT taskorch.define_schema('cyc-a', '{"type": "object", "items": {"$ref": "cyc-a"}}')$$);
SELECT name, schema FROM taskorch.schemas WHERE name LIKE 'cyc-%' ORDER BY name;
SELECT taskorch.validate('[{"next": 1}, 2]', '{"$ref": "cyc-c"}') AS still_checks;

-- a named schema is read once per check, however often it applies, and a
-- DAG of $refs costs what its distinct schemas cost: each dag-i applies
-- dag-(i-1) twice, at the same element and at its elements, so expanding
-- the $refs grew the work about 4x per level (dag-14 took minutes and read
-- taskorch.schema millions of times)
SELECT taskorch.define_schema('dag-0', '{"type": ["array", "integer"]}');
DO $$
BEGIN
	FOR i IN 1..14 LOOP
		PERFORM taskorch.define_schema('dag-' || i,
			jsonb_build_object('$ref', 'dag-' || (i - 1), 'items', jsonb_build_object('$ref', 'dag-' || (i - 1))));
	END LOOP;
END $$;
CREATE FUNCTION pairs(depth int) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	v jsonb := '1';
BEGIN
	FOR i IN 1..depth LOOP
		v := jsonb_build_array(v, v);
	END LOOP;
	RETURN v;
END $$;
BEGIN;
SET LOCAL statement_timeout = '10s';
SELECT seq_scan + coalesce(idx_scan, 0) AS reads FROM pg_stat_xact_user_tables
 WHERE relid = 'taskorch.schema'::regclass \gset
SELECT taskorch.validate(pairs(14), '{"$ref": "dag-14"}') AS dag_checks;
-- dag-14 ... dag-0: 15 schemas, one read each
SELECT seq_scan + coalesce(idx_scan, 0) - :reads AS schema_reads FROM pg_stat_xact_user_tables
 WHERE relid = 'taskorch.schema'::regclass;
-- a failure reached through many $ref paths is reported once
SELECT taskorch.validate(jsonb_set(pairs(14), '{1,0,1,0,1,0,1,0,1,0,1,0,1,0}', '"x"'),
						 '{"$ref": "dag-14"}') AS dag_failure_once;
COMMIT;

-- a task's payload_schema: a bad payload is refused, with no run made
CREATE FUNCTION media_task(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	IF payload ? 'bad_output' THEN
		RETURN jsonb_build_object('url', 42);
	ELSIF payload ? 'fp_failure' THEN
		RETURN jsonb_build_object('success', false, 'error', 'upstream said no');
	END IF;
	RETURN jsonb_build_object('url', payload->>'url');
END $$;
SELECT taskorch.register_task('extract-audio', 'media_task(jsonb)', max_attempts => 1,
	payload_schema => '{"$ref": "base-input", "properties": {"url": {"type": "string", "pattern": "^https://"}},
						"required": ["url"]}',
	output_schema => '{"type": "object", "required": ["url"], "properties": {"url": {"type": "string"}}}');
SELECT payload_schema->'required' AS payload_required, output_schema IS NOT NULL AS has_output_schema
  FROM taskorch.tasks WHERE id = 'extract-audio';
SELECT count(*) AS runs_before FROM taskorch.run \gset
SELECT taskorch.trigger('extract-audio', '{"tenantId": "t", "projectId": "p", "url": "ftp://x"}');
SELECT taskorch.trigger('extract-audio', '{"url": "https://x"}');
SELECT taskorch.batch_trigger('extract-audio', '[{"payload": {"tenantId": "t", "projectId": "p", "url": "https://a"}},
												 {"payload": {"tenantId": "t", "url": "https://b"}}]');
SELECT count(*) - :runs_before AS runs_made FROM taskorch.run;
SELECT taskorch.register_task('broken', 'media_task(jsonb)', payload_schema => '{"type": "obj"}');
-- a good payload runs; the output is checked on completion
SELECT taskorch.trigger('extract-audio', '{"tenantId": "t", "projectId": "p", "url": "https://ok"}') AS good \gset
SELECT taskorch.trigger('extract-audio', '{"tenantId": "t", "projectId": "p", "url": "https://x", "bad_output": 1}') AS bad \gset
SELECT taskorch.trigger('extract-audio', '{"tenantId": "t", "projectId": "p", "url": "https://x", "fp_failure": 1}') AS fp \gset
SELECT wait_for_runs();
SELECT status, output FROM taskorch.runs WHERE id = :'good';
SELECT status, error->>'message' AS error, error->>'detail' AS detail FROM taskorch.runs_wide WHERE id = :'bad';
-- an FP Result failure is the run's own error, not a schema failure
SELECT status, error->>'message' AS error FROM taskorch.runs_wide WHERE id = :'fp';

-- a schema in use cannot be dropped; only its owner may change it
SELECT taskorch.drop_schema('base-input');
CREATE ROLE schema_stranger;
SET ROLE schema_stranger;
SELECT taskorch.define_schema('base-input', 'true');
SELECT taskorch.drop_schema('base-input');
RESET ROLE;
DROP ROLE schema_stranger;
SELECT taskorch.unregister_task('extract-audio');
SELECT taskorch.drop_schema('base-input');
SELECT taskorch.drop_schema('base-input');
DO $$
BEGIN
	FOR i IN REVERSE 14..0 LOOP
		PERFORM taskorch.drop_schema('dag-' || i);
	END LOOP;
END $$;
SELECT taskorch.drop_schema(s) FROM unnest(ARRAY['cyc-c', 'cyc-b', 'cyc-a']) s;
SELECT count(*) AS schemas_left FROM taskorch.schemas;
