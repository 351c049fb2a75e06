------------------------------------------------------------------------------
-- Run metadata, from inside a task (Trigger.dev's metadata.set/append/...)
-- Changes are kept whatever the attempt's outcome, and other sessions see
-- them in taskorch.runs while the run executes.
------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION taskorch.metadata() RETURNS jsonb
	LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'taskorch_metadata';
CREATE OR REPLACE FUNCTION taskorch.metadata_replace(metadata jsonb) RETURNS jsonb
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_metadata_replace';
CREATE OR REPLACE FUNCTION taskorch.metadata_set(key text, value jsonb) RETURNS jsonb
	LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
	AS $$ SELECT taskorch.metadata_replace(taskorch.metadata() || jsonb_build_object(key, value)) $$;
CREATE OR REPLACE FUNCTION taskorch.metadata_del(key text) RETURNS jsonb
	LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
	AS $$ SELECT taskorch.metadata_replace(taskorch.metadata() - key) $$;
-- Append to the array at key (a scalar there becomes the array's first element).
CREATE OR REPLACE FUNCTION taskorch.metadata_append(key text, value jsonb) RETURNS jsonb
	LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT taskorch.metadata_replace(m || jsonb_build_object(key,
		CASE WHEN jsonb_typeof(m->key) = 'array' THEN (m->key) || jsonb_build_array(value)
			 WHEN m ? key THEN jsonb_build_array(m->key, value)
			 ELSE jsonb_build_array(value) END))
	  FROM (SELECT taskorch.metadata() AS m) s $$;
-- Remove every element equal to value from the array at key.
CREATE OR REPLACE FUNCTION taskorch.metadata_remove(key text, value jsonb) RETURNS jsonb
	LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT taskorch.metadata_replace(m || jsonb_build_object(key,
		coalesce((SELECT jsonb_agg(e) FROM jsonb_array_elements(
					CASE WHEN jsonb_typeof(m->key) = 'array' THEN m->key ELSE '[]' END) e
				   WHERE e <> value), '[]')))
	  FROM (SELECT taskorch.metadata() AS m) s $$;
-- Add by (default 1) to the number at key (missing: 0).
CREATE OR REPLACE FUNCTION taskorch.metadata_increment(key text, by numeric DEFAULT 1) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	m jsonb := taskorch.metadata();
BEGIN
	IF by IS NULL OR by IN ('NaN', 'Infinity', '-Infinity') THEN
		RAISE EXCEPTION 'metadata increment must be a finite number, not %', coalesce(by::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass a number such as 1 or -2.5.';
	END IF;
	IF m ? key AND jsonb_typeof(m->key) <> 'number' THEN
		RAISE EXCEPTION 'metadata key "%" holds %, not a number', key, jsonb_typeof(m->key)
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Increment a key that holds a number, or a new key.';
	END IF;
	RETURN taskorch.metadata_replace(m || jsonb_build_object(key, coalesce((m->>key)::numeric, 0) + by));
END
$$;
