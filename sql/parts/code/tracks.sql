------------------------------------------------------------------------------
-- Tracks and orchestrators (seeds 001, 002, 004): tasks whose run runs
-- other tasks, sequentially (a track's steps) or in parallel (an
-- orchestrator's members), by durable waits; and their job status,
-- derived from the runs.  None of these functions is SECURITY DEFINER: they
-- run as the caller (definitions) or as the task's owner (runners), and
-- resolve the mappers and queries they are given under that role's
-- search_path.
------------------------------------------------------------------------------
-- A composite's checkpoints (waits.c, wait_children.c): its latest that is
-- over, {key, state, result}; and the wait for a step under its key (a
-- track's step: task with payload; a traverse page: task over a query).
CREATE OR REPLACE FUNCTION taskorch_internal.last_checkpoint() RETURNS jsonb
	LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'taskorch_last_checkpoint';
CREATE OR REPLACE FUNCTION taskorch_internal.wait_checkpoint(step int, key text, state jsonb, task text,
													 payload jsonb DEFAULT NULL, query text DEFAULT NULL)
	RETURNS jsonb
	LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'taskorch_wait_checkpoint';

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
CREATE OR REPLACE FUNCTION taskorch_internal.check_steps(what text, steps jsonb) RETURNS jsonb
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

-- trampData carried into a step's input (an object), unless the input sets it
CREATE OR REPLACE FUNCTION taskorch_internal.with_tramp(input jsonb, tramp jsonb) RETURNS jsonb
	LANGUAGE sql STABLE
	AS $$
	SELECT CASE WHEN coalesce(jsonb_typeof(tramp), 'null') <> 'null'
					 AND jsonb_typeof(coalesce(input, '{}')) = 'object'
					 AND NOT coalesce(input, '{}') ? 'trampData'
				THEN coalesce(input, '{}') || jsonb_build_object('trampData', tramp)
				ELSE coalesce(input, '{}') END $$;

-- The input of a step without a mapper: its template filled, or the
-- original input (first step), or the previous output; with trampData.
CREATE OR REPLACE FUNCTION taskorch_internal.step_declared_input(step jsonb, prev jsonb, input jsonb, tramp jsonb,
														 first bool) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	AS $$
DECLARE
	result jsonb := CASE WHEN step ? 'input' THEN taskorch.fill_template(step->'input', prev, input)
						 WHEN first THEN input ELSE prev END;
BEGIN
	RETURN taskorch_internal.with_tramp(result, tramp);
END
$$;

-- The input of a step: mapped from the previous output and the original
-- input, and carrying trampData unless the mapping set it.  A mapper is
-- user code (the runner calls it, as the track's owner); the rest is
-- _step_declared_input's.
CREATE OR REPLACE FUNCTION taskorch_internal.step_input(step jsonb, prev jsonb, input jsonb, tramp jsonb, first bool)
	RETURNS jsonb
	LANGUAGE plpgsql
	AS $$
DECLARE
	result jsonb;
	mapper regprocedure := (step->>'input_mapper')::regprocedure;
BEGIN
	IF mapper IS NULL THEN
		RETURN taskorch_internal.step_declared_input(step, prev, input, tramp, first);
	END IF;
	EXECUTE format('SELECT %s($1, $2)', (SELECT format('%I.%I', n.nspname, p.proname)
										   FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
										  WHERE p.oid = mapper))
		INTO result USING prev, input;
	RETURN taskorch_internal.with_tramp(result, tramp);
END
$$;

-- Why a step could not be triggered with `input` (NULL: it can): its task
-- is not one the track's owner may trigger, or the input fails its schema.
CREATE OR REPLACE FUNCTION taskorch_internal.step_refusal(task text, input jsonb) RETURNS text
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

-- The output a completed child hands on (track steps, orchestrator
-- members, traverse rows): the data of an FP Result {success: true, data,
-- ...}, else its output as is.  (Whether an output is a failure was
-- decided when the child's run ended: taskorch_internal.result_error(),
-- docs/runs.md.)
CREATE OR REPLACE FUNCTION taskorch_internal.handed_on(result jsonb) RETURNS jsonb
	LANGUAGE sql STABLE
	AS $$
	SELECT CASE WHEN jsonb_typeof(result->'output'->'success') = 'boolean' AND result->'output' ? 'data'
				THEN result->'output'->'data' ELSE result->'output' END $$;

-- A child's Result, handed on the same way everywhere: {ok, output | error}.
CREATE OR REPLACE FUNCTION taskorch_internal.unwrap(result jsonb) RETURNS jsonb
	LANGUAGE sql STABLE
	AS $$
	SELECT CASE WHEN NOT (result->>'ok')::bool THEN jsonb_build_object('ok', false, 'error', result->'error')
				ELSE jsonb_build_object('ok', true, 'output', taskorch_internal.handed_on(result)) END $$;
-- The definition of the composite the current run runs, its input checked
-- for the base fields if it declares them (a failure is not retried).
CREATE OR REPLACE FUNCTION taskorch_internal.definition(kind text, input jsonb) RETURNS taskorch.composite
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
	SELECT * INTO def FROM taskorch.composite c WHERE c.name = me AND c.kind = definition.kind;
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

-- What a track carries from step to step, {n, prev, tramp, results,
-- errors, stop}: the number of steps done, the last output, trampData, the
-- outputs by step name, the failures, and whether a failure stopped it.
-- Before the first step:
CREATE OR REPLACE FUNCTION taskorch_internal.track_start(payload jsonb) RETURNS jsonb
	LANGUAGE sql STABLE
	AS $$
	SELECT jsonb_build_object('n', 0, 'tramp', payload->'trampData', 'results', '{}'::jsonb,
							  'errors', '[]'::jsonb, 'stop', false) $$;

-- ...and after step `name` ended with `result` (a Result object).  The one
-- place a step's end changes a track, whoever advances it (its runner, or
-- the engine between steps: tracks.c).  A single expression, so that it is
-- inlined where it is called.
CREATE OR REPLACE FUNCTION taskorch_internal.track_fold(state jsonb, name text, result jsonb,
												continue_on_failure bool) RETURNS jsonb
	LANGUAGE sql STABLE
	AS $$
	SELECT state || jsonb_build_object('n', (state->>'n')::int + 1)
		   || CASE WHEN (result->>'ok')::bool
				   THEN jsonb_build_object('prev', taskorch_internal.handed_on(result),
						'results', state->'results' || jsonb_build_object(name, taskorch_internal.handed_on(result)),
						'tramp', CASE WHEN jsonb_typeof(taskorch_internal.handed_on(result)->'trampData') = 'object'
									  THEN taskorch_internal.handed_on(result)->'trampData' ELSE state->'tramp' END)
				   ELSE jsonb_build_object('stop', NOT continue_on_failure,
						'errors', state->'errors' || jsonb_build_array(jsonb_build_object(
							'step', name, 'task', result->'taskIdentifier', 'runId', result->'id',
							'error', result->'error'))) END $$;

-- The output of a composite (seed 001's task output): the envelope
-- {job: {success, taskName, runId, input, error?}, results, metadata,
-- trampData}, metadata holding the failures as errors [{..., error}].
-- With a failure, it is the data of an FP failure (docs/runs.md): the run
-- fails, and its job is Partial when other steps or members completed.
CREATE OR REPLACE FUNCTION taskorch_internal.envelope(name text, run_id text, input jsonb, results jsonb,
											  metadata jsonb, tramp jsonb, error text) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	AS $$
DECLARE
	errors jsonb := metadata->'errors';
	envelope jsonb := jsonb_build_object(
		'job', jsonb_build_object('success', jsonb_array_length(errors) = 0,
								  'taskName', name, 'runId', run_id, 'input', input)
			   || CASE WHEN jsonb_array_length(errors) > 0
					   THEN jsonb_build_object('error', errors->0->'error'->>'message') ELSE '{}' END,
		'results', results, 'metadata', metadata, 'trampData', tramp);
BEGIN
	IF jsonb_array_length(errors) = 0 THEN
		RETURN envelope;
	END IF;
	RETURN taskorch_internal.fp_failure(name, envelope, error, errors);
END
$$;

-- The output of a track that ran its steps.
CREATE OR REPLACE FUNCTION taskorch_internal.track_output(def taskorch.composite, state jsonb, payload jsonb,
												  run_id text) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	AS $$
BEGIN
	RETURN taskorch_internal.envelope(def.name, run_id, payload, state->'results',
		jsonb_build_object('steps', jsonb_array_length(def.steps),
						   'completed', (SELECT count(*) FROM jsonb_object_keys(state->'results')),
						   'failed', jsonb_array_length(state->'errors'), 'errors', state->'errors'),
		state->'tramp',
		format('step %s (%s) failed: %s', state->'errors'->0->>'step', state->'errors'->0->>'task',
			   state->'errors'->0->'error'->>'message'));
END
$$;-- The runner of every track.  Each step is a child run it waits for at a
-- checkpoint keyed by the step's name, carrying the track's state; it
-- resumes from its latest checkpoint, never from the top.  Between steps
-- the engine usually runs the next step itself (tracks.c): the runner
-- executes at the start, at the end, and for a step whose input a mapper
-- makes (user code, run here as the track's owner).
CREATE OR REPLACE FUNCTION taskorch.run_track(payload jsonb) RETURNS jsonb
	LANGUAGE plpgsql
	AS $$
DECLARE
	def taskorch.composite := taskorch_internal.definition('track', payload);
	cp jsonb := taskorch_internal.last_checkpoint();
	state jsonb;
	step jsonb;
	n int;
	input jsonb;
	refusal text;
	r jsonb;
BEGIN
	state := CASE WHEN cp IS NULL THEN taskorch_internal.track_start(payload)
				  ELSE taskorch_internal.track_fold(cp->'state', cp->>'key', cp->'result', def.continue_on_failure) END;
	LOOP
		n := (state->>'n')::int;
		EXIT WHEN (state->>'stop')::bool OR n >= jsonb_array_length(def.steps);
		step := def.steps->n;
		input := taskorch_internal.step_input(step, state->'prev', payload, state->'tramp', n = 0);
		refusal := taskorch_internal.step_refusal(step->>'task', input);
		IF refusal IS NOT NULL THEN
			-- the step cannot run: it fails at once, without a checkpoint
			-- (whose log entries tell the other steps' ends: taskorch.logs)
			r := taskorch_internal.result(taskorch_internal.failed(), NULL, step->>'task', NULL, jsonb_build_object('message', refusal));
			PERFORM taskorch.log(l.level, l.message, l.data)
			   FROM taskorch_internal.step_ended_log(step->>'name', n, r) l;
			state := taskorch_internal.track_fold(state, step->>'name', r, def.continue_on_failure);
		ELSE
			PERFORM taskorch_internal.wait_checkpoint(n, step->>'name', state, step->>'task', input);
		END IF;
	END LOOP;
	RETURN taskorch_internal.track_output(def, state, payload, taskorch.current_run()->>'id');
END
$$;
GRANT EXECUTE ON FUNCTION taskorch.run_track(jsonb) TO PUBLIC;

-- The runner of every orchestrator: its members in parallel (one batch
-- wait), or for a traverse orchestrator the rows of a query, a page at a
-- time.  The output is the envelope (_envelope): results by member, and
-- metadata {members | pages, processed, failed, errors}.
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
	step jsonb;
	cp jsonb;
	state jsonb;
	processed bigint := 0;
	failed bigint := 0;
	pages int := 0;
	metadata jsonb;
BEGIN
	def := taskorch_internal.definition('orchestrator', payload);
	IF def.steps->0 ? 'query' THEN
		-- a page at a time, each a checkpoint ("page_<n>") carrying the
		-- counts so far: it resumes at the page it reached
		step := def.steps->0;
		cp := taskorch_internal.last_checkpoint();
		state := CASE WHEN cp IS NULL
					  THEN jsonb_build_object('pages', 0, 'processed', 0, 'failed', 0,
											  'errors', '[]'::jsonb, 'has_more', true)
					  ELSE taskorch_internal.traverse_fold(cp->'state', cp->'result', (step->>'page_size')::int) END;
		WHILE (state->>'has_more')::bool LOOP
			pages := (state->>'pages')::int;
			PERFORM taskorch_internal.wait_checkpoint(pages, 'page_' || pages, state, step->>'task',
				query => taskorch_internal.page_query(step->>'query', (step->>'page_size')::int, pages));
		END LOOP;
		failed := (state->>'failed')::bigint;
		processed := (state->>'processed')::bigint;
		metadata := jsonb_build_object('pages', (state->>'pages')::int, 'processed', processed,
									   'failed', failed, 'errors', state->'errors');
	ELSE
		runs := taskorch.batch_trigger_and_wait(
			(SELECT jsonb_agg(jsonb_build_object('task', m->>'task',
						'payload', taskorch_internal.step_input(m, NULL, payload, payload->'trampData', true))
					 ORDER BY n)
			   FROM jsonb_array_elements(def.steps) WITH ORDINALITY AS e(m, n)))->'runs';
		FOR r IN SELECT m, runs->(n::int - 1) AS result
				   FROM jsonb_array_elements(def.steps) WITH ORDINALITY AS e(m, n) ORDER BY n LOOP
			res := taskorch_internal.unwrap(r.result);
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
		metadata := jsonb_build_object('members', jsonb_array_length(def.steps), 'processed', processed,
									   'failed', failed, 'errors', errors);
	END IF;
	RETURN taskorch_internal.envelope(def.name, taskorch.current_run()->>'id', payload, results, metadata,
							  payload->'trampData', format('%s of %s failed', failed, processed + failed));
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
	RETURN taskorch_internal.page_outcome(
		taskorch.batch_trigger_and_wait_query(taskorch_internal.page_query(query, page_size, page), task)->'runs',
		page_size);
END
$$;

-- Page `page` (from 0) of a query's rows, page_size rows.
CREATE OR REPLACE FUNCTION taskorch_internal.page_query(query text, page_size int, page int) RETURNS text
	LANGUAGE sql IMMUTABLE
	AS $$ SELECT format('SELECT * FROM (%s) AS rows LIMIT %s OFFSET %s', query, page_size,
						page::bigint * page_size) $$;

-- What a page of a traverse gave, from its runs' Results: successes
-- {runId, output} and failures {runId, item (the row's payload), error},
-- and whether more pages may follow.
CREATE OR REPLACE FUNCTION taskorch_internal.page_outcome(runs jsonb, page_size int) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	AS $$
DECLARE
	successes jsonb;
	failures jsonb;
BEGIN
	SELECT coalesce(jsonb_agg(jsonb_build_object('runId', r->'id', 'output', u->'output') ORDER BY n)
						FILTER (WHERE (u->>'ok')::bool), '[]'),
		   coalesce(jsonb_agg(jsonb_build_object('runId', r->'id', 'error', u->'error', 'item',
									(SELECT c.payload FROM taskorch.run c WHERE c.id = r->>'id')) ORDER BY n)
						FILTER (WHERE NOT (u->>'ok')::bool), '[]')
	  INTO successes, failures
	  FROM jsonb_array_elements(runs) WITH ORDINALITY AS e(r, n), taskorch_internal.unwrap(r) AS u;
	RETURN jsonb_build_object(
		'success', jsonb_array_length(failures) = 0,
		'processed', jsonb_array_length(successes),
		'failed', jsonb_array_length(failures),
		'has_more', jsonb_array_length(runs) = page_size,
		'successes', successes,
		'errors', failures);
END
$$;

-- A traverse orchestrator's counts after a page ended with `result` (its
-- wait's {"runs": [...]}).
CREATE OR REPLACE FUNCTION taskorch_internal.traverse_fold(state jsonb, result jsonb, page_size int) RETURNS jsonb
	LANGUAGE sql STABLE
	AS $$
	SELECT state || jsonb_build_object('pages', (state->>'pages')::int + 1,
			'processed', (state->>'processed')::bigint + (page->>'processed')::int,
			'failed', (state->>'failed')::bigint + (page->>'failed')::int,
			'errors', state->'errors' || (page->'errors'),
			'has_more', (page->>'has_more')::bool)
	  FROM taskorch_internal.page_outcome(result->'runs', page_size) AS page $$;

-- Errors unless the query's rows can be the items of a batch of task.
CREATE OR REPLACE FUNCTION taskorch.check_items_query(query text, task text DEFAULT NULL) RETURNS void
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_check_items_query';

-- Register (or redefine) a composite's task and definition.
CREATE OR REPLACE FUNCTION taskorch_internal.define_composite(kind text, name text, steps jsonb,
										   continue_on_failure bool, base_fields bool,
										   queue text, payload_schema jsonb, output_schema jsonb,
										   on_success text, on_failure text, description text,
										   on_start text)
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
		 WHERE r.task <> define_composite.name AND cardinality(r.path) < 64
	)
	SELECT path INTO cycle FROM reach WHERE task = define_composite.name LIMIT 1;
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
								   on_failure => on_failure, on_start => on_start);
	PERFORM taskorch_internal.write_composite(name, kind, steps, continue_on_failure, base_fields);
	RETURN name;
END
$$;

-- The definition's row; the table's policies let only the task's owner write it.
CREATE OR REPLACE FUNCTION taskorch_internal.write_composite(name text, kind text, steps jsonb,
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
									  description text DEFAULT NULL,
									  on_start text DEFAULT NULL)
	RETURNS text
	LANGUAGE plpgsql
	AS $$
BEGIN
	RETURN taskorch_internal.define_composite('track', name, taskorch_internal.check_steps('steps', steps),
		coalesce(continue_on_failure, false), coalesce(base_fields, false), queue,
		payload_schema, output_schema, on_success, on_failure, description, on_start);
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
											 description text DEFAULT NULL,
											 on_start text DEFAULT NULL)
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
		steps := taskorch_internal.check_steps('members', members);
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
	RETURN taskorch_internal.define_composite('orchestrator', name, steps, false,
		coalesce(base_fields, false), queue, payload_schema, output_schema, on_success,
		on_failure, description, on_start);
END
$$;
