#!/usr/bin/env bash
# Hostile tasks against a real cluster with ONE worker, so that every run
# executes in the same worker session, one after the other: what one role's
# code leaves in that session is what the next role's run would meet.
#
#   1. an items query (batch_trigger_and_wait_query), a traverse query and
#      an input mapper that set search_path for the session: a superuser's
#      later run must not resolve upper() to the attacker's m.upper (which
#      would make the attacker a superuser);
#   2. an items query that creates a temporary table granted to PUBLIC, to
#      capture another role's writes to an unqualified table name;
#   3. session leftovers: advisory locks, temporary functions, PREPARE,
#      LISTEN, cursors WITH HOLD;
#   4. statement_timeout bounds a task, max_payload_size its output, and
#      max_duration and cancel() its output schema check;
#   5. a waiting run whose function is replaced by one making another wait
#      call fails cleanly (it crashed the server in a loop); a task that
#      catches its wait's error waits all the same;
#   6. a task that terminates its own worker is charged an attempt and ends
#      CRASHED, while other runs keep completing;
#   6b. a task id stays with its owner once unregistered, and a run is never
#      run as another role's task; idempotency and debounce keys are per
#      triggering role, and no role can take the lock that orders them;
#   7. kill -9 of the launcher (a crash restart of every process) charges
#      nothing to the runs executing on healthy workers; commands a role is
#      refused (DROP EXTENSION, DROP DATABASE ...) stop no worker;
#   8. DROP EXTENSION while a run executes and while children are streamed
#      from a query succeeds at once, and a rolled back one changes nothing.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/test/lib.sh"
port=${HOSTILE_PORT:-55450}
# a fixed pool: the test counts the workers and their pids
throwaway_cluster hostile "$port" "taskorch.workers_per_database = 1" "taskorch.max_workers_per_database = 0"
settled() {
	wait_for "$port" postgres "SELECT NOT EXISTS (SELECT FROM taskorch.run
	                                               WHERE status IN ('QUEUED', 'EXECUTING', 'WAITING', 'DELAYED'))" 60 ||
		fail "runs did not settle: $(q "SELECT string_agg(id || ' ' || task_id || ' ' || status, ', ') FROM taskorch.run WHERE NOT taskorch.finished(status)")"
}
expect() {	# expect WHAT GOT WANTED
	[ "$2" = "$3" ] || fail "$1: got '$2', expected '$3'"
	echo "ok - $1"
}

psql_as "$port" postgres >/dev/null <<'SQL'
CREATE EXTENSION taskorch;
CREATE ROLE mallory LOGIN;
CREATE ROLE victim LOGIN;
CREATE SCHEMA m AUTHORIZATION mallory;
GRANT USAGE ON SCHEMA m TO PUBLIC;
CREATE SCHEMA victim AUTHORIZATION victim;

