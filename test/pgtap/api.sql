-- The SQL API contract: names, argument names and defaults (ORMs call
-- these with named arguments), return types, volatility, privileges.
BEGIN;
SELECT plan(121);

-- functions, with their exact argument lists
SELECT is(pg_get_function_arguments('taskorch.register_task'::regproc),
	'id text, fn regprocedure, queue text DEFAULT NULL::text, max_attempts integer DEFAULT 3, retry taskorch.json_input DEFAULT NULL::taskorch.json_input, max_duration taskorch.duration DEFAULT NULL::taskorch.duration, description text DEFAULT NULL::text, payload_schema taskorch.json_input DEFAULT NULL::taskorch.json_input, output_schema taskorch.json_input DEFAULT NULL::taskorch.json_input, on_success text DEFAULT NULL::text, on_failure text DEFAULT NULL::text, on_start text DEFAULT NULL::text, retention taskorch.duration DEFAULT NULL::taskorch.duration',
	'register_task: named arguments with defaults');
SELECT function_returns('taskorch', 'register_task', 'text', 'register_task returns the task id');
SELECT is(pg_get_function_arguments('taskorch.trigger'::regproc),
	'task text, payload taskorch.json_input DEFAULT ''{}''::taskorch.json_input, options taskorch.json_input DEFAULT NULL::taskorch.json_input, '
	'delay taskorch.delay DEFAULT NULL::taskorch.delay, ttl taskorch.duration DEFAULT NULL::taskorch.duration, '
	'idempotency_key text DEFAULT NULL::text, idempotency_key_ttl taskorch.duration DEFAULT NULL::taskorch.duration, '
	'queue text DEFAULT NULL::text, concurrency_key text DEFAULT NULL::text, '
	'priority integer DEFAULT NULL::integer, max_attempts integer DEFAULT NULL::integer, '
	'max_duration taskorch.duration DEFAULT NULL::taskorch.duration, tags text[] DEFAULT NULL::text[], '
	'metadata taskorch.json_input DEFAULT NULL::taskorch.json_input, machine text DEFAULT NULL::text, region text DEFAULT NULL::text, '
	'debounce taskorch.json_input DEFAULT NULL::taskorch.json_input',
	'trigger: every option a named argument with a default');
SELECT is((SELECT prorettype::regtype::text FROM pg_proc WHERE oid = 'taskorch.trigger'::regproc),
	'text', 'trigger returns a run id');
SELECT is((SELECT provolatile FROM pg_proc WHERE oid = 'taskorch.trigger'::regproc),
	'v', 'trigger is volatile');
SELECT function_returns('taskorch', 'cancel', ARRAY['text'], 'boolean', 'cancel(run) returns whether it canceled');
SELECT function_returns('taskorch', 'replay', ARRAY['text'], 'text', 'replay(run) returns the new run id');
SELECT function_returns('taskorch', 'reschedule', ARRAY['text', 'taskorch.delay'], 'timestamp with time zone',
	'reschedule(run, delay) returns the new due time');
SELECT function_returns('taskorch', 'idempotency_key', ARRAY['text', 'text'], 'text',
	'idempotency_key(name, scope)');
SELECT is(taskorch.idempotency_key('a', 'global'), encode(sha256('a'::bytea), 'hex'),
	'a global idempotency key is the sha256 of its name');
SELECT has_extension('taskorch', 'taskorch', 'the extension is installed');
SELECT has_function('taskorch', 'batch_trigger', ARRAY['text', 'jsonb', 'taskorch.json_input'], 'batch_trigger(task, items, options)');
SELECT has_function('taskorch', 'batch_trigger', ARRAY['text', 'taskorch.items', 'taskorch.json_input'], 'batch_trigger(task, items, options) of a driver''s list');
SELECT has_function('taskorch', 'batch_trigger', ARRAY['taskorch.items', 'taskorch.json_input'], 'batch_trigger(items, options)');
SELECT function_returns('taskorch', 'batch_retrieve', ARRAY['text'], 'jsonb', 'batch_retrieve(batch)');
SELECT is(pg_get_function_arguments('taskorch.list_runs'::regproc),
	'status text[] DEFAULT NULL::text[], task text[] DEFAULT NULL::text[], tags text[] DEFAULT NULL::text[], '
	'batch text DEFAULT NULL::text, created_after timestamp with time zone DEFAULT NULL::timestamp with time zone, '
	'created_before timestamp with time zone DEFAULT NULL::timestamp with time zone, '
	'page_size integer DEFAULT 100, cursor text DEFAULT NULL::text',
	'list_runs: named filters with defaults');
