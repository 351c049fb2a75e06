#!/usr/bin/env bash
# pg_dump and pg_restore into a cluster that lacks a role owning tasks.
#
# Cluster A: roles alice, bob and carol own tasks; runs completed, failed
# (with attempts and logs) and queued; bob also owns a queue, a schema, a
# wait token and a batch; carol is dropped after triggering hers (a new
# carol does not take over her task).  Dumped with pg_dump -Fc, restored
# into cluster B that has alice but neither bob nor carol, and where
# carol's old OID belongs to another role, mallory.
# Checks: the restore reports no error and every row is there (each run
# with its owner, status and attempts as in A); bob's rows show his name;
# alice's queued runs execute as alice; bob's and carol's never execute as
# anyone (they fail with a message naming the role); once bob is created,
# his runs execute as bob; carol's never execute as mallory.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/test/lib.sh"
portA=${RESTORE_PORT_A:-55461}
portB=${RESTORE_PORT_B:-55462}
dirA=$(mktemp -d /tmp/taskorch-restoreA.XXXXXX)
dirB=$(mktemp -d /tmp/taskorch-restoreB.XXXXXX)
trap 'cluster_stop "$dirA" immediate; cluster_stop "$dirB" immediate; [ -n "${KEEP:-}" ] || rm -rf "$dirA" "$dirB"' EXIT
a() { PGHOST=$dirA psql_as "$portA" "$@"; }
b() { PGHOST=$dirB psql_as "$portB" "$@"; }
# until HOST-FN DB SQL [SECONDS]: wait until the query prints t
until_true() {
	local fn=$1 db=$2 sql=$3 secs=${4:-60}
	local deadline=$((SECONDS + secs))
	while [ $SECONDS -lt $deadline ]; do
		[ "$($fn "$db" -tAc "$sql" 2>/dev/null)" = t ] && return 0
		sleep 0.2
	done
	echo "timed out after ${secs}s waiting for: $sql" >&2
	return 1
}
set_workers() {
	$1 postgres -c "ALTER SYSTEM SET taskorch.workers_per_database = $2" -c "SELECT pg_reload_conf()" >/dev/null
}