SET ROLE mallory;
-- the trap: resolved instead of pg_catalog.upper() by a poisoned search_path
CREATE FUNCTION m.upper(text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	BEGIN
		EXECUTE 'ALTER ROLE mallory SUPERUSER';
	EXCEPTION WHEN insufficient_privilege THEN NULL;
	END;
	RETURN 'PWNED by ' || current_user;
END $$;
CREATE FUNCTION m.poison() RETURNS SETOF jsonb LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('search_path', 'm, pg_catalog', false);
	RETURN NEXT '{}'::jsonb;
END $$;
CREATE FUNCTION m.capture() RETURNS SETOF jsonb LANGUAGE plpgsql AS $$
BEGIN
	CREATE TEMP TABLE results (note text);
	GRANT ALL ON results TO PUBLIC;
	RETURN NEXT '{}'::jsonb;
END $$;
CREATE FUNCTION m.poison_map(prev jsonb, input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('search_path', 'm, pg_catalog', false);
	RETURN '{}';
END $$;
-- a plain SQL task (its plans kept by the worker): SET and set_config(..., false)
CREATE FUNCTION m.poison_task(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SET search_path = m, pg_catalog;
	SELECT to_jsonb(set_config('search_path', 'm, pg_catalog', false)) $$;
SELECT taskorch.register_task('m-sqltask', 'm.poison_task(jsonb)', max_attempts => 1);
CREATE FUNCTION m.noop(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION m.by_items(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT taskorch.batch_trigger_and_wait_query(payload->>'query', 'm-noop') $$;
SELECT taskorch.register_task('m-noop', 'm.noop(jsonb)');
SELECT taskorch.register_task('m-items', 'm.by_items(jsonb)', max_attempts => 1);
SELECT taskorch.define_orchestrator('m-traverse',
	traverse => '{"query": "SELECT m.poison() AS payload", "task": "m-noop"}');
SELECT taskorch.define_track('m-track', '[{"task": "m-noop", "input_mapper": "m.poison_map(jsonb,jsonb)"},
										  {"task": "m-noop", "name": "second"}]');
RESET ROLE;

-- the superuser's task, and an ordinary victim's
CREATE FUNCTION public.admin_upper(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_build_object('u', upper('x'), 'search_path', current_setting('search_path')) $$;
SELECT taskorch.register_task('admin-upper', 'public.admin_upper(jsonb)', max_attempts => 1);
SET ROLE victim;
CREATE TABLE victim.results (note text);
CREATE FUNCTION victim.save(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	INSERT INTO results VALUES ('card 4111-1111') RETURNING '{}'::jsonb $$;
SELECT taskorch.register_task('victim-save', 'victim.save(jsonb)', max_attempts => 1);
RESET ROLE;
SQL

# 1. a poisoned search_path must not outlive the code that set it
for attack in "items:SELECT m.poison() AS payload" traverse track sqltask; do
	case $attack in
	items:*) q "SET ROLE mallory; SELECT taskorch.trigger('m-items', jsonb_build_object('query', '${attack#items:}'))" >/dev/null ;;
	traverse) q "SET ROLE mallory; SELECT taskorch.trigger('m-traverse')" >/dev/null ;;
	track) q "SET ROLE mallory; SELECT taskorch.trigger('m-track')" >/dev/null ;;
	sqltask) q "SET ROLE mallory; SELECT taskorch.trigger('m-sqltask')" >/dev/null ;;
	esac
	settled
	expect "${attack%%:*} of mallory ran" "$(q "SELECT status FROM taskorch.run WHERE task_id IN ('m-items', 'm-traverse', 'm-track', 'm-sqltask') ORDER BY created_at DESC LIMIT 1")" COMPLETED
	admin=$(q "SELECT taskorch.trigger('admin-upper')")
	settled
	expect "after the ${attack%%:*} attack, the superuser's upper() is pg_catalog's" \
		"$(q "SELECT output->>'u' FROM taskorch.run WHERE id = '$admin'")" X
	expect "after the ${attack%%:*} attack, the worker's search_path is its own" \
		"$(q "SELECT output->>'search_path' FROM taskorch.run WHERE id = '$admin'")" '"$user", public'
	expect "after the ${attack%%:*} attack, mallory is no superuser" \
		"$(q "SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'")" f
done

# 2. a temporary table cannot be planted to capture another role's writes
capture=$(q "SET ROLE mallory; SELECT taskorch.trigger('m-items', '{\"query\": \"SELECT m.capture() AS payload\"}')" | tail -1)
settled
expect "the capturing items query is refused" \
	"$(q "SELECT status || ': ' || (error->>'message') FROM taskorch.run WHERE id = '$capture'")" \
	"FAILED: cannot create temporary table within security-restricted operation"
q "SET ROLE victim; SELECT taskorch.trigger('victim-save')" >/dev/null
settled
expect "the victim's write went to its own table" "$(q "SELECT count(*) FROM victim.results")" 1
# the worker keeps the plans of victim.save() (a plain SQL function); mallory's
# task on the same function runs as mallory, with mallory's search_path and
# rights, whatever plan the victim's run left
q "GRANT USAGE ON SCHEMA victim TO mallory" >/dev/null
borrow=$(q "SET ROLE mallory; SELECT taskorch.register_task('m-borrow', 'victim.save(jsonb)', max_attempts => 1); SELECT taskorch.trigger('m-borrow')" | tail -1)
settled
expect "mallory's run of the victim's SQL function does not reach the victim's table" \
	"$(q "SELECT status || ': ' || (error->>'message') FROM taskorch.run WHERE id = '$borrow'")" \
	'FAILED: relation "results" does not exist'
expect "the victim's table holds only the victim's write" "$(q "SELECT count(*) FROM victim.results")" 1

# 3. session leftovers
psql_as "$port" postgres >/dev/null <<'SQL'
SET ROLE mallory;
CREATE FUNCTION m.leftovers(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	r jsonb := '{}';
	what text;
BEGIN
	PERFORM pg_advisory_lock(4242);
	FOREACH what IN ARRAY ARRAY['PREPARE planted AS SELECT 1', 'LISTEN planted',
								'DECLARE planted CURSOR WITH HOLD FOR SELECT 1'] LOOP
		BEGIN
			EXECUTE what;
			r := r || jsonb_build_object(split_part(what, ' ', 1), 'made');
		EXCEPTION WHEN OTHERS THEN
			r := r || jsonb_build_object(split_part(what, ' ', 1), SQLERRM);
		END;
	END LOOP;
	RETURN r;
END $$;
CREATE FUNCTION m.temp_function(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE 'CREATE FUNCTION pg_temp.planted() RETURNS int LANGUAGE sql AS ''SELECT 1''';
	RETURN '{}';
END $$;
SELECT taskorch.register_task('m-leftovers', 'm.leftovers(jsonb)', max_attempts => 1);
SELECT taskorch.register_task('m-temp-function', 'm.temp_function(jsonb)', max_attempts => 1);
SELECT taskorch.trigger('m-leftovers');
SELECT taskorch.trigger('m-temp-function');
RESET ROLE;
-- what the next run finds in the worker's session
CREATE FUNCTION public.session_state(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_build_object(
		'advisory', (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()),
		'prepared', (SELECT count(*) FROM pg_prepared_statements),
		'listening', (SELECT count(*) FROM pg_listening_channels()),
		'cursors', (SELECT count(*) FROM pg_cursors),
		'temp_schema', pg_my_temp_schema()::int) $$;
SELECT taskorch.register_task('session-state', 'public.session_state(jsonb)', max_attempts => 1);
SQL
settled
q "SELECT taskorch.trigger('session-state')" >/dev/null
settled
expect "PREPARE, LISTEN and WITH HOLD cursors are refused in a task" \
	"$(q "SELECT output FROM taskorch.run WHERE task_id = 'm-leftovers'")" \
	'{"LISTEN": "cannot execute LISTEN within security-restricted operation", "DECLARE": "cannot create a cursor WITH HOLD within security-restricted operation", "PREPARE": "cannot execute PREPARE within security-restricted operation"}'
expect "a temporary function fails its run" \
	"$(q "SELECT status || ': ' || (error->>'message') FROM taskorch.run WHERE task_id = 'm-temp-function'")" \
	"FAILED: cannot create temporary objects within a task"
expect "the next run finds no advisory lock, prepared statement, LISTEN, cursor or temporary schema" \
	"$(q "SELECT output FROM taskorch.run WHERE task_id = 'session-state'")" \
	'{"cursors": 0, "advisory": 0, "prepared": 0, "listening": 0, "temp_schema": 0}'

# 4. statement_timeout bounds a task
q "CREATE FUNCTION public.sleepy(payload jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT pg_sleep(10); SELECT '{}'::jsonb \$\$" >/dev/null
q "SELECT taskorch.register_task('sleepy', 'public.sleepy(jsonb)', max_attempts => 1)" >/dev/null
q "ALTER SYSTEM SET statement_timeout = '300ms'" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
start=$SECONDS
q "SELECT taskorch.trigger('sleepy')" >/dev/null
settled
expect "statement_timeout stops a task" \
	"$(q "SELECT status || ' ' || (error->>'sqlstate') || ': ' || (error->>'message') FROM taskorch.run WHERE task_id = 'sleepy'")" \
	"FAILED 57014: canceling statement due to statement timeout"
[ $((SECONDS - start)) -lt 5 ] || fail "the task ran $((SECONDS - start)) s despite statement_timeout"
q "ALTER SYSTEM RESET statement_timeout" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
sleep 0.5

# 4a. the output schema check is bounded by max_duration and cancel(): an
# output of 200,000 numbers against an enum of 2,000 others is seconds of work
psql_as "$port" postgres >/dev/null <<'SQL'
CREATE FUNCTION public.many(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_agg(-g) FROM generate_series(1, 200000) g $$;
SELECT taskorch.register_task('many', 'public.many(jsonb)', max_attempts => 1,
	max_duration => '500 milliseconds',
	output_schema => (SELECT jsonb_build_object('items', jsonb_build_object('enum', jsonb_agg(g)))
						FROM generate_series(1, 2000) g));
SELECT taskorch.register_task('many-uncapped', 'public.many(jsonb)', max_attempts => 1,
	output_schema => (SELECT output_schema FROM taskorch.tasks WHERE id = 'many'));
SQL
start=$SECONDS
q "SELECT taskorch.trigger('many')" >/dev/null
settled
expect "max_duration interrupts the output schema check" \
	"$(q "SELECT status || ': ' || (error->>'message') FROM taskorch.run WHERE task_id = 'many'")" \
	"TIMED_OUT: run exceeded its max_duration of 500 ms"
[ $((SECONDS - start)) -lt 4 ] || fail "the output check ran $((SECONDS - start)) s past max_duration"
uncapped=$(q "SELECT taskorch.trigger('many-uncapped')")
wait_for "$port" postgres "SELECT EXISTS (SELECT FROM taskorch.workers() WHERE run_id = '$uncapped')" 30 ||
	fail "the run did not start"
sleep 0.5
start=$SECONDS
q "SELECT taskorch.cancel('$uncapped')" >/dev/null
settled
expect "cancel() interrupts the output schema check" \
	"$(q "SELECT status FROM taskorch.run WHERE id = '$uncapped'")" CANCELED
[ $((SECONDS - start)) -lt 3 ] || fail "cancel() took $((SECONDS - start)) s"

# 4b. an output larger than taskorch.max_payload_size fails its attempt
q "CREATE FUNCTION public.huge(payload jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT jsonb_build_object('x', repeat('x', 11 * 1024 * 1024)) \$\$" >/dev/null
q "SELECT taskorch.register_task('huge', 'public.huge(jsonb)', max_attempts => 1)" >/dev/null
q "SELECT taskorch.trigger('huge')" >/dev/null
settled
expect "an output over max_payload_size fails the attempt" \
	"$(q "SELECT status || ' ' || (error->>'sqlstate') || ': ' || (error->>'message') FROM taskorch.run WHERE task_id = 'huge'")" \
	"FAILED 54000: output of task \"huge\" is 11534353 bytes, more than taskorch.max_payload_size (10485760 bytes)"

# 5. a waiting run whose code changed fails cleanly, once
psql_as "$port" postgres >/dev/null <<'SQL'
SET ROLE mallory;
CREATE FUNCTION m.changing(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	PERFORM taskorch.wait_for('1s');
	RETURN '{}';
END $$;
SELECT taskorch.register_task('m-changing', 'm.changing(jsonb)');
SELECT taskorch.trigger('m-changing');
RESET ROLE;
SQL
wait_for "$port" postgres "SELECT status = 'WAITING' FROM taskorch.run WHERE task_id = 'm-changing'" 30 ||
	fail "the run did not wait"
q "SET ROLE mallory; CREATE OR REPLACE FUNCTION m.changing(payload jsonb) RETURNS jsonb LANGUAGE sql AS
   \$\$ SELECT taskorch.trigger_and_wait('m-noop', '{}') \$\$" >/dev/null
settled
expect "a replay that makes another wait call fails, without retries" \
	"$(q "SELECT status || ' ' || attempts || ' ' || (error->>'sqlstate') || ': ' || (error->>'message') FROM taskorch.run WHERE task_id = 'm-changing'")" \
	"FAILED 1 TORPL: run $(q "SELECT id FROM taskorch.run WHERE task_id = 'm-changing'") does not match its recorded waits: wait 0 was wait_for() or wait_until(), the task now calls trigger_and_wait() (task m-noop)"
! grep -q "terminated by signal" "$dir/server.log" || fail "a backend crashed: $(grep 'terminated by signal' "$dir/server.log")"
echo "ok - no backend crashed"

# 5a. the same when the new code waits for children of another task
psql_as "$port" postgres >/dev/null <<'SQL'
CREATE FUNCTION public.slow_child(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT pg_sleep(1.5); SELECT '{}'::jsonb $$;
SELECT taskorch.register_task('slow-child', 'public.slow_child(jsonb)');
CREATE FUNCTION public.switching(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT taskorch.trigger_and_wait('slow-child', '{}') $$;
SELECT taskorch.register_task('switching', 'public.switching(jsonb)');
SELECT taskorch.trigger('switching');
SQL
wait_for "$port" postgres "SELECT status = 'WAITING' FROM taskorch.run WHERE task_id = 'switching'" 30 ||
	fail "the run did not wait for its child"
q "CREATE OR REPLACE FUNCTION public.switching(payload jsonb) RETURNS jsonb LANGUAGE sql AS
   \$\$ SELECT taskorch.trigger_and_wait('bystander', '{}') \$\$" >/dev/null
settled
expect "a replay that waits for another task's children fails, naming both" \
	"$(q "SELECT status || ' ' || (error->>'sqlstate') || ': ' || (error->>'message') FROM taskorch.run WHERE task_id = 'switching'")" \
	"FAILED TORPL: run $(q "SELECT id FROM taskorch.run WHERE task_id = 'switching'") does not match its recorded waits: wait 0 was trigger_and_wait() (task slow-child), the task now calls trigger_and_wait() (task bystander)"

# 5b. a task that catches its wait's error still waits: what it did after
# catching it is rolled back, and its effects commit once
psql_as "$port" postgres >/dev/null <<'SQL'
CREATE TABLE catcher_effects (note text);
CREATE FUNCTION public.catcher(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	BEGIN
		PERFORM taskorch.wait_for('1s');
	EXCEPTION WHEN OTHERS THEN
		NULL;
	END;
	INSERT INTO catcher_effects VALUES ('after the wait');
	RETURN '{"done": true}';
END $$;
SELECT taskorch.register_task('catcher', 'public.catcher(jsonb)', max_attempts => 1);
SELECT taskorch.trigger('catcher');
SQL
wait_for "$port" postgres "SELECT status = 'WAITING' FROM taskorch.run WHERE task_id = 'catcher'" 30 ||
	fail "a task that catches its wait's error did not wait"
expect "its writes after the caught wait were rolled back" "$(q "SELECT count(*) FROM catcher_effects")" 0
settled
expect "it completed after the wait, its effect once" \
	"$(q "SELECT status FROM taskorch.run WHERE task_id = 'catcher'")/$(q "SELECT count(*) FROM catcher_effects")" "COMPLETED/1"

# 6. a task that terminates its own worker ends CRASHED; the others complete
psql_as "$port" postgres >/dev/null <<'SQL'
CREATE FUNCTION public.self_terminate(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT pg_terminate_backend(pg_backend_pid()); SELECT '{}'::jsonb $$;
SELECT taskorch.register_task('self-terminate', 'public.self_terminate(jsonb)', max_attempts => 3,
							  retry => '{"minTimeoutInMs": 100, "maxTimeoutInMs": 200}');
SELECT taskorch.trigger('self-terminate');
CREATE FUNCTION public.bystander(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT payload $$;
SELECT taskorch.register_task('bystander', 'public.bystander(jsonb)', max_attempts => 1);
SELECT count(taskorch.trigger('bystander')) FROM generate_series(1, 300);
SQL
settled
expect "the self-terminating run ends CRASHED after its 3 attempts" \
	"$(q "SELECT status || ' ' || attempts FROM taskorch.run WHERE task_id = 'self-terminate'")" "CRASHED 3"
expect "its attempts say why" \
	"$(q "SELECT string_agg(DISTINCT a.status || ': ' || (a.error->>'message'), ', ') FROM taskorch.attempt a JOIN taskorch.run r ON r.id = a.run_id WHERE r.task_id = 'self-terminate'")" \
	"CRASHED: the worker process executing this run was terminated"
expect "the other runs completed" "$(q "SELECT count(*) FILTER (WHERE status = 'COMPLETED') || '/' || count(*) FROM taskorch.run WHERE task_id = 'bystander'")" "300/300"

# 7. kill -9 of the launcher: the run executing on the healthy worker is not charged
psql_as "$port" postgres >/dev/null <<'SQL'
CREATE TABLE slow_effects (run_id text);
CREATE FUNCTION public.slow(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT pg_sleep(1.5); INSERT INTO slow_effects VALUES (taskorch.current_run()->>'id'); SELECT '{}'::jsonb $$;
SELECT taskorch.register_task('slow', 'public.slow(jsonb)', max_attempts => 1);
SELECT count(taskorch.trigger('slow')) FROM generate_series(1, 2);
SQL
wait_for "$port" postgres "SELECT EXISTS (SELECT FROM taskorch.workers() WHERE run_id IS NOT NULL)" 30 ||
	fail "no run started"
kill -9 "$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'taskorch launcher'")"
sleep 2
settled
expect "after kill -9 of the launcher the slow runs completed, each once" \
	"$(q "SELECT string_agg(status || ' ' || attempts, ',') FROM taskorch.run WHERE task_id = 'slow'")/$(q "SELECT count(DISTINCT run_id) || ' ' || count(*) FROM slow_effects")" \
	"COMPLETED 1,COMPLETED 1/2 2"

# 7a. a task id stays with its owner: after alice unregisters a task whose
# run waits, and one that is her other task's hook, mallory cannot register
# either id (her function would get alice's run and results); a superuser
# can, and alice's waiting run is then not run as the superuser's task
psql_as "$port" postgres >/dev/null <<'SQL'
CREATE ROLE alice;
CREATE SCHEMA a AUTHORIZATION alice;
SET ROLE alice;
CREATE FUNCTION a.waiter(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	PERFORM taskorch.wait_for('2s');
	RETURN '{"done": true}';
END $$;
CREATE FUNCTION a.work(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT payload $$;
SELECT taskorch.register_task('alice-waiter', 'a.waiter(jsonb)');
SELECT taskorch.register_task('alice-hook', 'a.work(jsonb)');
SELECT taskorch.register_task('alice-main', 'a.work(jsonb)', on_success => 'alice-hook');
SELECT taskorch.trigger('alice-waiter', '{"ssn": "123-45-6789"}');
RESET ROLE;
SQL
wait_for "$port" postgres "SELECT status = 'WAITING' FROM taskorch.run WHERE task_id = 'alice-waiter'" 30 ||
	fail "alice's run did not wait"
q "SET ROLE alice; SELECT taskorch.unregister_task('alice-waiter'), taskorch.unregister_task('alice-hook')" >/dev/null
for id in alice-waiter alice-hook; do
	expect "mallory cannot take task id $id" \
		"$(psql_as "$port" postgres -tA -c "SET ROLE mallory" -c "SELECT taskorch.register_task('$id', 'm.noop(jsonb)')" 2>&1 | head -1)" \
		"ERROR:  task id \"$id\" belongs to role alice"
done
q "SELECT taskorch.register_task('alice-waiter', 'public.bystander(jsonb)')" >/dev/null
settled
expect "alice's waiting run is not run as the task now registered by another role" \
	"$(q "SELECT status || ' ' || (error->>'sqlstate') || ': ' || (error->>'message') FROM taskorch.run WHERE task_id = 'alice-waiter'")" \
	'FAILED 42501: task "alice-waiter" was registered again by another role: this run, made for the former task, is not run'

# 7c. idempotency and debounce keys are per triggering role: mallory, granted
# to trigger alice's task, neither gets alice's run through a key (nor its
# output) nor rewrites her debounced run; and the lock that orders triggers
# with one key is not an advisory lock mallory could take to block them
psql_as "$port" postgres >/dev/null <<'SQL'
SET ROLE alice;
SELECT taskorch.grant_trigger('alice-main', 'mallory');
SELECT taskorch.trigger('alice-main', '{"card": "5555-private"}', idempotency_key => 'order-42');
SELECT taskorch.trigger('alice-main', '{"to": "alice@corp"}', debounce => '{"key": "d1", "delay": "1h"}');
RESET ROLE;
SQL
theirs=$(q "SET ROLE mallory; SELECT taskorch.trigger('alice-main', '{}', idempotency_key => 'order-42')" | tail -1)
expect "mallory's trigger with alice's idempotency key makes a run of its own" \
	"$(q "SELECT count(*) FROM taskorch.run WHERE id = '$theirs' AND triggered_by = 'mallory'::regrole")" 1
q "SET ROLE mallory; SELECT taskorch.trigger('alice-main', '{\"to\": \"eve@evil\"}', debounce => '{\"key\": \"d1\", \"delay\": \"2s\", \"mode\": \"trailing\"}')" >/dev/null
expect "mallory's debounced trigger leaves alice's delayed run as it was" \
	"$(q "SELECT status || ' ' || (payload->>'to') || ' ' || (run_at > now() + interval '50 minutes') FROM taskorch.run WHERE debounce_key = 'd1' AND triggered_by = 'alice'::regrole")" \
	"DELAYED alice@corp true"
expect "a trigger with an idempotency key takes no advisory lock" \
	"$(psql_as "$port" postgres -tA -c "BEGIN" -c "SELECT taskorch.trigger('bystander', '{}', idempotency_key => 'k-1')" \
		-c "SELECT string_agg(DISTINCT locktype, ',') FILTER (WHERE locktype IN ('advisory', 'object')) FROM pg_locks WHERE pid = pg_backend_pid()" -c "ROLLBACK" | tail -1)" object

# 7b. commands a role is refused stop no worker
pids=$(q "SELECT string_agg(pid::text, ',') FROM taskorch.workers()")
for sql in "DROP EXTENSION taskorch" "ALTER EXTENSION taskorch UPDATE" "ALTER DATABASE postgres RENAME TO elsewhere" \
		"DROP DATABASE postgres" "ALTER DATABASE postgres SET TABLESPACE pg_default"; do
	psql_as "$port" postgres -c "SET ROLE mallory" -c "$sql" >/dev/null 2>&1 && fail "mallory could: $sql"
done
expect "refused DROP/ALTER EXTENSION and ALTER/DROP DATABASE stop no worker" \
	"$(q "SELECT string_agg(pid::text, ',') FROM taskorch.workers()")" "$pids"

# 7d. trigger() reads its task and writes the run without a plan: mallory's
# temp tables named run and task, her temp nextval(), now() and text || bigint,
# her session settings, and a read-only transaction change none of it
read -r id_ok temp_rows < <(psql_as "$port" postgres -tA 2>&1 <<'SQL' | tail -1 | tr '|' ' '
SET ROLE mallory;
CREATE TEMP TABLE run (id text, task_id text);
CREATE TEMP TABLE task (id text, owner oid, queue text);
INSERT INTO pg_temp.task VALUES ('m-noop', 10, 'evil');
CREATE FUNCTION pg_temp.nextval(regclass) RETURNS bigint LANGUAGE sql AS 'SELECT 666::bigint';
CREATE FUNCTION pg_temp.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT '2000-01-01'::timestamptz $$;
CREATE FUNCTION pg_temp.cat(text, bigint) RETURNS text LANGUAGE sql AS $$ SELECT 'pwned' $$;
CREATE OPERATOR pg_temp.|| (LEFTARG = text, RIGHTARG = bigint, FUNCTION = pg_temp.cat);
SET search_path = pg_temp, public, pg_catalog;
SET datestyle = 'SQL, DMY';
SET timezone = 'Pacific/Kiritimati';
SELECT taskorch.trigger('m-noop', '{"planted": true}') AS r \gset
SELECT :'r' ~ '^run_[0-9]+$', (SELECT count(*) FROM pg_temp.run);
SQL
)
expect "mallory's planted objects: the run id" "$id_ok" t
expect "mallory's planted objects: her temp run table" "$temp_rows" 0
expect "the planted trigger's run, as taskorch.run holds it" \
	"$(q "SELECT queue || ' ' || owner || ' ' || (updated_at > now() - interval '1 hour') FROM taskorch.run WHERE payload = '{\"planted\": true}'")" \
	"m-noop mallory true"
expect "trigger() in a read-only transaction" \
	"$(q "SET ROLE mallory; BEGIN READ ONLY; SELECT taskorch.trigger('m-noop')" 2>&1 | grep -o 'cannot execute taskorch.trigger() in a read-only transaction')" \
	"cannot execute taskorch.trigger() in a read-only transaction"

# 8. DROP EXTENSION while a run executes, and while children are streamed
q "SELECT taskorch.trigger('sleepy')" >/dev/null
wait_for "$port" postgres "SELECT EXISTS (SELECT FROM taskorch.workers() WHERE run_id IS NOT NULL)" 30 ||
	fail "the sleepy run did not start"
q "BEGIN; DROP EXTENSION taskorch; ROLLBACK" >/dev/null
wait_for "$port" postgres "SELECT count(*) = 1 FROM taskorch.workers() WHERE pid IS NOT NULL" 30 ||
	fail "the workers did not come back after a rolled back DROP EXTENSION"
echo "ok - a rolled back DROP EXTENSION leaves the extension and its workers"
q "SET ROLE mallory; SELECT taskorch.trigger('m-items', '{\"query\": \"SELECT jsonb_build_object(''i'', g) AS payload FROM generate_series(1, 100000) g\"}')" >/dev/null
wait_for "$port" postgres "SELECT EXISTS (SELECT FROM taskorch.workers() WHERE run_id IS NOT NULL)" 30 ||
	fail "no run started"
sleep 0.3
start=$SECONDS
q "DROP EXTENSION taskorch CASCADE" >/dev/null
[ $((SECONDS - start)) -lt 10 ] || fail "DROP EXTENSION took $((SECONDS - start)) s"
wait_for "$port" postgres "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'taskorch worker')" 30 ||
	fail "workers kept running after DROP EXTENSION"
! grep -E "deadlock detected|could not open relation" "$dir/server.log" ||
	fail "the server log has errors around DROP EXTENSION"
expect "DROP EXTENSION succeeded" "$(q "SELECT count(*) FROM pg_extension WHERE extname = 'taskorch'")" 0
echo "hostile test passed"
