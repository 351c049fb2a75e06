------------------------------------------------------------------------------
-- Tracks and orchestrators (seeds 001, 002, 004): tasks whose run runs
-- other tasks, sequentially (a track's steps) or in parallel (an
-- orchestrator's members), by durable waits; and their job status,
-- derived from the runs.  None of these functions is SECURITY DEFINER: they
-- run as the caller (definitions) or as the task's owner (runners), and
-- resolve the mappers and queries they are given under that role's
-- search_path.
------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION taskorch._next_wait_result() RETURNS jsonb
	LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'taskorch_next_wait_result';
CREATE OR REPLACE FUNCTION taskorch._replaying() RETURNS bool
	LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'taskorch_replaying';

-- A declarative input: the template with every string "$.prev..." or
-- "$.input..." replaced by that JSON path's value in {prev, input}.
CREATE OR REPLACE FUNCTION taskorch.fill_template(template jsonb, prev jsonb, input jsonb) RETURNS jsonb
	LANGUAGE sql STABLE
	AS $$
	SELECT CASE jsonb_typeof(template)
		WHEN 'object' THEN (SELECT coalesce(jsonb_object_agg(key, taskorch.fill_template(value, prev, input)), '{}')
							  FROM jsonb_each(template))
		WHEN 'array' THEN (SELECT coalesce(jsonb_agg(taskorch.fill_template(value, prev, input) ORDER BY n), '[]')
							 FROM jsonb_array_elements(template) WITH ORDINALITY AS e(value, n))
		WHEN 'string' THEN CASE WHEN template #>> '{}' ~ '^\$\.(prev|input)\M'
								THEN jsonb_path_query_first(jsonb_build_object('prev', prev, 'input', input),
															(template #>> '{}')::jsonpath)
								ELSE template END
		ELSE template END $$;

-- Check and normalise the steps (or members) of a definition: each has a
-- task that exists, a unique name (default: the task), and at most one of
-- input_mapper (a function (prev jsonb, input jsonb) -> jsonb the caller may
-- execute, kept as its signature) and input (a template).
CREATE OR REPLACE FUNCTION taskorch._check_steps(what text, steps jsonb) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	AS $$
DECLARE
	step jsonb;
	i int := 0;
	names text[] := '{}';
	name text;
	mapper regprocedure;
	out jsonb := '[]';
BEGIN
	IF jsonb_typeof(steps) IS DISTINCT FROM 'array' OR jsonb_array_length(steps) = 0 THEN
		RAISE EXCEPTION '% must be a non-empty JSON array', what
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass [{"task": "first-task"}, {"task": "second-task", "input_mapper": "map_step(jsonb,jsonb)"}].';
	END IF;
	FOR step IN SELECT value FROM jsonb_array_elements(steps) LOOP
		IF jsonb_typeof(step) <> 'object' OR jsonb_typeof(step->'task') IS DISTINCT FROM 'string' THEN
			RAISE EXCEPTION '% item % must be an object with a "task"', what, i
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'An item is {"task": ..., "name": ..., "input_mapper": ... or "input": ...}.';
		END IF;
		IF EXISTS (SELECT FROM jsonb_object_keys(step) k
					WHERE k NOT IN ('task', 'name', 'input_mapper', 'input')) THEN
			RAISE EXCEPTION '% item % has an unknown key: %', what, i,
				(SELECT string_agg(k, ', ') FROM jsonb_object_keys(step) k
				  WHERE k NOT IN ('task', 'name', 'input_mapper', 'input'))
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Keys are task, name, input_mapper and input.';
		END IF;
		IF NOT EXISTS (SELECT FROM taskorch.task t WHERE t.id = step->>'task') THEN
			RAISE EXCEPTION '% item %: task "%" is not registered', what, i, step->>'task'
				USING ERRCODE = 'undefined_object',
					  HINT = 'Register the task first; taskorch.tasks lists the tasks.';
		END IF;
		name := coalesce(step->>'name', step->>'task');
		IF name = ANY (names) THEN
			RAISE EXCEPTION '% item %: name "%" is used twice', what, i, name
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Give the items that run the same task distinct "name"s.';
		END IF;
		names := names || name;
		IF step ? 'input_mapper' AND step ? 'input' THEN
			RAISE EXCEPTION '% item % has both input_mapper and input', what, i
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Map the input with a function or with a template, not both.';
		END IF;
		step := jsonb_build_object('name', name, 'task', step->'task')
				|| CASE WHEN step ? 'input' THEN jsonb_build_object('input', step->'input') ELSE '{}' END;
		IF steps->i ? 'input_mapper' THEN
			BEGIN
				mapper := (steps->i->>'input_mapper')::regprocedure;
			EXCEPTION WHEN undefined_function OR invalid_text_representation OR undefined_object
					   OR invalid_schema_name THEN
				RAISE EXCEPTION '% item %: input_mapper "%" is not a function', what, i,
					steps->i->>'input_mapper'
					USING ERRCODE = 'undefined_function',
						  HINT = 'Name it by signature, as "map_step(jsonb,jsonb)": a function (prev_output jsonb, original_input jsonb) returning jsonb.';
			END;
			IF (SELECT p.prorettype <> 'jsonb'::regtype OR p.pronargs <> 2
					   OR p.proargtypes[0] <> 'jsonb'::regtype OR p.proargtypes[1] <> 'jsonb'::regtype
				  FROM pg_proc p WHERE p.oid = mapper) THEN
				RAISE EXCEPTION '% item %: input_mapper % must take (jsonb, jsonb) and return jsonb', what, i, mapper
					USING ERRCODE = 'invalid_function_definition',
						  HINT = 'Define it as CREATE FUNCTION map_step(prev jsonb, input jsonb) RETURNS jsonb.';
			END IF;
			IF NOT has_function_privilege(mapper, 'EXECUTE') THEN
				RAISE EXCEPTION 'permission denied for input_mapper %', mapper
					USING ERRCODE = 'insufficient_privilege',
						  HINT = 'The track runs as you: you must be allowed to execute its mappers.';
			END IF;
			-- kept schema-qualified: the runner resolves it under its own search_path
			step := step || jsonb_build_object('input_mapper',
				(SELECT format('%I.%I(%s)', n.nspname, p.proname, oidvectortypes(p.proargtypes))
				   FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.oid = mapper));
		END IF;
		out := out || jsonb_build_array(step);
		i := i + 1;
	END LOOP;
	RETURN out;
END
$$;

-- The input of a step: mapped from the previous output and the original
-- input, and carrying trampData unless the mapping set it.
CREATE OR REPLACE FUNCTION taskorch._step_input(step jsonb, prev jsonb, input jsonb, tramp jsonb, first bool)
	RETURNS jsonb
	LANGUAGE plpgsql
	AS $$
DECLARE
	result jsonb;
	mapper regprocedure := (step->>'input_mapper')::regprocedure;
BEGIN
	IF mapper IS NOT NULL THEN
		EXECUTE format('SELECT %s($1, $2)', (SELECT format('%I.%I', n.nspname, p.proname)
											   FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
											  WHERE p.oid = mapper))
			INTO result USING prev, input;
	ELSIF step ? 'input' THEN
		result := taskorch.fill_template(step->'input', prev, input);
	ELSIF first THEN
		result := input;
	ELSE
		result := prev;
	END IF;
	result := coalesce(result, '{}');
	IF tramp IS NOT NULL AND jsonb_typeof(result) = 'object' AND NOT result ? 'trampData' THEN
		result := result || jsonb_build_object('trampData', tramp);
	END IF;
	RETURN result;
END
$$;

-- Why a step could not be triggered with `input` (NULL: it can): its task
-- is not one the track's owner may trigger, or the input fails its schema.
CREATE OR REPLACE FUNCTION taskorch._step_refusal(task text, input jsonb) RETURNS text
	LANGUAGE plpgsql STABLE
	AS $$
DECLARE
	schema jsonb;
	failures text[];
BEGIN
	SELECT t.payload_schema INTO schema FROM taskorch.task t WHERE t.id = task;
	IF NOT FOUND THEN
		RETURN format('task "%s" is not registered (or may not be triggered by this track''s owner)', task);
	END IF;
	IF schema IS NULL THEN
		RETURN NULL;
	END IF;
	failures := taskorch.validate(input, schema);
	IF cardinality(failures) = 0 THEN
		RETURN NULL;
	END IF;
	RETURN format('payload of task "%s" does not match its schema: %s', task, failures[1]);
END
$$;

-- A child's Result, handed on the same way everywhere (track steps,
-- orchestrator members, traverse rows): {ok, output | error}, where the
-- output of a completed FP Result {success: true, data, ...} is its data.
-- (Whether an output is a failure was decided when the child's run ended:
-- taskorch._result_error(), docs/runs.md.)
CREATE OR REPLACE FUNCTION taskorch._unwrap(result jsonb) RETURNS jsonb
	LANGUAGE sql IMMUTABLE
	AS $$
	SELECT CASE
		WHEN NOT (result->>'ok')::bool THEN jsonb_build_object('ok', false, 'error', result->'error')
		WHEN jsonb_typeof(result->'output'->'success') = 'boolean' AND result->'output' ? 'data'
			THEN jsonb_build_object('ok', true, 'output', result->'output'->'data')
		ELSE jsonb_build_object('ok', true, 'output', result->'output') END $$;

-- The definition of the composite the current run runs, its input checked
-- for the base fields if it declares them (a failure is not retried).
CREATE OR REPLACE FUNCTION taskorch._definition(kind text, input jsonb) RETURNS taskorch.composite
	LANGUAGE plpgsql
	AS $$
DECLARE
	me text := taskorch.current_run()->>'taskIdentifier';
	def taskorch.composite;
	failures text[];
BEGIN
	IF me IS NULL THEN
		RAISE EXCEPTION 'taskorch.run_%() runs the run of a %, inside a task', kind, kind
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = format('Trigger the %s with taskorch.trigger(<its name>, <input>).', kind);
	END IF;
	SELECT * INTO def FROM taskorch.composite c WHERE c.name = me AND c.kind = _definition.kind;
	IF NOT FOUND THEN
		PERFORM taskorch.abort(format('"%s" is not a defined %s', me, kind),
							   format('Define it with taskorch.define_%s().', kind));
	END IF;
	IF def.base_fields THEN
		failures := taskorch.validate(input, '{
			"type": "object", "required": ["tenantId", "projectId"],
			"properties": {"tenantId": {"type": "string", "minLength": 1},
						   "projectId": {"type": "string", "minLength": 1},
						   "userId": {"type": "string"},
						   "trampData": {"type": "object"}}}');
		IF cardinality(failures) > 0 THEN
			PERFORM taskorch.abort('the input lacks its base fields: ' || array_to_string(failures, '; '),
								   'A track declaring base fields needs tenantId and projectId (strings), and optionally userId.');
		END IF;
	END IF;
	RETURN def;
END
$$;

-- The runner of every track: its steps in order, each a child run it waits
-- for.  The track's output is the envelope {job, results, metadata,
-- trampData}; a failed step stops it (FAILED, the envelope in its error)
-- unless it continues on failure, when it fails only if every step did.
CREATE OR REPLACE FUNCTION taskorch.run_track(payload jsonb) RETURNS jsonb
	LANGUAGE plpgsql
	AS $$
DECLARE
	me jsonb := taskorch.current_run();
	def taskorch.composite;
	step jsonb;
	n int := 0;
	prev jsonb;
	tramp jsonb := payload->'trampData';
	results jsonb := '{}';
	errors jsonb := '[]';
	r jsonb;
	res jsonb;
	input jsonb;
	refusal text;
	envelope jsonb;
BEGIN
	def := taskorch._definition('track', payload);
	FOR step IN SELECT value FROM jsonb_array_elements(def.steps) LOOP
		-- an earlier execution ran this step: its wait's result, taking its place
		r := taskorch._next_wait_result();
		IF r IS NULL THEN
			input := taskorch._step_input(step, prev, payload, tramp, n = 0);
			refusal := taskorch._step_refusal(step->>'task', input);
			IF refusal IS NULL THEN
				PERFORM taskorch.log('info', format('step %s (%s) started', step->>'name', step->>'task'),
									 jsonb_build_object('step', step->>'name', 'index', n));
				r := taskorch.trigger_and_wait(step->>'task', input);
			ELSE
				-- the step cannot run: it fails, and a wait that is already over
				-- keeps its place among the run's waits
				PERFORM taskorch.wait_until('-infinity');
				r := taskorch._result('FAILED', NULL, step->>'task', NULL,
									  jsonb_build_object('message', refusal));
			END IF;
		END IF;
		res := taskorch._unwrap(r);
		IF (res->>'ok')::bool THEN
			prev := res->'output';
			results := results || jsonb_build_object(step->>'name', prev);
			IF jsonb_typeof(prev->'trampData') = 'object' THEN
				tramp := prev->'trampData';
			END IF;
		ELSE
			errors := errors || jsonb_build_array(jsonb_build_object(
				'step', step->>'name', 'task', step->>'task', 'runId', r->'id', 'error', res->'error'));
		END IF;
		IF NOT taskorch._replaying() THEN
			PERFORM taskorch.log(CASE WHEN (res->>'ok')::bool THEN 'info' ELSE 'error' END,
								 format('step %s (%s) %s', step->>'name', step->>'task',
										CASE WHEN (res->>'ok')::bool THEN 'completed' ELSE 'failed' END),
								 jsonb_build_object('step', step->>'name', 'index', n, 'runId', r->'id'));
		END IF;
		n := n + 1;
		EXIT WHEN NOT (res->>'ok')::bool AND NOT def.continue_on_failure;
	END LOOP;
	envelope := jsonb_build_object(
		'job', jsonb_build_object('success', jsonb_array_length(errors) = 0, 'taskName', def.name,
								  'runId', me->'id', 'input', payload)
			   || CASE WHEN jsonb_array_length(errors) > 0
					   THEN jsonb_build_object('error', errors->0->'error'->>'message') ELSE '{}' END,
		'results', results,
		'metadata', jsonb_build_object('steps', jsonb_array_length(def.steps),
									   'completed', (SELECT count(*) FROM jsonb_object_keys(results)),
									   'failed', jsonb_array_length(errors), 'errors', errors),
		'trampData', tramp);
	-- a step failed: the track's run fails (an FP failure, the envelope in
	-- its data); its job is Partial when other steps completed (jobs.sql)
	IF jsonb_array_length(errors) > 0 THEN
		RETURN jsonb_build_object('success', false, 'data', envelope,
			'error', format('step %s (%s) failed: %s', errors->0->>'step', errors->0->>'task',
							errors->0->'error'->>'message'));
	END IF;
	RETURN envelope;