# --- cluster A ---------------------------------------------------------------
cluster_start "$dirA" "$portA" "taskorch.workers_per_database = 2"
a postgres >/dev/null <<'SQL'
CREATE ROLE alice;
CREATE ROLE bob;
CREATE ROLE carol;
CREATE DATABASE app;
SQL
a app >/dev/null <<'SQL'
CREATE EXTENSION taskorch;
CREATE TABLE done_by (task text, who text, payload jsonb);
GRANT INSERT ON done_by TO PUBLIC;
CREATE FUNCTION whoami(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	PERFORM taskorch.log('info', 'running as ' || current_user);
	INSERT INTO public.done_by VALUES (taskorch.current_run()->>'taskIdentifier', current_user, payload);
	RETURN jsonb_build_object('as', current_user);
END $$;
CREATE FUNCTION boom(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	PERFORM taskorch.log('warn', 'about to fail');
	RAISE EXCEPTION 'boom as %', current_user;
END $$;
SET ROLE alice;
SELECT taskorch.register_task('a-echo', 'whoami(jsonb)');
SELECT taskorch.register_task('a-fail', 'boom(jsonb)', max_attempts => 2,
							  retry => '{"minTimeoutInMs": 10, "maxTimeoutInMs": 20}');
SELECT taskorch.grant_trigger('a-echo', 'bob');
SET ROLE bob;
SELECT taskorch.register_task('b-echo', 'whoami(jsonb)', max_attempts => 1);
SELECT taskorch.register_task('b-patient', 'whoami(jsonb)', max_attempts => 1000,
							  retry => '{"minTimeoutInMs": 200, "maxTimeoutInMs": 300}');
SELECT taskorch.register_task('b-fail', 'boom(jsonb)', max_attempts => 2,
							  retry => '{"minTimeoutInMs": 10, "maxTimeoutInMs": 20}');
SELECT taskorch.create_queue('b-queue', 2);
SELECT taskorch.define_schema('b-schema', '{"type": "object"}');
SELECT taskorch.create_wait_token();
SET ROLE carol;
SELECT taskorch.register_task('c-echo', 'whoami(jsonb)', max_attempts => 1);
-- runs that finish in A: completed, and failed after two attempts
SET ROLE alice;
SELECT taskorch.trigger('a-echo', jsonb_build_object('i', g)) FROM generate_series(1, 3) g;
SELECT taskorch.trigger('a-fail', jsonb_build_object('i', g)) FROM generate_series(1, 2) g;
SET ROLE bob;
SELECT taskorch.trigger('b-echo', jsonb_build_object('i', g)) FROM generate_series(1, 3) g;
SELECT taskorch.trigger('b-fail', jsonb_build_object('i', g)) FROM generate_series(1, 2) g;
SELECT taskorch.trigger('a-echo', '{"by": "bob"}');
SELECT taskorch.batch_trigger('b-echo', '[{"payload": {"batch": 1}}, {"payload": {"batch": 2}}]');
SQL
until_true a app "SELECT count(*) = 13 FROM taskorch.run WHERE taskorch.finished(status)" ||
	fail "the runs of A did not finish"
# runs left queued at the dump: no workers from now on
set_workers a 0
until_true a app "SELECT NOT EXISTS (SELECT FROM taskorch.workers() WHERE pid IS NOT NULL)" ||
	fail "the workers of A did not stop"
a app >/dev/null <<'SQL'
SET ROLE alice;
SELECT taskorch.trigger('a-echo', jsonb_build_object('queued', g)) FROM generate_series(1, 4) g;
SET ROLE bob;
SELECT taskorch.trigger('b-echo', jsonb_build_object('queued', g)) FROM generate_series(1, 3) g;
SELECT taskorch.trigger('b-patient', jsonb_build_object('queued', g)) FROM generate_series(1, 2) g;
SELECT taskorch.trigger('a-echo', '{"queued": "by bob"}');
SET ROLE carol;
SELECT taskorch.trigger('c-echo', jsonb_build_object('queued', g)) FROM generate_series(1, 2) g;
SQL
carol_oid=$(a postgres -tAc "SELECT oid FROM pg_roles WHERE rolname = 'carol'")
a postgres -c "DROP ROLE carol" >/dev/null
# in A, carol's task can no longer be triggered, even once a new carol exists
a postgres -c "CREATE ROLE carol" >/dev/null
trigger_err=$(a app -tAc "SELECT taskorch.trigger('c-echo')" 2>&1 || true)
grep -q 'role "carol", the owner of task "c-echo", does not exist' <<<"$trigger_err" ||
	fail "triggering dropped carol's task in A: $trigger_err"
grep -q 'The role was dropped' <<<"$trigger_err" || fail "no detail that carol was dropped: $trigger_err"
a postgres -c "DROP ROLE carol" >/dev/null
echo "ok - in A, the task of dropped carol is refused, even once a new role carol exists"
# every run as A has it, and the row counts of every table that names roles
runs_sql="SELECT string_agg(concat_ws(' ', id, task_id, owner, triggered_by, status, attempts), E'\n' ORDER BY id) FROM taskorch.run"
counts_sql="SELECT concat_ws(' ', (SELECT count(*) FROM taskorch.task), (SELECT count(*) FROM taskorch.run),
	(SELECT count(*) FROM taskorch.attempt), (SELECT count(*) FROM taskorch.log),
	(SELECT count(*) FROM taskorch.queue), (SELECT count(*) FROM taskorch.schema),
	(SELECT count(*) FROM taskorch.batch), (SELECT count(*) FROM taskorch.wait_token))"
runs_a=$(a app -tAc "$runs_sql")
counts_a=$(a app -tAc "$counts_sql")
statuses=$(a app -tAc "SELECT string_agg(DISTINCT status::text, ' ' ORDER BY status::text) FROM taskorch.run")
[ "$statuses" = "COMPLETED FAILED QUEUED" ] || fail "A's runs are $statuses, not completed, failed and queued"
[ "$(a app -tAc "SELECT count(*) FROM taskorch.run WHERE owner::text = 'carol' AND status = 'QUEUED'")" = 2 ] ||
	fail "carol's queued runs do not show her name after DROP ROLE"
as_postgres "$PGBIN/pg_dump" -h "$dirA" -p "$portA" -U postgres -Fc -f "$dirA/app.dump" app
cluster_stop "$dirA"

# the dump names roles, never by a bare OID (which B would read as mallory's)
data=$(as_postgres "$PGBIN/pg_restore" -a -t run -t task -f - "$dirA/app.dump")
grep -q "carol" <<<"$data" || fail "the dump does not name carol"
! grep -qw "$carol_oid" <<<"$data" || fail "the dump holds carol's OID $carol_oid"
echo "ok - the dump names the owners, also carol's (dropped): not her OID $carol_oid"

# --- cluster B: alice, no bob, mallory with carol's old OID -------------------
cluster_start "$dirB" "$portB" "taskorch.workers_per_database = 0"
b postgres >/dev/null <<SQL
DO \$\$
BEGIN
	LOOP
		CREATE ROLE mallory;
		EXIT WHEN (SELECT oid FROM pg_roles WHERE rolname = 'mallory') >= $carol_oid;
		DROP ROLE mallory;
	END LOOP;
END \$\$;
CREATE ROLE alice;
CREATE DATABASE app;
SQL
[ "$(b postgres -tAc "SELECT oid FROM pg_roles WHERE rolname = 'mallory'")" = "$carol_oid" ] ||
	fail "could not give mallory carol's OID $carol_oid"
# restore with the workers stopped (docs/operations.md)
if ! as_postgres "$PGBIN/pg_restore" -h "$dirB" -p "$portB" -U postgres -d app "$dirA/app.dump" \
	>"$dirB/restore.log" 2>&1; then
	cat "$dirB/restore.log"
	fail "pg_restore reported errors"
fi
[ "$(b app -tAc "$runs_sql")" = "$runs_a" ] ||
	fail "the runs of B differ from A's: $(diff <(echo "$runs_a") <(b app -tAc "$runs_sql"))"
[ "$(b app -tAc "$counts_sql")" = "$counts_a" ] ||
	fail "row counts (task run attempt log queue schema batch wait_token) of B: $(b app -tAc "$counts_sql"), of A: $counts_a"
echo "ok - pg_restore without bob: every task, run, attempt and log of every role is there ($counts_a)"

[ "$(b app -tAc "SELECT string_agg(DISTINCT owner::text, ' ') FROM taskorch.tasks WHERE id LIKE 'b-%'")" = bob ] ||
	fail "bob's tasks do not show his name"
[ "$(b app -tAc "SELECT count(*) FROM taskorch.runs_wide WHERE owner::text = 'bob' AND owner::oid = 0")" = 12 ] ||
	fail "bob's runs do not show his name (or name a role)"
missing=$(b app -tAc "SELECT string_agg(concat_ws(' ', role, in_column, rows), ', ' ORDER BY role, in_column) FROM taskorch.missing_roles")
expected="bob batch.triggered_by 1, bob queue.owner 1, bob run.owner 12, bob run.triggered_by 14, bob schema.owner 1, bob task.owner 3, bob task.triggerers 1, bob wait_token.owner 1, carol run.owner 2, carol run.triggered_by 2, carol task.owner 1"
[ "$missing" = "$expected" ] || fail "missing_roles shows: $missing"
echo "ok - bob's rows show his name; taskorch.missing_roles lists bob's and carol's rows"

trigger_err=$(b app -tAc "SELECT taskorch.trigger('b-echo')" 2>&1 || true)
grep -q 'role "bob", the owner of task "b-echo", does not exist' <<<"$trigger_err" ||
	fail "triggering bob's task: $trigger_err"
grep -q 'CREATE ROLE bob' <<<"$trigger_err" || fail "no hint to create bob: $trigger_err"

b app -c "TRUNCATE done_by" >/dev/null
set_workers b 2
until_true b app "SELECT count(*) = 5 FROM taskorch.run WHERE task_id = 'a-echo' AND status = 'COMPLETED' AND payload ? 'queued'" ||
	fail "alice's queued runs did not complete in B"
[ "$(b app -tAc "SELECT string_agg(who || ' ' || n, ', ') FROM (SELECT who, count(*) n FROM done_by GROUP BY who) w")" = "alice 5" ] ||
	fail "in B the runs executed as: $(b app -tAc "SELECT who, task FROM done_by")"
echo "ok - alice's queued runs (one triggered by bob) executed in B as alice"

bob_msg='role "bob", the owner of task "b-echo", does not exist'
until_true b app "SELECT count(*) = 3 FROM taskorch.run WHERE task_id = 'b-echo' AND status = 'FAILED' AND payload ? 'queued'
				   AND error->>'message' = '$bob_msg' AND error->>'hint' LIKE 'Create the role (CREATE ROLE bob;%'" ||
	fail "bob's queued runs did not fail with the message naming him: $(b app -tAc "SELECT status, error FROM taskorch.run WHERE task_id = 'b-echo' AND payload ? 'queued'")"
until_true b app "SELECT count(DISTINCT run_id) = 2 FROM taskorch.attempts
				   WHERE task_id = 'b-patient' AND message = 'role \"bob\", the owner of task \"b-patient\", does not exist'" ||
	fail "bob's patient runs did not record failed attempts naming him"
until_true b app "SELECT count(*) = 2 FROM taskorch.run WHERE task_id = 'c-echo' AND status = 'FAILED'
				   AND error->>'message' = 'role \"carol\", the owner of task \"c-echo\", does not exist'" ||
	fail "carol's queued runs did not fail with the message naming her"
[ "$(b app -tAc "SELECT count(*) FROM taskorch.run WHERE task_id = 'b-patient' AND status = 'QUEUED'")" = 2 ] ||
	fail "bob's patient runs are no longer queued (retrying)"
[ "$(b app -tAc "SELECT count(*) FROM done_by WHERE who <> 'alice'")" = 0 ] ||
	fail "runs of bob or carol executed as: $(b app -tAc "SELECT who, task FROM done_by WHERE who <> 'alice'")"
echo "ok - bob's and carol's queued runs executed as no one: their attempts fail naming the missing role"

b postgres -c "CREATE ROLE bob" >/dev/null
until_true b app "SELECT count(*) = 2 FROM taskorch.run WHERE task_id = 'b-patient' AND status = 'COMPLETED'" ||
	fail "bob's patient runs did not complete once bob exists"
replayed=$(b app -tAc "SELECT taskorch.replay(id) FROM taskorch.run WHERE task_id = 'b-echo' AND status = 'FAILED' ORDER BY id LIMIT 1")
triggered=$(b app -tAc "SET ROLE bob; SELECT taskorch.trigger('b-echo', '{\"new\": true}')")
until_true b app "SELECT count(*) = 2 FROM taskorch.run WHERE id IN ('$replayed', '$triggered') AND status = 'COMPLETED'" ||
	fail "a replayed and a new run of bob's task did not complete"
[ "$(b app -tAc "SELECT string_agg(task || ' ' || n, ', ' ORDER BY task) FROM (SELECT task, count(*) n FROM done_by WHERE who = 'bob' GROUP BY task) t")" = "b-echo 2, b-patient 2" ] ||
	fail "bob's runs executed as: $(b app -tAc "SELECT who, task FROM done_by WHERE task LIKE 'b-%'")"
[ "$(b app -tAc "SELECT string_agg(DISTINCT role, ' ') FROM taskorch.missing_roles")" = carol ] ||
	fail "missing_roles still lists bob"
echo "ok - after CREATE ROLE bob his retrying runs, a replay and a new run executed as bob"

replay_err=$(b app -tAc "SELECT taskorch.replay(id) FROM taskorch.run WHERE task_id = 'c-echo' LIMIT 1" 2>&1 || true)
grep -q 'role "carol", the owner of task "c-echo", does not exist' <<<"$replay_err" ||
	fail "replaying carol's run: $replay_err"
sleep 1
[ "$(b app -tAc "SELECT count(*) FROM done_by WHERE who = 'mallory' OR task = 'c-echo'")" = 0 ] ||
	fail "carol's runs executed as mallory, who has her old OID"
echo "ok - carol's runs (her role dropped in A) never executed as mallory, who has carol's OID in B"