SELECT function_returns('taskorch', 'cancel_runs', 'bigint', 'cancel_runs returns how many');
SELECT has_function('taskorch', 'metadata_set', ARRAY['text', 'jsonb'], 'metadata_set(key, value)');
SELECT has_function('taskorch', 'metadata_increment', ARRAY['text', 'numeric'], 'metadata_increment(key, by)');
SELECT has_function('taskorch', 'log', ARRAY['text', 'text', 'jsonb'], 'log(level, message, data)');
-- the protocol of external workers (docs/external-tasks.md), callable with plain parameters
SELECT has_function('taskorch', 'register_external_task', ARRAY['text', 'text', 'integer', 'taskorch.json_input', 'taskorch.duration', 'taskorch.json_input', 'taskorch.json_input', 'text', 'text', 'text', 'text', 'taskorch.duration'], 'register_external_task(id, queue, max_attempts, retry, max_duration, payload_schema, output_schema, on_success, on_failure, description, on_start, retention)');
SELECT has_function('taskorch', 'claim_runs', ARRAY['text[]', 'integer', 'taskorch.duration'], 'claim_runs(tasks, max_runs, lease)');
SELECT has_function('taskorch', 'heartbeat', ARRAY['text', 'taskorch.duration'], 'heartbeat(lease, extend)');
SELECT has_function('taskorch', 'complete_run', ARRAY['text', 'taskorch.json_input'], 'complete_run(lease, output)');
SELECT has_function('taskorch', 'fail_run', ARRAY['text', 'taskorch.json_input', 'boolean'], 'fail_run(lease, error, retry)');
SELECT has_function('taskorch', 'release_run', ARRAY['text'], 'release_run(lease)');
SELECT has_function('taskorch', 'grant_execute', ARRAY['text', 'regrole'], 'grant_execute(task, role)');
SELECT has_function('taskorch', 'revoke_execute', ARRAY['text', 'regrole'], 'revoke_execute(task, role)');
SELECT has_function('taskorch', 'grant_queue', ARRAY['text', 'regrole'], 'grant_queue(queue, role)');
SELECT has_function('taskorch', 'revoke_queue', ARRAY['text', 'regrole'], 'revoke_queue(queue, role)');
SELECT has_function('taskorch', 'wait_for', ARRAY['taskorch.duration'], 'wait_for(duration)');
SELECT has_function('taskorch', 'wait_until', ARRAY['timestamp with time zone'], 'wait_until(date)');
SELECT throws_ok($$ SELECT taskorch.wait_for('1s') $$, '55000', NULL, 'wait_for() outside a task: 55000');
SELECT throws_ok($$ SELECT taskorch.idempotency_key_reset(NULL, 'k') $$, '22004', NULL,
	'idempotency_key_reset() without a task: 22004');
SELECT is(taskorch.idempotency_key_reset('no-such-task', 'k'), 0::bigint,
	'idempotency_key_reset() of a key that names no run: 0');
SELECT has_function('taskorch', 'trigger_and_wait', ARRAY['text', 'taskorch.json_input', 'taskorch.json_input'], 'trigger_and_wait(task, payload, options)');
SELECT has_function('taskorch', 'batch_trigger_and_wait', ARRAY['taskorch.items'], 'batch_trigger_and_wait(items)');
SELECT has_function('taskorch', 'trigger_and_wait_unwrap', ARRAY['text', 'taskorch.json_input', 'taskorch.json_input'], 'trigger_and_wait_unwrap');
SELECT is(pg_get_function_arguments('taskorch.batch_trigger_and_wait_query'::regproc),
	'query text, task text DEFAULT NULL::text', 'batch_trigger_and_wait_query(query, task)');