END
$$;
GRANT EXECUTE ON FUNCTION taskorch.run_track(jsonb) TO PUBLIC;

-- The runner of every orchestrator: its members in parallel (one batch
-- wait), or for a traverse orchestrator the rows of a query, a page at a
-- time.  The output is {success, processed, failed, results, errors}.
CREATE OR REPLACE FUNCTION taskorch.run_orchestrator(payload jsonb) RETURNS jsonb
	LANGUAGE plpgsql
	AS $$
DECLARE
	def taskorch.composite;
	runs jsonb;
	results jsonb := '{}';
	errors jsonb := '[]';
	r record;
	res jsonb;
	page jsonb;
	processed bigint := 0;
	failed bigint := 0;
	pages int := 0;
	out jsonb;
BEGIN
	def := taskorch._definition('orchestrator', payload);
	IF def.steps->0 ? 'query' THEN
		LOOP
			page := taskorch.traverse(def.steps->0->>'query', def.steps->0->>'task',
									  (def.steps->0->>'page_size')::int, pages);
			processed := processed + (page->>'processed')::int;
			failed := failed + (page->>'failed')::int;
			errors := errors || (page->'errors');
			pages := pages + 1;
			EXIT WHEN NOT (page->>'has_more')::bool;
		END LOOP;
		out := jsonb_build_object('success', failed = 0, 'processed', processed, 'failed', failed,
								  'pages', pages, 'results', '{}'::jsonb, 'errors', errors);
	ELSE
		runs := taskorch.batch_trigger_and_wait(
			(SELECT jsonb_agg(jsonb_build_object('task', m->>'task',
						'payload', taskorch._step_input(m, NULL, payload, payload->'trampData', true))
					 ORDER BY n)
			   FROM jsonb_array_elements(def.steps) WITH ORDINALITY AS e(m, n)))->'runs';
		FOR r IN SELECT m, runs->(n::int - 1) AS result
				   FROM jsonb_array_elements(def.steps) WITH ORDINALITY AS e(m, n) ORDER BY n LOOP
			res := taskorch._unwrap(r.result);
			IF (res->>'ok')::bool THEN
				processed := processed + 1;
				results := results || jsonb_build_object(r.m->>'name', res->'output');
			ELSE
				failed := failed + 1;
				errors := errors || jsonb_build_array(jsonb_build_object(
					'member', r.m->>'name', 'task', r.m->>'task', 'runId', r.result->'id',
					'error', res->'error'));
			END IF;
		END LOOP;
		out := jsonb_build_object('success', failed = 0, 'processed', processed, 'failed', failed,
								  'results', results, 'errors', errors);
	END IF;
	-- a member failed: the orchestrator's run fails (an FP failure, the
	-- aggregate in its data); its job is Partial when others completed
	IF failed > 0 THEN
		RETURN jsonb_build_object('success', false, 'data', out,
								  'error', format('%s of %s failed', failed, processed + failed));
	END IF;
	RETURN out;
