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
echo "lifecycle test passed"