SELECT is(pg_get_function_arguments('taskorch.batch_trigger_query'::regproc),
	'query text, task text DEFAULT NULL::text, options taskorch.json_input DEFAULT NULL::taskorch.json_input',
	'batch_trigger_query(query, task, options)');
SELECT function_returns('taskorch', 'result', ARRAY['text'], 'jsonb', 'result(run) returns a Result object');
SELECT is(pg_get_function_arguments('taskorch.wait_for_run'::regproc),
	'IN run text, IN timeout interval DEFAULT ''00:01:00''::interval, INOUT result jsonb DEFAULT NULL::jsonb',
	'wait_for_run(run, timeout, result) is a procedure with a default timeout');
SELECT is((SELECT prokind FROM pg_proc WHERE oid = 'taskorch.wait_for_run'::regproc), 'p',
	'wait_for_run is a procedure (it commits between looks)');
SELECT throws_ok($$ SELECT taskorch.batch_trigger_and_wait_query('SELECT 1') $$, '55000', NULL,
	'batch_trigger_and_wait_query() outside a task: 55000');
SELECT throws_ok($$ SELECT taskorch.batch_trigger_query('SELECT 1 AS payload', 'no-task') $$, '42804', NULL,
	'a query column of the wrong type: 42804');
SELECT function_returns('taskorch', 'validate', ARRAY['jsonb', 'jsonb'], 'text[]',
	'validate(value, schema) returns the failures');
SELECT is(taskorch.validate('{"a": "x"}', '{"properties": {"a": {"type": "integer"}}}'),
	ARRAY['$.a: type: expected integer, got string'], 'a failure names its path and rule');
SELECT throws_ok($$ SELECT taskorch.check_schema('{"minimum": "1"}') $$, '22023', NULL,
	'a malformed schema: 22023');
SELECT is(pg_get_function_arguments('taskorch.define_schema'::regproc),
	'name text, schema jsonb, description text DEFAULT NULL::text', 'define_schema(name, schema, description)');
SELECT throws_ok($$ SELECT taskorch.drop_schema('no-such-schema') $$, '42704', NULL,
	'dropping an unknown schema: 42704');
SELECT is(ARRAY(SELECT s FROM unnest(enum_range(NULL::taskorch.run_status)) s WHERE NOT taskorch.finished(s))::text[],
	ARRAY['DELAYED', 'QUEUED', 'EXECUTING', 'WAITING'], 'finished(): the unfinished statuses');
-- tracks, orchestrators, jobs
SELECT is(pg_get_function_arguments('taskorch.define_track'::regproc),
	'name text, steps jsonb, continue_on_failure boolean DEFAULT false, base_fields boolean DEFAULT false, '
	'queue text DEFAULT NULL::text, payload_schema jsonb DEFAULT NULL::jsonb, output_schema jsonb DEFAULT NULL::jsonb, '
	'on_success text DEFAULT NULL::text, on_failure text DEFAULT NULL::text, description text DEFAULT NULL::text, '
	'on_start text DEFAULT NULL::text',
	'define_track: named arguments with defaults');
SELECT is(pg_get_function_arguments('taskorch.define_orchestrator'::regproc),
	'name text, members jsonb DEFAULT NULL::jsonb, traverse jsonb DEFAULT NULL::jsonb, base_fields boolean DEFAULT false, '
	'queue text DEFAULT NULL::text, payload_schema jsonb DEFAULT NULL::jsonb, output_schema jsonb DEFAULT NULL::jsonb, '
	'on_success text DEFAULT NULL::text, on_failure text DEFAULT NULL::text, description text DEFAULT NULL::text, '
	'on_start text DEFAULT NULL::text',
	'define_orchestrator: members or traverse, named arguments');
SELECT is(pg_get_function_arguments('taskorch.traverse'::regproc),
	'query text, task text, page_size integer DEFAULT 100, page integer DEFAULT 0', 'traverse(query, task, page_size, page)');
SELECT function_returns('taskorch', 'job', ARRAY['text'], 'jsonb', 'job(run) returns the job record');
SELECT columns_are('taskorch', 'jobs', ARRAY['id', 'name', 'kind', 'status', 'run_status', 'created_at',
	'started', 'ended', 'lastupdated', 'error'], 'the jobs view');
