#!/usr/bin/env bash
# Worker lifecycle against a real cluster: the launcher finds databases
# with the extension on its own; CREATE/DROP EXTENSION, DROP DATABASE,
# CREATE DATABASE ... TEMPLATE, ALTER DATABASE ... RENAME and a change of
# taskorch.workers_per_database all work while the server runs.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/test/lib.sh"
port=${LIFE_PORT:-55438}
fail() { echo "FAIL: $*"; tail -20 "$dir/server.log"; exit 1; }
ok() { echo "ok - $*"; }
sql() { psql_as "$port" "$@"; }

# workers running for database $1
workers_of() {
	sql postgres -tAc "SELECT count(*) FROM taskorch.workers() WHERE database = '$1' AND pid IS NOT NULL"
}
expect_workers() {
	local db=$1 n=$2 deadline=$((SECONDS + 20))
	while [ $SECONDS -lt $deadline ]; do
		[ "$(workers_of "$db")" = "$n" ] && return 0
		sleep 0.1
	done
	fail "expected $n workers for $db, have $(workers_of "$db")"
}
# trigger a run in $1 and wait until it completed
run_completes() {
	local db=$1 run
	run=$(sql "$db" -tAc "SELECT taskorch.trigger('life', '{}')")
	wait_for "$port" "$db" "SELECT status = 'COMPLETED' FROM taskorch.runs WHERE id = '$run'" 20 ||
		fail "run $run in $db did not complete"
}
install() {
	sql "$1" -c "CREATE EXTENSION taskorch" \
		-c "CREATE OR REPLACE FUNCTION life(p jsonb) RETURNS jsonb LANGUAGE sql AS 'SELECT p'" \
		-c "SELECT taskorch.register_task('life', 'life(jsonb)')" >/dev/null
}

# a fixed pool: the test counts the workers
throwaway_cluster lifecycle "$port" "taskorch.workers_per_database = 2" "taskorch.max_workers_per_database = 0"
sql postgres -c "CREATE EXTENSION taskorch" >/dev/null	# for taskorch.workers() here
expect_workers postgres 2

sql postgres -c "CREATE DATABASE app" >/dev/null
sleep 1
[ "$(workers_of app)" = 0 ] || fail "a database without the extension has workers"
ok "no workers for a database without the extension"

install app
expect_workers app 2
run_completes app
ok "CREATE EXTENSION starts the database's workers, which run runs"

sql app -c "DROP EXTENSION taskorch CASCADE" >/dev/null
expect_workers app 0
ok "DROP EXTENSION stops them"
install app
expect_workers app 2
run_completes app
ok "CREATE EXTENSION again starts them again"

sql postgres -c "ALTER SYSTEM SET taskorch.workers_per_database = 3" -c "SELECT pg_reload_conf()" >/dev/null
expect_workers app 3
sql postgres -c "ALTER SYSTEM SET taskorch.workers_per_database = 1" -c "SELECT pg_reload_conf()" >/dev/null
expect_workers app 1
run_completes app
ok "taskorch.workers_per_database changes take effect on reload"

start=$SECONDS
sql postgres -c "CREATE DATABASE app_copy TEMPLATE app" >/dev/null || fail "CREATE DATABASE ... TEMPLATE app"
expect_workers app 1
expect_workers app_copy 1
run_completes app_copy
ok "CREATE DATABASE ... TEMPLATE a database with workers; the copy gets its own"

sql postgres -c "ALTER DATABASE app_copy RENAME TO app_renamed" >/dev/null || fail "ALTER DATABASE RENAME"
expect_workers app_renamed 1
ok "ALTER DATABASE ... RENAME"

sql postgres -c "DROP DATABASE app" >/dev/null || fail "DROP DATABASE app"
sql postgres -c "DROP DATABASE app_renamed" >/dev/null || fail "DROP DATABASE app_renamed"
[ $((SECONDS - start)) -lt 30 ] || fail "database commands took $((SECONDS - start)) s"
[ "$(sql postgres -tAc "SELECT count(*) FROM taskorch.workers() WHERE database IS NULL OR database NOT IN (SELECT datname FROM pg_database)")" = 0 ] ||
	fail "workers left for dropped databases"
ok "DROP DATABASE while its workers run"

launcher=$(sql postgres -tAc "SELECT pid FROM pg_stat_activity WHERE backend_type = 'taskorch launcher'")
kill -TERM "$launcher"
wait_for "$port" postgres "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'taskorch launcher'
											 AND pid <> $launcher)" 20 || fail "the launcher did not come back"
expect_workers postgres 1
sql postgres -c "CREATE OR REPLACE FUNCTION life(p jsonb) RETURNS jsonb LANGUAGE sql AS 'SELECT p'" \
	-c "SELECT taskorch.register_task('life', 'life(jsonb)')" >/dev/null
run_completes postgres
ok "a restarted launcher takes over the workers"
# a task's own messages: all in its run's logs, whatever log_min_messages
# says; in the server log at or above it, also after a reload changes it
# (a worker lowers log_min_messages for its session, and again at a reload)
sql postgres -c "CREATE OR REPLACE FUNCTION chatty(p jsonb) RETURNS jsonb LANGUAGE plpgsql AS \$\$
BEGIN
	RAISE INFO 'chatty info %', p->>'k';
	RAISE NOTICE 'chatty notice %', p->>'k';
	RAISE WARNING 'chatty warning %', p->>'k';
	RETURN p;
END \$\$" -c "SELECT taskorch.register_task('chatty', 'chatty(jsonb)')" >/dev/null
chatty() {	# chatty KEY: a run of chatty completes, its three messages in its logs
	local run
	run=$(sql postgres -tAc "SELECT taskorch.trigger('chatty', jsonb_build_object('k', '$1'))")
	wait_for "$port" postgres "SELECT status = 'COMPLETED' FROM taskorch.runs WHERE id = '$run'" 20 ||
		fail "run $run of chatty did not complete"
	[ "$(sql postgres -tAc "SELECT string_agg(level, ',' ORDER BY position) FROM taskorch.logs
							 WHERE run_id = '$run' AND message LIKE 'chatty %'")" = "info,notice,warn" ] ||
		fail "run $run's logs lack its messages: $(sql postgres -tAc "SELECT * FROM taskorch.logs WHERE run_id = '$run'")"
}
logged() { grep -q "$1" "$dir/server.log"; }
reload_log_level() {
	sql postgres -c "ALTER SYSTEM $1" -c "SELECT pg_reload_conf()" >/dev/null
	sleep 1		# the workers read the configuration between batches
}
chatty k1
logged "WARNING:  chatty warning k1" || fail "a task's WARNING is not in the server log"
! logged "chatty notice k1" || fail "a task's NOTICE reached the server log (log_min_messages = warning)"
reload_log_level "SET log_min_messages = notice"
chatty k2
logged "NOTICE:  chatty notice k2" || fail "log_min_messages reloaded as notice: a task's NOTICE is not in the server log"
! logged "chatty info k2" || fail "a task's INFO reached the server log (log_min_messages = notice)"
reload_log_level "RESET log_min_messages"
chatty k3
logged "WARNING:  chatty warning k3" || fail "a task's WARNING is not in the server log after a reload"
! logged "chatty notice k3" || fail "log_min_messages reloaded as warning: a task's NOTICE still reaches the server log"
ok "a task's messages: all in its run's logs; in the server log at log_min_messages, also after reloads change it"
echo "lifecycle test passed"