END
$$;
GRANT EXECUTE ON FUNCTION taskorch.run_orchestrator(jsonb) TO PUBLIC;

-- Inside a task, the traverse pattern: run `task` over page `page` (from
-- 0) of the rows of `query` (page_size rows; give the query an ORDER BY),
-- each row's payload column a child; successes and failures apart.
CREATE OR REPLACE FUNCTION taskorch.traverse(query text, task text, page_size int DEFAULT 100, page int DEFAULT 0)
	RETURNS jsonb
	LANGUAGE plpgsql
	AS $$
DECLARE
	runs jsonb;
	successes jsonb;
	failures jsonb;
BEGIN
	IF page_size IS NULL OR page_size < 1 OR page_size > 100000 THEN
		RAISE EXCEPTION 'page_size must be between 1 and 100000, not %', page_size
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass the number of rows to process per page, such as 100.';
	END IF;
	IF page IS NULL OR page < 0 THEN
		RAISE EXCEPTION 'page must be 0 or more, not %', page
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Pages count from 0.';
	END IF;
	runs := taskorch.batch_trigger_and_wait_query(
		format('SELECT * FROM (%s) AS rows LIMIT %s OFFSET %s', query, page_size,
			   page::bigint * page_size), task)->'runs';
	-- successes {runId, output}; failures {runId, item (the row's payload), error}
	SELECT coalesce(jsonb_agg(jsonb_build_object('runId', r->'id', 'output', u->'output') ORDER BY n)
						FILTER (WHERE (u->>'ok')::bool), '[]'),
		   coalesce(jsonb_agg(jsonb_build_object('runId', r->'id', 'error', u->'error', 'item',
									(SELECT c.payload FROM taskorch.run c WHERE c.id = r->>'id')) ORDER BY n)
						FILTER (WHERE NOT (u->>'ok')::bool), '[]')
	  INTO successes, failures
	  FROM jsonb_array_elements(runs) WITH ORDINALITY AS e(r, n), taskorch._unwrap(r) AS u;
	RETURN jsonb_build_object(
		'success', jsonb_array_length(failures) = 0,
		'processed', jsonb_array_length(successes),
		'failed', jsonb_array_length(failures),
		'has_more', jsonb_array_length(runs) = page_size,
		'successes', successes,
		'errors', failures);
END
$$;

-- Errors unless the query's rows can be the items of a batch of task.
CREATE OR REPLACE FUNCTION taskorch.check_items_query(query text, task text DEFAULT NULL) RETURNS void
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_check_items_query';

-- Register (or redefine) a composite's task and definition.
CREATE OR REPLACE FUNCTION taskorch._define_composite(kind text, name text, steps jsonb,
										   continue_on_failure bool, base_fields bool,
										   queue text, payload_schema jsonb, output_schema jsonb,
										   on_success text, on_failure text, description text)
	RETURNS text
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	fn regprocedure := CASE kind WHEN 'track' THEN 'taskorch.run_track(jsonb)'
								 ELSE 'taskorch.run_orchestrator(jsonb)' END;
	existing regprocedure;
	cycle text[];
BEGIN
	-- a composite that reaches itself through its steps would run forever
	WITH RECURSIVE reach(task, path) AS (
		SELECT s->>'task', ARRAY[name, s->>'task'] FROM jsonb_array_elements(steps) s
		UNION ALL
		SELECT s->>'task', r.path || (s->>'task')
		  FROM reach r JOIN taskorch.composite c ON c.name = r.task
			   CROSS JOIN jsonb_array_elements(c.steps) s
		 WHERE r.task <> _define_composite.name AND cardinality(r.path) < 64
	)
	SELECT path INTO cycle FROM reach WHERE task = _define_composite.name LIMIT 1;
	IF cycle IS NOT NULL THEN
		RAISE EXCEPTION '% "%" would run itself: %', kind, name, array_to_string(cycle, ' -> ')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'A track or orchestrator runs other tasks; none of them may lead back to it.';
	END IF;
	SELECT t.fn INTO existing FROM taskorch.task t WHERE t.id = name;
	IF FOUND AND existing <> fn THEN
		RAISE EXCEPTION 'task "%" exists and is not a %', name, replace(kind, '_', ' ')
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Pick another name, or unregister the task first.';
	END IF;
	PERFORM taskorch.register_task(name, fn, queue => queue, max_attempts => 1,
								   description => description, payload_schema => payload_schema,
								   output_schema => output_schema, on_success => on_success,
								   on_failure => on_failure);
	PERFORM taskorch._write_composite(name, kind, steps, continue_on_failure, base_fields);
	RETURN name;
END
$$;

-- The definition's row; the table's policies let only the task's owner write it.
CREATE OR REPLACE FUNCTION taskorch._write_composite(name text, kind text, steps jsonb,
										  continue_on_failure bool, base_fields bool)
	RETURNS void
	LANGUAGE sql
	SET search_path = pg_catalog, pg_temp
	AS $$
	INSERT INTO taskorch.composite AS c VALUES (name, kind, steps, continue_on_failure, base_fields)
	ON CONFLICT ON CONSTRAINT composite_pkey DO UPDATE
	   SET kind = EXCLUDED.kind, steps = EXCLUDED.steps,
		   continue_on_failure = EXCLUDED.continue_on_failure, base_fields = EXCLUDED.base_fields $$;

CREATE OR REPLACE FUNCTION taskorch.define_track(name text, steps jsonb,
									  continue_on_failure bool DEFAULT false,
									  base_fields bool DEFAULT false,
									  queue text DEFAULT NULL,
									  payload_schema jsonb DEFAULT NULL,
									  output_schema jsonb DEFAULT NULL,
									  on_success text DEFAULT NULL,
									  on_failure text DEFAULT NULL,
									  description text DEFAULT NULL)
	RETURNS text
	LANGUAGE plpgsql
	AS $$
BEGIN
	RETURN taskorch._define_composite('track', name, taskorch._check_steps('steps', steps),
		coalesce(continue_on_failure, false), coalesce(base_fields, false), queue,
		payload_schema, output_schema, on_success, on_failure, description);
END
$$;

CREATE OR REPLACE FUNCTION taskorch.define_orchestrator(name text, members jsonb DEFAULT NULL,
											 traverse jsonb DEFAULT NULL,
											 base_fields bool DEFAULT false,
											 queue text DEFAULT NULL,
											 payload_schema jsonb DEFAULT NULL,
											 output_schema jsonb DEFAULT NULL,
											 on_success text DEFAULT NULL,
											 on_failure text DEFAULT NULL,
											 description text DEFAULT NULL)
	RETURNS text
	LANGUAGE plpgsql
	AS $$
DECLARE
	steps jsonb;
BEGIN
	IF (members IS NULL) = (traverse IS NULL) THEN
		RAISE EXCEPTION 'an orchestrator has members or traverse, one of the two'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'members => ''[{"task": "AUDIO_TRACK"}, {"task": "VIDEO_TRACK"}]'', or traverse => ''{"query": ..., "task": ..., "page_size": 100}''.';
	END IF;
	IF members IS NOT NULL THEN
		steps := taskorch._check_steps('members', members);
	ELSE
		IF jsonb_typeof(traverse) <> 'object' OR jsonb_typeof(traverse->'query') IS DISTINCT FROM 'string'
		   OR jsonb_typeof(traverse->'task') IS DISTINCT FROM 'string'
		   OR EXISTS (SELECT FROM jsonb_object_keys(traverse) k WHERE k NOT IN ('query', 'task', 'page_size', 'name')) THEN
			RAISE EXCEPTION 'traverse must be {"query": ..., "task": ..., "page_size": ...}, not %', traverse
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'The query''s rows (a payload column, in a fixed ORDER BY) are run by the task, page_size at a time.';
		END IF;
		IF jsonb_typeof(traverse->'page_size') IS DISTINCT FROM 'number' AND traverse ? 'page_size'
		   OR coalesce((traverse->>'page_size')::numeric, 100) NOT BETWEEN 1 AND 100000 THEN
			RAISE EXCEPTION 'traverse page_size must be a number from 1 to 100000, not %', traverse->'page_size'
				USING ERRCODE = 'invalid_parameter_value', HINT = 'Such as 100.';
		END IF;
		PERFORM taskorch.check_items_query(traverse->>'query', traverse->>'task');
		steps := jsonb_build_array(jsonb_build_object(
			'name', coalesce(traverse->>'name', traverse->>'task'), 'task', traverse->'task',
			'query', traverse->'query', 'page_size', coalesce((traverse->>'page_size')::int, 100)));
	END IF;
	RETURN taskorch._define_composite('orchestrator', name, steps, false,
		coalesce(base_fields, false), queue, payload_schema, output_schema, on_success,
		on_failure, description);
END
$$;