SELECT columns_are('taskorch', 'job_steps', ARRAY['job_id', 'position', 'step', 'task_id', 'run_id',
	'status', 'started', 'ended', 'done'], 'the job_steps view');
SELECT throws_ok($$ SELECT taskorch.define_track('t', '[]') $$, '22023', NULL, 'a track without steps: 22023');
SELECT throws_ok($$ SELECT taskorch.define_track('t', '[{"task": "nope"}]') $$, '42704', NULL,
	'a step of an unknown task: 42704');
SELECT throws_ok($$ SELECT taskorch.job('run_1') $$, '42704', NULL, 'job() of no job: 42704');
SELECT is(taskorch.fill_template('{"a": "$.prev.x", "b": ["$.input.y", "lit"], "c": 1}', '{"x": 5}', '{"y": "z"}'),
	'{"a": 5, "b": ["z", "lit"], "c": 1}', 'a template takes values from the previous output and the input');
SELECT is(taskorch_internal.unwrap('{"ok": true, "output": {"success": true, "data": {"v": 1}, "meta": {}}}'),
	'{"ok": true, "output": {"v": 1}}', 'an FP Result success gives its data');
SELECT is(taskorch_internal.unwrap('{"ok": false, "error": {"message": "no"}}'),
	'{"ok": false, "error": {"message": "no"}}', 'a failed child is a failure');
SELECT is(taskorch_internal.unwrap('{"ok": true, "output": {"success": true, "error": "x"}}'),
	'{"ok": true, "output": {"success": true, "error": "x"}}', 'an FP Result success without data gives its output');
SELECT has_function('taskorch', 'create_wait_token', ARRAY['taskorch.duration', 'text', 'text[]'], 'create_wait_token(timeout, key, tags)');
SELECT has_function('taskorch', 'complete_wait_token', ARRAY['text', 'taskorch.json_input'], 'complete_wait_token(token, output)');
SELECT matches(taskorch.create_wait_token('1h'), '^waittoken_[0-9]+$', 'a token made outside a task');
SELECT throws_ok($$ SELECT taskorch.metadata() $$, '55000', NULL, 'metadata() outside a task: 55000');
SELECT function_returns('taskorch', 'replay_runs', 'setof text', 'replay_runs returns the new ids');
SELECT is((SELECT extversion FROM pg_extension WHERE extname = 'taskorch'), '0.2', 'version 0.2');
SELECT function_returns('taskorch', 'retrieve', ARRAY['text'], 'jsonb', 'retrieve returns jsonb');
SELECT volatility_is('taskorch', 'retrieve', ARRAY['text'], 'stable', 'retrieve is stable');
SELECT function_returns('taskorch', 'unregister_task', ARRAY['text'], 'bigint', 'unregister_task returns the runs canceled');
SELECT has_function('taskorch', 'grant_trigger', ARRAY['text', 'regrole'], 'grant_trigger(task, role)');
SELECT has_function('taskorch', 'revoke_trigger', ARRAY['text', 'regrole'], 'revoke_trigger(task, role)');
SELECT has_function('taskorch', 'abort', ARRAY['text', 'text'], 'abort(message, detail)');
SELECT function_returns('taskorch', 'current_run', 'jsonb', 'current_run returns jsonb');
SELECT function_returns('taskorch', 'run_pending', ARRAY['integer'], 'integer', 'run_pending returns the runs executed');

-- types and views
SELECT enum_has_labels('taskorch', 'run_status',
	ARRAY['DELAYED', 'QUEUED', 'EXECUTING', 'WAITING', 'COMPLETED', 'FAILED',
		  'CANCELED', 'EXPIRED', 'TIMED_OUT', 'CRASHED', 'SYSTEM_FAILURE'],
	'run statuses are Trigger.dev''s');
SELECT has_view('taskorch', 'tasks', 'view taskorch.tasks');
SELECT has_view('taskorch', 'runs', 'view taskorch.runs');
SELECT has_view('taskorch', 'attempts', 'view taskorch.attempts');
SELECT columns_are('taskorch', 'runs', ARRAY['id', 'task_id', 'status', 'attempts', 'tags',
	'created_at', 'started_at', 'finished_at', 'duration', 'payload', 'output', 'error_message'],
	'runs view: the columns people look at first');
