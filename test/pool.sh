#!/usr/bin/env bash
# Workers for every database: against real clusters.
#
#   1. max_worker_processes = 8, two workers wanted per database, four
#      databases with the extension (the launcher and 2 x 4 workers would
#      need 9 slots): each database gets a worker (the launcher gives every
#      database its first worker before any gets a second, and takes a
#      second one back for a database left without), and runs there;
#   3. (first) the pool: one worker kept, up to 4: slow runs grow it (with
#      no worker kept meanwhile, the extra ones take fast runs too), and
#      once idle it shrinks back to one; a queue limited to one run at a
#      time does not grow it; taskorch.max_workers lowered under it, it
#      shrinks to what that allows; a task never measured grows it while
#      its first runs execute; then taskorch.max_workers caps the
#      workers of all databases, each getting its first one before any more;
#   2. max_worker_processes = 3 (the logical replication launcher, taskorch's
#      launcher and one worker), two
#      databases: the second gets none, and says so where users look:
#      CREATE EXTENSION warns, taskorch.database_workers shows it starved,
#      trigger() raises a NOTICE once per session.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/test/lib.sh"
port=${POOL_PORT:-55444}
q() { psql_as "$port" "$1" -tAc "$2"; }
# nap_task DB TASK SECONDS: register TASK in DB, whose runs sleep SECONDS and
# return the pid of the worker that ran them
nap_task() {
	psql_as "$port" "$1" -q >/dev/null <<SQL
CREATE FUNCTION ${2//-/_}(payload jsonb) RETURNS jsonb LANGUAGE sql AS \$\$
	SELECT pg_sleep($3); SELECT jsonb_build_object('pid', pg_backend_pid()) \$\$;
SELECT taskorch.register_task('$2', '${2//-/_}(jsonb)');
SQL
}

throwaway_cluster pool "$port" "max_worker_processes = 8" "taskorch.workers_per_database = 2" \
	"max_parallel_workers = 0"
for db in d1 d2 d3 d4; do
	q postgres "CREATE DATABASE $db" >/dev/null
	psql_as "$port" "$db" -q >/dev/null 2>&1 <<'SQL'
CREATE EXTENSION taskorch;
CREATE FUNCTION noop(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
SELECT taskorch.register_task('noop', 'noop(jsonb)');
SQL
done
for db in d1 d2 d3 d4; do
	wait_for "$port" "$db" "SELECT running >= 1 FROM taskorch.database_workers WHERE database = current_database()" 60 ||
		fail "database $db got no worker: $(q "$db" "SELECT * FROM taskorch.database_workers")"
	run=$(q "$db" "SELECT taskorch.trigger('noop')")
	wait_for "$port" "$db" "SELECT status = 'COMPLETED' FROM taskorch.runs WHERE id = '$run'" 30 ||
		fail "a run in $db did not complete"
done
echo "ok - four databases, 8 worker slots for 9 wanted workers: each database has a worker, and runs run"
cluster_stop "$dir" immediate

cluster_restart "$dir"
q postgres "ALTER SYSTEM SET taskorch.workers_per_database = 1" >/dev/null
q postgres "ALTER SYSTEM SET taskorch.max_workers_per_database = 4" >/dev/null
q postgres "SELECT pg_reload_conf()" >/dev/null
nap_task d1 nap 0.5
wait_for "$port" d1 "SELECT running = 1 FROM taskorch.database_workers WHERE database = 'd1'" 30 ||
	fail "the pool did not start at one worker: $(q d1 "SELECT * FROM taskorch.database_workers")"
q d1 "SELECT count(taskorch.trigger('nap')) FROM generate_series(1, 24)" >/dev/null
wait_for "$port" d1 "SELECT running >= 3 FROM taskorch.database_workers WHERE database = 'd1'" 30 ||
	fail "the pool did not grow: $(q d1 "SELECT * FROM taskorch.database_workers")"
grown=$(q d1 "SELECT running FROM taskorch.database_workers WHERE database = 'd1'")
[ "$grown" -le 4 ] || fail "the pool grew to $grown workers, past its ceiling of 4"
# no kept worker (workers_per_database = 0) while extra ones remain: they
# take the fast runs too, as no kept worker would
q postgres "ALTER SYSTEM SET taskorch.workers_per_database = 0" >/dev/null
q postgres "SELECT pg_reload_conf()" >/dev/null
q d1 "SELECT count(taskorch.trigger('noop')) FROM generate_series(1, 500)" >/dev/null
wait_for "$port" d1 "SELECT count(*) = 0 FROM taskorch.run WHERE task_id = 'noop' AND status = 'QUEUED'" 20 ||
	fail "with no kept worker, extra ones left fast runs queued: $(q d1 "SELECT count(*) FROM taskorch.run WHERE task_id = 'noop' AND status = 'QUEUED'") of 500, $(q d1 "SELECT * FROM taskorch.database_workers")"
q postgres "ALTER SYSTEM SET taskorch.workers_per_database = 1" >/dev/null
q postgres "SELECT pg_reload_conf()" >/dev/null
echo "ok - with no kept worker, the extra ones ran 500 fast runs"
wait_for "$port" d1 "SELECT count(*) = 24 FROM taskorch.runs WHERE task_id = 'nap' AND status = 'COMPLETED'" 60 || fail "the slow runs did not complete"
# extra workers idle beside the kept one: a delayed run moved close starts
# when due, not at the next poll (5 s here): the commit calls the kept
# worker, which keeps the maintenance (an extra one woken would not promote it)
q postgres "ALTER SYSTEM SET taskorch.idle_poll_interval = '5s'" >/dev/null
q postgres "SELECT pg_reload_conf()" >/dev/null
[ "$(q d1 "SELECT running FROM taskorch.database_workers WHERE database = 'd1'")" -ge 2 ] ||
	fail "no extra worker left for the delayed runs' case: $(q d1 "SELECT * FROM taskorch.database_workers")"
for i in 1 2 3 4 5 6; do
	run=$(q d1 "SELECT taskorch.trigger('noop', delay => '1h')")
	q d1 "SELECT taskorch.reschedule('$run', now() + interval '50 milliseconds')" >/dev/null
	wait_until "$port" d1 "(SELECT status = 'COMPLETED' FROM taskorch.runs WHERE id = '$run')" 0.05 2 >/dev/null 2>&1 ||
		fail "delayed run $i moved 50 ms ahead was $(q d1 "SELECT status FROM taskorch.runs WHERE id = '$run'") 2 s later"
done
q postgres "ALTER SYSTEM RESET taskorch.idle_poll_interval" >/dev/null
q postgres "SELECT pg_reload_conf()" >/dev/null
echo "ok - with extra workers idle, six delayed runs moved 50 ms ahead each ran when due"
wait_for "$port" d1 "SELECT running = 1 FROM taskorch.database_workers WHERE database = 'd1'" 60 ||
	fail "the pool did not shrink back: $(q d1 "SELECT * FROM taskorch.database_workers")"
echo "ok - the pool: one worker kept, grown to $grown (ceiling 4) by slow runs, back to one once idle"

# a queue limited to one run at a time: its runs behind the one executing
# wait for its slot, not for a worker, and the pool does not grow for them
# (before, it grew to its ceiling, the extra workers finding nothing to run)
nap_task d3 serial-nap 0.3
wait_for "$port" d3 "SELECT sum(running) = 4 FROM taskorch.database_workers" 30 ||
	fail "the pools are not at one worker each: $(q d3 "SELECT * FROM taskorch.database_workers")"
most=$(psql_as "$port" d3 -tA <<'SQL' | tail -1
CREATE TEMP TABLE sample (running int);
SELECT count(taskorch.trigger('serial-nap', options => '{"queue": {"name": "serial", "concurrencyLimit": 1}}'))
  FROM generate_series(1, 8);
DO $$ BEGIN
	WHILE (SELECT count(*) FROM taskorch.run WHERE task_id = 'serial-nap' AND status = 'COMPLETED') < 8 LOOP
		INSERT INTO sample SELECT running FROM taskorch.database_workers WHERE database = 'd3';
		COMMIT; PERFORM pg_sleep(0.02);
	END LOOP;
END $$;
SELECT max(running) FROM sample;
SQL
)
[ "$most" = 1 ] || fail "8 runs of a queue limited to 1 grew the pool to $most workers"
echo "ok - a queue limited to one run at a time keeps the pool at its one kept worker"

# taskorch.max_workers lowered under a grown pool: the pool keeps what it
# allows, its last extra worker exits when idle, and it does not grow back
# unasked once the setting is raised (before: 2 workers 12 s idle, then 3)
nap_task d3 wide-nap 1
q d3 "SELECT count(taskorch.trigger('wide-nap')) FROM generate_series(1, 6)" >/dev/null
wait_for "$port" d3 "SELECT running = 3 FROM taskorch.database_workers WHERE database = 'd3'" 10 ||
	fail "d3's pool did not grow to 3: $(q d3 "SELECT * FROM taskorch.database_workers")"
q postgres "ALTER SYSTEM SET taskorch.max_workers = 5" >/dev/null
q postgres "SELECT pg_reload_conf()" >/dev/null
wait_for "$port" d3 "SELECT count(*) = 6 FROM taskorch.run WHERE task_id = 'wide-nap' AND status = 'COMPLETED'" 30 ||
	fail "the wide-nap runs did not complete"
wait_for "$port" d3 "SELECT running = 1 FROM taskorch.database_workers WHERE database = 'd3'" 20 ||
	fail "under taskorch.max_workers = 5, d3's idle pool did not shrink back: $(q d3 "SELECT * FROM taskorch.database_workers")"
q postgres "ALTER SYSTEM RESET taskorch.max_workers" >/dev/null
q postgres "SELECT pg_reload_conf()" >/dev/null
sleep 2
[ "$(q d3 "SELECT running FROM taskorch.database_workers WHERE database = 'd3'")" = 1 ] ||
	fail "with taskorch.max_workers raised again, d3's pool grew back unasked: $(q d3 "SELECT * FROM taskorch.database_workers")"
echo "ok - taskorch.max_workers lowered under a grown pool: it shrinks back when idle, and does not grow back unasked"

# a task never measured: the pool grows while its first runs execute, not
# once one has ended and shown the task slow (before, the runs started
# before the first one ended were all the kept worker's: one)
nap_task d2 first-nap 2
wait_for "$port" d2 "SELECT running = 1 FROM taskorch.database_workers WHERE database = 'd2'" 30 ||
	fail "d2's pool is not at one worker: $(q d2 "SELECT * FROM taskorch.database_workers")"
q d2 "SELECT count(taskorch.trigger('first-nap')) FROM generate_series(1, 6)" >/dev/null
wait_for "$port" d2 "SELECT count(*) = 6 FROM taskorch.run WHERE task_id = 'first-nap' AND status = 'COMPLETED'" 60 ||
	fail "the first-nap runs did not complete: $(q d2 "SELECT string_agg(status::text, ' ') FROM taskorch.run")"
early=$(q d2 "SELECT count(DISTINCT output->>'pid') FROM taskorch.run
			   WHERE task_id = 'first-nap' AND started_at < (SELECT min(finished_at) FROM taskorch.run WHERE task_id = 'first-nap')")
[ "$early" -ge 2 ] ||
	fail "before the first run of a never-measured slow task ended, only $early worker(s) started its runs"
echo "ok - a never-measured task's slow runs grow the pool while they execute: $early workers started them before the first ended"

# the server's ceiling: 4 databases wanting 2 workers each, taskorch.max_workers = 5
q postgres "ALTER SYSTEM SET taskorch.workers_per_database = 2" >/dev/null
q postgres "ALTER SYSTEM SET taskorch.max_workers = 5" >/dev/null
q postgres "SELECT pg_reload_conf()" >/dev/null
for db in d1 d2 d3 d4; do
	wait_for "$port" "$db" "SELECT running >= 1 FROM taskorch.database_workers WHERE database = current_database()" 60 ||
		fail "database $db got no worker under taskorch.max_workers: $(q "$db" "SELECT * FROM taskorch.database_workers")"
done
sleep 2
total=$(q postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'taskorch worker'")
[ "$total" -eq 5 ] || fail "taskorch.max_workers = 5, but $total workers run"
# below one worker per database: the one left out is starved, and says so
q postgres "ALTER SYSTEM SET taskorch.max_workers = 3" >/dev/null
q postgres "SELECT pg_reload_conf()" >/dev/null
wait_for "$port" d1 "SELECT count(*) = 1 FROM taskorch.database_workers WHERE starved" 30 ||
	fail "with 3 workers for 4 databases, none is shown starved: $(q d1 "SELECT * FROM taskorch.database_workers")"
total=$(q postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'taskorch worker'")
[ "$total" -le 3 ] || fail "taskorch.max_workers = 3, but $total workers run"
echo "ok - taskorch.max_workers caps the workers of all databases ($total for 4 databases at 3, 5 at 5), each database first getting one"
cluster_stop "$dir" immediate

port2=$((port + 1))
dir2=$(mktemp -d /tmp/taskorch-pool2.XXXXXX)
trap 'cluster_stop "$dir2" immediate; [ -n "${KEEP:-}" ] || rm -rf "$dir" "$dir2"' EXIT
cluster_start "$dir2" "$port2" "max_worker_processes = 3" "taskorch.workers_per_database = 1" \
	"max_parallel_workers = 0"
port=$port2
q postgres "CREATE DATABASE e1" >/dev/null
q postgres "CREATE DATABASE e2" >/dev/null
q e1 "CREATE EXTENSION taskorch" >/dev/null
wait_for "$port" e1 "SELECT running = 1 FROM taskorch.database_workers WHERE database = 'e1'" 30 ||
	fail "the first database got no worker"
warning=$(psql_as "$port" e2 -c "CREATE EXTENSION taskorch" 2>&1)
echo "$warning" | grep -q "WARNING:  taskorch's workers may not all start" ||
	fail "CREATE EXTENSION did not warn: $warning"
wait_for "$port" e2 "SELECT starved FROM taskorch.database_workers WHERE database = 'e2'" 30 ||
	fail "the second database is not shown starved: $(q e2 "SELECT * FROM taskorch.database_workers")"
psql_as "$port" e2 -q >/dev/null <<'SQL'
CREATE FUNCTION noop(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
SELECT taskorch.register_task('noop', 'noop(jsonb)');
SQL
notices=$(psql_as "$port" e2 -c "SELECT taskorch.trigger('noop')" -c "SELECT taskorch.trigger('noop')" 2>&1 |
	grep -c "NOTICE:  no taskorch worker runs in database \"e2\"" || true)
[ "$notices" = 1 ] || fail "trigger() in a database without a worker gave $notices notices in one session, not 1"
echo "ok - a database without a worker slot: a warning at CREATE EXTENSION, starved in taskorch.database_workers, one NOTICE per session"