SELECT columns_are('taskorch', 'runs_wide', ARRAY['id', 'task_id', 'status', 'attempts',
	'max_attempts', 'payload', 'output', 'error', 'queue', 'owner', 'triggered_by',
	'created_at', 'run_at', 'started_at', 'finished_at', 'duration', 'updated_at',
	'delayed_until', 'ttl', 'expires_at', 'priority', 'tags', 'metadata',
	'idempotency_key', 'concurrency_key', 'replayed_from', 'batch_id', 'batch_index', 'debounce_key', 'parent_run_id', 'root_run_id',
	'external', 'lease_expires_at', 'claimed_by_pid'],
	'runs_wide view: every column');
SELECT col_type_is('taskorch', 'runs', 'status', 'taskorch.run_status', 'runs.status is the enum');
SELECT columns_are('taskorch', 'attempts', ARRAY['run_id', 'task_id', 'number',
	'status', 'message', 'sqlstate', 'error', 'started_at', 'finished_at'], 'attempts view columns');

-- security contract
SELECT has_role('taskorch_admin', 'the admin role exists');
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'taskorch.run'::regclass), 'RLS on taskorch.run');
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'taskorch.task'::regclass), 'RLS on taskorch.task');
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'taskorch.attempt'::regclass), 'RLS on taskorch.attempt');
SELECT table_privs_are('taskorch', 'run', 'public', ARRAY['SELECT'], 'PUBLIC may only read runs');
SELECT table_privs_are('taskorch', 'task', 'public', ARRAY['SELECT'], 'PUBLIC may only read tasks');
SELECT table_privs_are('taskorch', 'attempt', 'public', ARRAY['SELECT'], 'PUBLIC may only read attempts');
SELECT ok((SELECT reloptions::text LIKE '%security_invoker=true%' FROM pg_class
		   WHERE oid = 'taskorch.runs'::regclass), 'runs view applies the reader''s RLS');
SELECT ok((SELECT reloptions::text LIKE '%security_invoker=true%' FROM pg_class
		   WHERE oid = 'taskorch.tasks'::regclass), 'tasks view applies the reader''s RLS');
SELECT function_privs_are('taskorch', 'run_pending', ARRAY['integer'], 'public', ARRAY[]::text[],
	'PUBLIC may not call run_pending');
SELECT is_empty($$
	SELECT p.oid::regprocedure FROM pg_proc p
	 WHERE p.pronamespace = 'taskorch'::regnamespace AND p.prosecdef
	   AND NOT coalesce(p.proconfig::text LIKE '%search_path%', false) $$,
	'every SECURITY DEFINER function pins search_path');

-- behaviour contract
CREATE FUNCTION tap_echo(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT payload $$;
SELECT lives_ok($$ SELECT taskorch.register_task('tap-echo', 'tap_echo(jsonb)') $$, 'register a SQL task');
SELECT lives_ok($$ SELECT taskorch.register_task(fn => 'tap_echo(jsonb)', id => 'tap-named', max_attempts => 1) $$,
	'register with named arguments in any order');
SELECT matches(taskorch.trigger('tap-echo', '{"a": 1}'), '^run_[0-9]+$', 'trigger returns run_<n>');
SELECT matches(taskorch.trigger(task => 'tap-echo'), '^run_[0-9]+$', 'trigger with named argument and default payload');
SELECT throws_ok($$ SELECT taskorch.trigger('tap-missing', '{}') $$, '42704',
	'task "tap-missing" is not registered', 'unknown task: 42704');
SELECT throws_ok($$ SELECT taskorch.trigger('tap-echo', '[]') $$, '22023', NULL, 'non-object payload: 22023');
SELECT throws_ok($$ SELECT taskorch.trigger('tap-echo', NULL) $$, '22004', NULL, 'null payload: 22004');
SELECT throws_ok($$ SELECT taskorch.register_task('bad id', 'tap_echo(jsonb)') $$, '42602', NULL, 'bad task id: 42602');
SELECT throws_ok($$ SELECT taskorch.register_task('tap-x', 'tap_echo(jsonb)', max_attempts => 0) $$, '22023', NULL, 'max_attempts 0: 22023');
SELECT throws_ok($$ SELECT taskorch.retrieve('run_0x') $$, '22P02', NULL, 'malformed run id: 22P02');
SELECT throws_ok($$ SELECT taskorch.retrieve('run_987654321') $$, '42704', NULL, 'unknown run: 42704');
SELECT throws_ok($$ SELECT taskorch.abort('stop here') $$, 'TOABT', 'stop here', 'abort raises TOABT');
SELECT throws_ok($$ SELECT taskorch.trigger('tap-echo', delay => 'whenever') $$, '22023', NULL,
	'malformed delay: 22023');
SELECT throws_ok($$ SELECT taskorch.trigger('tap-echo', machine => 'large-1x') $$, '0A000', NULL,
	'machine is not supported: 0A000');
SELECT throws_ok($$ SELECT taskorch.reschedule(taskorch.trigger('tap-echo'), '1h') $$, '55000', NULL,
	'reschedule of a run that is not DELAYED: 55000');
SELECT is(taskorch.current_run(), NULL, 'current_run() is NULL outside a task');
SELECT is((SELECT count(*)::int FROM taskorch.tasks WHERE id LIKE 'tap-%'), 2, 'failed registrations wrote nothing');
-- in this transaction the runs are invisible to workers: run them here
SELECT is(taskorch.run_pending(10), 2, 'run_pending executes the two runs');
SELECT results_eq($$ SELECT status::text, output FROM taskorch.runs WHERE task_id = 'tap-echo' ORDER BY created_at $$,
	$$ VALUES ('COMPLETED', '{"a": 1}'::jsonb), ('COMPLETED', '{}'::jsonb) $$,
	'both runs completed with the payload echoed');

-- run_pending() in this session (which has pgTAP's temporary tables): a
-- task may not add an object to the session's temporary schema
CREATE FUNCTION tap_temp_function(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $f$
BEGIN
	EXECUTE 'CREATE FUNCTION pg_temp.tap_planted() RETURNS int LANGUAGE sql AS ''SELECT 1''';
	RETURN '{}';
END $f$;
SELECT taskorch.register_task('tap-temp-function', 'tap_temp_function(jsonb)', max_attempts => 1);
SELECT taskorch.trigger('tap-temp-function');
SELECT is(taskorch.run_pending(10), 1, 'run_pending executes the run that makes a temporary function');
SELECT results_eq($$ SELECT status::text, error->>'message' FROM taskorch.runs_wide WHERE task_id = 'tap-temp-function' $$,
	$$ VALUES ('FAILED', 'cannot create temporary objects within a task') $$,
	'a temporary function made by a task fails its run');
SELECT is(to_regprocedure('pg_temp.tap_planted()'), NULL, 'and is gone with it');

-- psql reads well: every object of the API says what it is (\df+, \dv+),
-- and internal functions are out of \df taskorch.*
SELECT is_empty($$
	SELECT p.oid::regprocedure::text FROM pg_proc p
	 WHERE p.pronamespace = 'taskorch'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL
	UNION ALL
	SELECT c.oid::regclass::text FROM pg_class c
	 WHERE c.relnamespace = 'taskorch'::regnamespace AND c.relkind IN ('r', 'v', 'S')
	   AND obj_description(c.oid, 'pg_class') IS NULL
	UNION ALL
	SELECT t.oid::regtype::text FROM pg_type t
	 WHERE t.typnamespace = 'taskorch'::regnamespace AND t.typtype IN ('b', 'e', 'd')
	   AND t.typcategory <> 'A' AND obj_description(t.oid, 'pg_type') IS NULL $$,
	'every function, table, view, sequence and type of the API has a COMMENT');
SELECT is_empty($$ SELECT proname FROM pg_proc WHERE pronamespace = 'taskorch'::regnamespace
				   AND proname LIKE '\_%' $$,
	'no internal function in the schema taskorch');
SELECT * FROM finish();
ROLLBACK;
