#!/usr/bin/env bash
# taskorch benchmark (not a test): prints figures, asserts nothing.
#
#   1. burn-down: 100,000 queued no-op SQL runs executed by 1, 2 and 4
#      workers; runs/s over the whole burn-down, and over its first and
#      last 10% (from the runs' own started/finished timestamps); and
#      graphile-worker's drain beside them, of no-op jobs and of jobs that
#      each insert a row (bench/gw_rows.js); in three rounds of every
#      burn-down and both drains, and their medians compared;
#   2. trigger throughput of the streaming form (one statement, 100k runs);
#   3. trigger-commit -> start latency of 1,000 single triggers, and the
#      first trigger of a new connection beside a one-row INSERT's (the
#      server's floor for a new connection's first statement);
#   4. on the same server, pgbench running a transaction that claims 100
#      queued rows FOR UPDATE SKIP LOCKED and marks them done (rows/s), and
#      the ratio of each burn-down to it;
#   5. durable waits and composites beside plain burn-downs of as many
#      runs: a fan-out of 10,000 children, a 3-step track over 10,000
#      inputs (and its ratio to the plain burn-down), an orchestrator of 100
#      tracks, and 200 tracks of 50 steps (a step's time, early and late);
#   6. schedules: 10,000 schedules of every minute, how long after the
#      tick their runs exist, and the workers' CPU between ticks;
#   7. slow runs on 8 workers: 16 of 0.5 s and 64 of 0.2 s triggered in one
#      statement, the time from before the trigger to the last end, and the
#      workers that ran them; and the elastic pool over a burst of 64 such
#      runs with the default settings: its size as it grows and shrinks;
#   8. the mixed scenario: 100,000 no-op runs with 16 runs of 1 s queued
#      ahead of them, 2 workers: the no-ops' time beside their time alone;
#      and beside one run of 60 s (a long task's open transaction); each
#      repeated, alternated, their medians compared;
#   9. fairness: with 200,000 runs queued in one queue, the start delay of
#      a run of another queue from its trigger's commit (measured from just
#      before the commit, so the commit's flush counts).
#
# Default durability: synchronous_commit = on, fsync = on.
# Usage: bench/bench.sh [runs]    (BENCH_WORKERS="1 2 4" to choose;
#        BENCH_REPEAT=3: burn-downs, graphile-worker's drain and the
#        mixed scenario, each repeated, their medians compared)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/test/lib.sh"
build_and_install

runs=${1:-100000}
workers_list=${BENCH_WORKERS:-"1 2 4"}
# each burn-down and graphile-worker's drain, this many times: the ratios
# are of medians (one machine's figures move by a third between runs)
repeat=${BENCH_REPEAT:-3}
port=${BENCH_PORT:-55436}
throwaway_cluster bench "$port" \
	"shared_buffers = 1GB" "max_wal_size = 8GB" "checkpoint_timeout = 30min" \
	"taskorch.workers_per_database = 0" ${BENCH_CONF:-}
gcc -O2 -o "$dir/latency" "$top/bench/latency.c" -I"$(pg_config --includedir)" -lpq
sql() { psql_as "$port" postgres -tA "$@"; }
# rate N SECONDS: N per second, rounded
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%d", (s > 0 ? n / s : 0) }'; }

set_workers() {
	sql -c "ALTER SYSTEM SET taskorch.workers_per_database = $1" -c "SELECT pg_reload_conf()" >/dev/null
	# (the pool may have extra workers for slow runs beside the N kept); one
	# connection, not one per poll: new connections would slow the runs' start
	wait_until "$port" postgres "(SELECT count(*) $([ "$1" = 0 ] && echo = || echo '>=') $1 FROM taskorch.workers() WHERE pid IS NOT NULL)" 0.05 30
}

# none_queued [QUEUE]: a condition true once no run (of QUEUE) is queued, read
# from the newest entry of run_queue_idx: a scan from the queue's head would
# walk over the runs completed so far (not removable while a slow run's
# transaction is open), a cost growing with the drain it waits for
none_queued() {
	echo "(SELECT 1 FROM taskorch.run WHERE status = 'QUEUED' AND NOT external${1:+ AND queue = '$1'}
		ORDER BY queue DESC, run_at DESC, id DESC LIMIT 1) IS NULL"
}

sql >/dev/null <<'SQL'
CREATE EXTENSION taskorch;
CREATE FUNCTION noop(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT NULL::jsonb $$;
SELECT taskorch.register_task('noop', 'noop(jsonb)');
-- a task that writes: one row inserted per run
CREATE TABLE bench_rows (id bigserial PRIMARY KEY, payload jsonb NOT NULL);
CREATE FUNCTION insert_row(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	INSERT INTO bench_rows (payload) VALUES (payload) RETURNING NULL::jsonb $$;
SELECT taskorch.register_task('insert-row', 'insert_row(jsonb)');
-- the same, failing the first attempt of one run in ten
CREATE FUNCTION flaky(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	IF (payload->>'i')::int % 10 = 0 AND (taskorch.current_run()->>'attempt')::int = 1 THEN
		RAISE EXCEPTION 'first attempt fails';
	END IF;
	RETURN NULL;
END $$;
SELECT taskorch.register_task('flaky', 'flaky(jsonb)', retry => '{"minTimeoutInMs": 10, "maxTimeoutInMs": 50}');
SELECT taskorch.create_queue('bench-queue', concurrency_limit => 100);
SQL

echo "taskorch benchmark: $(nproc) cores, PostgreSQL $(sql -c 'SHOW server_version'), synchronous_commit=$(sql -c 'SHOW synchronous_commit')"
echo

declare -A burn
# median N...: the middle value (the lower of the two middle ones)
median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
# vacuum_and_checkpoint: before the workers start, the runs' table
# vacuumed and analyzed, and a checkpoint, which recycles the WAL segments
# written so far: on this fresh cluster, a commit that crosses into a new
# segment otherwise waits while its 16 MB are zero-filled (30-60 ms, several
# times a second in a burn-down, every committer stalled), which a server
# that has run a while does not do.
vacuum_and_checkpoint() { sql -c "VACUUM ANALYZE taskorch.run" -c "CHECKPOINT" >/dev/null; }

# burn_once WORKERS MAKE: queue $runs runs (made by the expression MAKE, of
# g), let WORKERS workers run them; prints "total first last trigger"
# (runs/s over the whole burn-down, its first and its last 10%, and the
# rate of the statement that made them)
burn_once() {
	local w=$1 make=$2
	set_workers 0 >/dev/null
	sql -c "SET client_min_messages = warning" -c "TRUNCATE taskorch.run CASCADE" >/dev/null
	start=$(date +%s.%N)
	sql -c "SELECT count($make) FROM generate_series(1, $runs) g" >/dev/null
	end=$(date +%s.%N)
	trig=$(echo "$runs / ($end - $start)" | bc)
	vacuum_and_checkpoint
	set_workers "$w" >/dev/null
	# one connection polling twice a second: a busier poll disturbs the workers
	wait_until "$port" postgres "$(none_queued)" 0.5
	echo "$(sql -F ' ' <<SQL
WITH r AS (SELECT started_at, finished_at,
				  row_number() OVER (ORDER BY finished_at) AS k, count(*) OVER () AS n
			 FROM taskorch.run WHERE status IN ('COMPLETED', 'FAILED')),
	 t AS (SELECT min(started_at) AS t0, max(finished_at) AS t1, max(n) AS n FROM r),
	 p AS (SELECT max(finished_at) FILTER (WHERE k <= n / 10) AS f10,
				  min(finished_at) FILTER (WHERE k > n - n / 10) AS l10 FROM r)
SELECT round(n / extract(epoch FROM t1 - t0)),
	   round((n / 10) / extract(epoch FROM f10 - t0)),
	   round((n / 10) / extract(epoch FROM t1 - l10))
  FROM t, p;
SQL
) $trig"
}
# The burn-downs and graphile-worker's drains, in rounds: each round runs
# every burn-down once and each of graphile-worker's drains once, so that
# the medians compared come from the same minutes (this machine's speed
# drifts by a third within an hour; measured one after the other, the two
# sides' figures were minutes apart).
noop="taskorch.trigger('noop', jsonb_build_object('i', g))"
labels=()
declare -A burn_make burn_workers totals
add_burn() {	# add_burn WORKERS LABEL MAKE
	labels+=("$2")
	burn_workers[$2]=$1 burn_make[$2]=$3 totals[$2]=""
}
for w in $workers_list; do
	add_burn "$w" "$w worker(s)" "$noop"
done
# the features on: a queue with a limit, 100 concurrency keys, retries
add_burn 2 "2 worker(s), queue+keys+retries" \
	"taskorch.trigger('flaky', jsonb_build_object('i', g), queue => 'bench-queue', concurrency_key => 'k' || (g % 100))"
# a task that inserts one row
rows_label="2 worker(s), task inserts a row"
add_burn 2 "$rows_label" "taskorch.trigger('insert-row', jsonb_build_object('i', g))"
# the same as the first with a transaction held open elsewhere: vacuum
# cannot remove the dead tuples the burn-down leaves, nor can index scans
# skip them
held_label="2 worker(s), idle transaction open"
add_burn 2 "$held_label" "$noop"

# graphile-worker 0.17.3 in its fastest mode, on this server, in this run
# (../shared/anchors: installs it from npm outside the checkout); and the
# same work on both sides: a job that inserts a row (bench/gw_rows.js)
anchors=${ANCHORS_DIR:-$top/../shared/anchors}
gw_present=$([ -x "$anchors/run.sh" ] && command -v node >/dev/null && echo yes || true)
gw_batched() {
	PGHOST=$dir PGPORT=$port PGUSER=postgres N=$runs CONCURRENCY=8 LAT_N=50 SINGLE_N=500 \
		"$anchors/run.sh" gw-batched 2>/dev/null | tail -1 |
		node -e 'let s = ""; process.stdin.on("data", d => s += d).on("end", () =>
			console.log(Math.round(JSON.parse(s).process.jobs_per_s_drained)))' 2>/dev/null || true
}
gw_rows() {
	PGHOST=$dir PGPORT=$port PGUSER=postgres N=$runs CONCURRENCY=8 ANCHORS_DIR="$anchors" \
		NODE_PATH=${ANCHORS:-/tmp/anchors}/node_modules node "$top/bench/gw_rows.js" 2>/dev/null |
		node -e 'let s = ""; process.stdin.on("data", d => s += d).on("end", () =>
			console.log(JSON.parse(s).jobs_per_s_drained))' 2>/dev/null || true
}
gws=() gw_rows_all=()
for round in $(seq "$repeat"); do
	for label in "${labels[@]}"; do
		if [ "$label" = "$held_label" ]; then
			psql_as "$port" postgres -c "SELECT txid_current(), pg_sleep(3600)" >/dev/null 2>&1 &
			holder=$!
			sleep 0.5
		fi
		read -r total first last trig < <(burn_once "${burn_workers[$label]}" "${burn_make[$label]}")
		if [ "$label" = "$held_label" ]; then
			sql -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(3600)%' AND pid <> pg_backend_pid()" >/dev/null
			wait "$holder" 2>/dev/null || true
		fi
		totals[$label]+=" $total"
		printf "burn-down %d runs, %-34s %8s runs/s   (first 10%%: %s runs/s, last 10%%: %s runs/s; round %d)\n" \
			"$runs" "$label:" "$total" "$first" "$last" "$round"
	done
	if [ -n "$gw_present" ]; then
		set_workers 0 >/dev/null
		gw=$(gw_batched)
		[ -n "$gw" ] && gws+=("$gw") && echo "graphile-worker 0.17.3 batched, $runs jobs, concurrency 8: $gw jobs/s drained (round $round)"
		gw=$(gw_rows)
		[ -n "$gw" ] && gw_rows_all+=("$gw") &&
			echo "graphile-worker 0.17.3 batched, $runs jobs inserting a row each (through its pool), concurrency 8: $gw jobs/s drained (round $round)"
	fi
done
for label in "${labels[@]}"; do
	# shellcheck disable=SC2086
	burn[$label]=$(median ${totals[$label]})
	printf "burn-down %d runs, %-34s %8s runs/s   (median of%s)\n" "$runs" "$label:" "${burn[$label]}" "${totals[$label]}"
done
if [ ${#gws[@]} -gt 0 ]; then
	gw=$(median "${gws[@]}")
	echo "graphile-worker 0.17.3 batched, $runs jobs, concurrency 8: $gw jobs/s drained (median of ${gws[*]})"
	for label in "${labels[@]}"; do
		printf "  burn-down, %-34s / graphile-worker batched: %s\n" "$label" \
			"$(echo "scale=2; ${burn[$label]} / $gw" | bc)"
	done
fi
if [ ${#gw_rows_all[@]} -gt 0 ]; then
	gw=$(median "${gw_rows_all[@]}")
	echo "graphile-worker 0.17.3 batched, $runs jobs inserting a row each (through its pool), concurrency 8: $gw jobs/s drained (median of ${gw_rows_all[*]})"
	printf "  burn-down, %-34s / graphile-worker batched inserting a row: %s\n" "$rows_label" \
		"$(echo "scale=2; ${burn[$rows_label]} / $gw" | bc)"
fi
echo "trigger, streaming form (one statement, $runs runs): $trig runs/s"
set_workers 0 >/dev/null
sql -c "SET client_min_messages = warning" -c "TRUNCATE taskorch.run CASCADE" >/dev/null
batch_rate=$(sql -c "SET client_min_messages = notice" -c "DO \$\$
DECLARE
	items jsonb := (SELECT jsonb_agg(jsonb_build_object('payload', jsonb_build_object('i', g)))
					  FROM generate_series(1, 1000) g);
	t0 timestamptz := clock_timestamp();
BEGIN
	FOR i IN 1..100 LOOP
		PERFORM taskorch.batch_trigger('noop', items);
	END LOOP;
	RAISE NOTICE 'rate %', round(100000 / extract(epoch FROM clock_timestamp() - t0));
END \$\$" 2>&1 | sed -n 's/.*rate //p')
echo "batch_trigger, 100 batches of 1,000 items (100,000 runs): $batch_rate runs/s"
echo

# fan-out: a parent waits on 10,000 children, in one wait (items streamed
# from a query) and in ten waits of 1,000 (the most an array takes), beside
# a plain burn-down of the same 10,000 runs
sql >/dev/null <<'SQL'
CREATE FUNCTION fan_one(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	PERFORM taskorch.batch_trigger_and_wait_query(
		'SELECT jsonb_build_object(''i'', g) AS payload FROM generate_series(1, 10000) g', 'noop');
	RETURN jsonb_build_object('resumed_at', clock_timestamp());
END $$;
SELECT taskorch.register_task('fan-one', 'fan_one(jsonb)');
CREATE FUNCTION fan_waves(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	items jsonb := (SELECT jsonb_agg(jsonb_build_object('payload', jsonb_build_object('i', g)))
					  FROM generate_series(1, 1000) g);
BEGIN
	FOR wave IN 1..10 LOOP
		PERFORM taskorch.batch_trigger_and_wait('noop', items);
	END LOOP;
	RETURN jsonb_build_object('resumed_at', clock_timestamp());
END $$;
SELECT taskorch.register_task('fan-waves', 'fan_waves(jsonb)');
SQL
set_workers 2 >/dev/null
# fan_out TASK: "total seconds, ms from the last child's end to the parent's resume"
fan_out() {
	sql -c "SET client_min_messages = warning" -c "TRUNCATE taskorch.run CASCADE" >/dev/null
	sql -c "SELECT taskorch.trigger('$1')" >/dev/null
	wait_until "$port" postgres "EXISTS (SELECT FROM taskorch.run WHERE task_id = '$1' AND status = 'COMPLETED')"
	sql -F ' ' -c "
		SELECT round(extract(epoch FROM p.finished_at - p.created_at)::numeric, 2),
			   round(extract(epoch FROM (p.output->>'resumed_at')::timestamptz
							 - (SELECT max(finished_at) FROM taskorch.run WHERE task_id = 'noop')) * 1000)
		  FROM taskorch.run p WHERE p.task_id = '$1'"
}
read -r one_total one_resume < <(fan_out fan-one)
read -r waves_total waves_resume < <(fan_out fan-waves)
sql -c "SET client_min_messages = warning" -c "TRUNCATE taskorch.run CASCADE" \
	-c "SELECT count(taskorch.trigger('noop', jsonb_build_object('i', g))) FROM generate_series(1, 10000) g" >/dev/null
wait_until "$port" postgres "$(none_queued)"
plain=$(sql -c "SELECT round(extract(epoch FROM max(finished_at) - min(created_at))::numeric, 2) FROM taskorch.run")
echo "fan-out of 10,000 children (2 workers), one wait (a query's rows): ${one_total} s in all, parent resumed ${one_resume} ms after its last child finished"
echo "fan-out of 10,000 children (2 workers), ten waits of 1,000: ${waves_total} s in all, parent resumed ${waves_resume} ms after its last child finished"
echo "plain burn-down of the same 10,000 runs: ${plain} s"

# tracks and orchestrators: a 3-step track over 10,000 inputs, and one
# orchestrator of 100 such tracks, beside a plain burn-down of as many runs
# (a track run is 1 + 3 runs: itself and its steps); then a 50-step track
sql >/dev/null <<'SQL'
SELECT taskorch.define_track('bench-track', '[{"task": "noop", "name": "a"}, {"task": "noop", "name": "b"},
											  {"task": "noop", "name": "c"}]');
SELECT taskorch.define_orchestrator('bench-orchestrator',
	(SELECT jsonb_agg(jsonb_build_object('task', 'bench-track', 'name', 'm' || g)) FROM generate_series(1, 100) g));
SQL
# settle: wait for every run to finish; then the seconds from the first run made to the last finished
settle() {
	wait_until "$port" postgres "NOT EXISTS (SELECT FROM taskorch.run WHERE status IN ('QUEUED', 'EXECUTING', 'WAITING', 'DELAYED'))"
	sql -c "SELECT round(extract(epoch FROM max(finished_at) - min(created_at))::numeric, 2) FROM taskorch.run"
}
# fresh_run TASK N: an empty runs table, then N runs of TASK triggered in one statement
fresh_run() {
	sql -c "SET client_min_messages = warning" -c "TRUNCATE taskorch.run CASCADE" \
		-c "SELECT count(taskorch.trigger('$1', jsonb_build_object('i', g))) FROM generate_series(1, $2) g" >/dev/null
}
# the track and the plain burn-down side by side, three times: this
# machine's speed drifts between runs, so the ratio quoted is the median of
# the three same-round ratios
ratios=()
for round in 1 2 3; do
	fresh_run bench-track 10000
	track_s=$(settle)
	track_ok=$(sql -c "SELECT count(*) FROM taskorch.jobs WHERE status = 'Complete'")
	fresh_run noop 40000
	plain40_s=$(settle)
	ratios+=("$(awk -v a="$plain40_s" -v b="$track_s" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')")
	echo "3-step track over 10,000 inputs (2 workers): ${track_s} s, $(rate 10000 "$track_s") tracks/s, $(rate 40000 "$track_s") runs/s ($track_ok jobs Complete); plain burn-down of 40,000 runs (as many as the tracks made): ${plain40_s} s, $(rate 40000 "$plain40_s") runs/s; ratio ${ratios[-1]}"
done
echo "  3-step track runs/s / plain burn-down runs/s: $(printf '%s\n' "${ratios[@]}" | sort -n | sed -n 2p) (median of ${ratios[*]})"
sql -c "SET client_min_messages = warning" -c "TRUNCATE taskorch.run CASCADE" \
	-c "SELECT taskorch.trigger('bench-orchestrator')" >/dev/null
orch_s=$(settle)
orch_runs=$(sql -c "SELECT count(*) FROM taskorch.run")
echo "orchestrator of 100 such tracks: ${orch_s} s for its ${orch_runs} runs, $(rate "$orch_runs" "$orch_s") runs/s"

# a 50-step track, 200 of them: does a step cost more the later it comes?
# (A track resumes from its checkpoint, not from the top, so it should
# not.)  Time between the end of a step and the end of the next, early
# steps beside late ones.
sql >/dev/null <<'SQL'
SELECT taskorch.define_track('bench-track-50',
	(SELECT jsonb_agg(jsonb_build_object('task', 'noop', 'name', 's' || g) ORDER BY g) FROM generate_series(1, 50) g));
SQL
sql -c "SET client_min_messages = warning" -c "TRUNCATE taskorch.run CASCADE" \
	-c "SELECT count(taskorch.trigger('bench-track-50', jsonb_build_object('i', g))) FROM generate_series(1, 200) g" >/dev/null
track50_s=$(settle)
track50_steps=$(sql -c "WITH s AS (SELECT c.parent_wait_seq AS pos,
								  c.finished_at - lag(c.finished_at) OVER (PARTITION BY c.parent_run_id
																	   ORDER BY c.parent_wait_seq) AS step
							 FROM taskorch.run c WHERE c.parent_run_id IS NOT NULL)
	SELECT round((avg(extract(epoch FROM step)) FILTER (WHERE pos BETWEEN 1 AND 10) * 1000)::numeric, 2)
		   || ' ms for steps 2-11, '
		   || round((avg(extract(epoch FROM step)) FILTER (WHERE pos BETWEEN 40 AND 49) * 1000)::numeric, 2)
		   || ' ms for steps 41-50' FROM s")
echo "50-step track, 200 of them (2 workers): ${track50_s} s, $(rate 10200 "$track50_s") runs/s; a step takes ${track50_steps}"
echo

# slow runs: each a batch of its own, side by side on the workers
sql >/dev/null <<'SQL'
CREATE FUNCTION nap(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT pg_sleep((payload->>'s')::float8); SELECT jsonb_build_object('pid', pg_backend_pid()) $$;
SELECT taskorch.register_task('nap', 'nap(jsonb)');
SQL
set_workers 8 >/dev/null
for shape in "16 0.5" "64 0.2"; do
	set -- $shape
	sql -c "SET client_min_messages = warning" -c "TRUNCATE taskorch.run CASCADE" >/dev/null
	slow=$(sql <<SQL | tail -1
SELECT clock_timestamp() AS t0 \gset
SELECT count(taskorch.trigger('nap', jsonb_build_object('s', $2))) FROM generate_series(1, $1);
DO \$\$ BEGIN
	WHILE (SELECT count(*) FROM taskorch.run WHERE status = 'COMPLETED') < $1 LOOP COMMIT; PERFORM pg_sleep(0.02); END LOOP;
END \$\$;
SELECT round(extract(epoch FROM max(finished_at) - :'t0'::timestamptz)::numeric, 2) || ' s on '
	   || count(DISTINCT output->>'pid') || ' workers' FROM taskorch.run;
SQL
)
	echo "slow runs: $1 x $2 s, 8 workers: $slow (ideal $(echo "$(( ($1 + 7) / 8 )) * $2" | bc) s)"
done
set_workers 2 >/dev/null

# the elastic pool over a burst: the default settings (2 workers kept, up
# to 8), N runs of SECONDS of TASK triggered at once; the workers running,
# sampled every 20 ms from the trigger until the pool is back to 2 (or 20 s
# after the burst), from one connection that commits between samples
pool_burst() {	# pool_burst TASK N SECONDS
	wait_until "$port" postgres "(SELECT running = 2 FROM taskorch.database_workers WHERE database = current_database())" 0.1 30
	sql -c "SET client_min_messages = warning" -c "TRUNCATE taskorch.run CASCADE" >/dev/null
	sql -v task="$1" -v n="$2" -v s="$3" <<'SQL' | tail -1
CREATE TEMP TABLE pool_sample (at timestamptz, running int);
SELECT clock_timestamp() AS t0 \gset
SELECT count(taskorch.trigger(:'task', jsonb_build_object('s', :s))) FROM generate_series(1, :n);
SELECT set_config('bench.runs', :'n', false);
DO $$
DECLARE
	done_at timestamptz;
	n int;
BEGIN
	LOOP
		SELECT running INTO n FROM taskorch.database_workers WHERE database = current_database();
		INSERT INTO pool_sample VALUES (clock_timestamp(), n);
		IF done_at IS NULL AND (SELECT count(*) FROM taskorch.run WHERE status = 'COMPLETED')
							   = current_setting('bench.runs')::int THEN
			done_at := clock_timestamp();
		END IF;
		EXIT WHEN done_at IS NOT NULL AND (n <= 2 OR clock_timestamp() > done_at + interval '20 s');
		COMMIT;
		PERFORM pg_sleep(0.02);
	END LOOP;
END $$;
CREATE TEMP VIEW pool AS
	SELECT extract(epoch FROM at - :'t0'::timestamptz)::float8 AS t, running FROM pool_sample;
WITH burst AS (SELECT round(extract(epoch FROM max(finished_at) - :'t0'::timestamptz)::numeric, 2) AS s,
					  count(DISTINCT output->>'pid') AS workers FROM taskorch.run),
	 top AS (SELECT max(running) AS n FROM pool),
	 reached AS (SELECT min(t) AS t FROM pool WHERE running = (SELECT n FROM top)),
	 shrunk AS (SELECT min(t) AS t FROM pool WHERE t > (SELECT s FROM burst) AND running <= 2),
	 steps AS (SELECT string_agg(running::text, ' ' ORDER BY k) AS line
				 FROM (SELECT k, max(running) AS running FROM pool,
						      LATERAL (SELECT floor(t / 0.25)::int AS k) kk
						WHERE t < 3 GROUP BY k) x)
SELECT (SELECT running FROM pool ORDER BY t LIMIT 1) || ' -> ' || top.n || ' workers in '
	   || round((reached.t * 1000)::numeric) || ' ms; the burst done in ' || burst.s || ' s on '
	   || burst.workers || ' workers; back to '
	   || coalesce('2 workers ' || round((shrunk.t - burst.s)::numeric, 1) || ' s after it', 'more than 2 20 s after it')
	   || '; workers each 0.25 s of the first 3: ' || steps.line
FROM burst, top, reached, shrunk, steps;
SQL
}
echo "pool over a burst: 64 runs of 0.2 s, default pool (2 kept, up to 8): $(pool_burst nap 64 0.2)"
# the same for a task never measured: its runs are not known slow until one ends
sql -c "SELECT taskorch.register_task('nap-new', 'nap(jsonb)')" >/dev/null
echo "pool over a burst: 16 runs of 0.5 s of a task never measured, default pool: $(pool_burst nap-new 16 0.5)"
echo

# the mixed scenario: slow runs among a backlog of no-ops (2 workers)
set_workers 0 >/dev/null
mixed() {	# mixed N SECONDS: seconds for the no-op runs to finish beside N runs of SECONDS
	sql -c "SET client_min_messages = warning" -c "TRUNCATE taskorch.run CASCADE" >/dev/null
	# the slow runs first: they are ahead of the no-ops in the queue
	[ "$1" -gt 0 ] && sql -c "SELECT count(taskorch.trigger('nap', '{\"s\": $2}')) FROM generate_series(1, $1)" >/dev/null
	sql -c "SELECT count(taskorch.trigger('noop', jsonb_build_object('i', g))) FROM generate_series(1, 100000) g" >/dev/null
	vacuum_and_checkpoint
	local t0
	t0=$(sql -c "SELECT clock_timestamp()")
	set_workers 2 >/dev/null
	wait_until "$port" postgres "$(none_queued noop)" 0.2
	# from the workers' start: time spent on the slow runs first counts
	sql -c "SELECT round(extract(epoch FROM max(finished_at) - '$t0'::timestamptz)::numeric, 2) FROM taskorch.run WHERE task_id = 'noop'"
	sql -c "SELECT count(taskorch.cancel(id)) FROM taskorch.run WHERE task_id = 'nap' AND status IN ('QUEUED', 'EXECUTING')" >/dev/null
	set_workers 0 >/dev/null
}
# each $repeat times, alternated (a burn-down of 1.5 s moves by a fifth
# between runs minutes apart): the ratios are of the medians
alones=() slows=() longs=()
for _ in $(seq "$repeat"); do
	alones+=("$(mixed 0 0)")
	slows+=("$(mixed 16 1)")
	# a long task beside them: its transaction (and snapshot) stays open throughout
	longs+=("$(mixed 1 60)")
done
alone=$(median "${alones[@]}") with_slow=$(median "${slows[@]}") with_long=$(median "${longs[@]}")
echo "mixed: 100,000 no-op runs, 2 workers: ${alone} s alone, ${with_slow} s with 16 runs of 1 s queued ahead ($(echo "scale=2; $with_slow / $alone" | bc)x; medians of ${alones[*]} and ${slows[*]})"
echo "long task: the same 100,000 no-op runs with a run of 60 s executing beside them: ${with_long} s ($(echo "scale=2; $with_long / $alone" | bc)x; median of ${longs[*]})"

# fairness: a run of an idle queue behind another queue's backlog
sql >/dev/null <<'SQL'
SET client_min_messages = warning;
TRUNCATE taskorch.run CASCADE;
SELECT taskorch.register_task('other-queue', 'noop(jsonb)', queue => 'other');
SELECT count(taskorch.trigger('noop', jsonb_build_object('i', g))) FROM generate_series(1, 200000) g;
SQL
vacuum_and_checkpoint
set_workers 2 >/dev/null
sleep 1
# five runs of the other queue, one after another, while the backlog drains
fair=""
for i in 1 2 3 4 5; do
	fair+=" $(sql <<'SQL' | tail -1
-- the time at the end of the trigger statement, before its commit: a
-- statement after the commit could come after the start
SELECT taskorch.trigger('other-queue') AS r, clock_timestamp() AS committed \gset
DO $$ BEGIN
	WHILE EXISTS (SELECT FROM taskorch.run WHERE task_id = 'other-queue' AND started_at IS NULL) LOOP
		COMMIT;
		PERFORM pg_sleep(0.002);
	END LOOP;
END $$;
SELECT round(extract(epoch FROM started_at - :'committed'::timestamptz) * 1000, 1) FROM taskorch.run WHERE id = :'r';
SQL
)"
	sleep 0.2
done
ahead=$(sql -c "SELECT count(*) FROM taskorch.run WHERE task_id = 'noop' AND status = 'QUEUED'")
echo "fairness: a run of another queue behind 200,000 queued runs (2 workers), 5 runs: started after its commit (from before the commit) by (ms)$fair; max $(echo $fair | tr ' ' '\n' | sort -n | tail -1) ms ($ahead still queued ahead at the end)"
set_workers 2 >/dev/null
wait_until "$port" postgres "$(none_queued)" 0.2
echo

# schedules: 10,000 of every minute; at the tick, how long until each
# tick's run exists; between ticks, the CPU the workers spend (idle with
# and without the schedules)
worker_cpu_ms() {	# CPU milliseconds of the workers over $1 seconds
	local pids before after
	pids=$(sql -c "SELECT string_agg(pid::text, ' ') FROM taskorch.workers() WHERE pid IS NOT NULL")
	before=$(for p in $pids; do awk '{print $14 + $15}' /proc/$p/stat; done | paste -sd+ | bc)
	sleep "$1"
	after=$(for p in $pids; do awk '{print $14 + $15}' /proc/$p/stat; done | paste -sd+ | bc)
	echo $(( (after - before) * 1000 / $(getconf CLK_TCK) ))
}
sql -c "SET client_min_messages = warning" -c "TRUNCATE taskorch.run CASCADE" >/dev/null
set_workers 2 >/dev/null
sleep $(( 61 - $(date +%S | sed 's/^0//') ))	# just past a minute: the next tick is far
idle_cpu=$(worker_cpu_ms 20)
sql -c "SELECT count(taskorch.schedule('noop', '* * * * *')) FROM generate_series(1, 10000)" >/dev/null
sleep $(( 61 - $(date +%S | sed 's/^0//') ))	# past the tick
sleep 15									# its runs made and executed
sched_cpu=$(worker_cpu_ms 20)
sched=$(sql -c "WITH r AS (SELECT created_at - (payload->>'timestamp')::timestamptz AS lag
							  FROM taskorch.run WHERE payload ? 'scheduleId'
								AND payload->>'timestamp' = (SELECT max(payload->>'timestamp') FROM taskorch.run))
			   SELECT count(*) || ' runs, the last ' || round(extract(epoch FROM max(lag)) * 1000)
					  || ' ms after the tick (p50 ' || round(extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY lag)) * 1000)
					  || ' ms)' FROM r")
echo "schedules: 10,000 every minute (2 workers): at the tick, $sched"
echo "  workers' CPU between ticks: ${sched_cpu} ms in 20 s with the schedules, ${idle_cpu} ms without"
sql -c "SELECT count(taskorch.unschedule(id)) FROM taskorch.schedule" >/dev/null
echo

sql -c "SET client_min_messages = warning" -c "TRUNCATE taskorch.run CASCADE" >/dev/null
vacuum_and_checkpoint	# the burn-downs' dirty pages written out first, not during the commits timed
"$dir/latency" "host=$dir port=$port user=postgres dbname=postgres" noop 1000 3
echo

# pgbench reference: claim 100 queued rows with SKIP LOCKED and mark them done.
set_workers 0 >/dev/null
sql >/dev/null <<SQL
CREATE TABLE bench_queue (id bigserial PRIMARY KEY, payload jsonb NOT NULL,
	status text NOT NULL DEFAULT 'QUEUED', run_at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE INDEX ON bench_queue (run_at, id) WHERE status = 'QUEUED';
INSERT INTO bench_queue (payload) SELECT jsonb_build_object('i', g) FROM generate_series(1, 3000000) g;
VACUUM ANALYZE bench_queue;
CHECKPOINT;
SQL
cat >"$dir/claim.sql" <<'SQL'
WITH c AS (SELECT id FROM bench_queue WHERE status = 'QUEUED'
			ORDER BY run_at, id LIMIT 100 FOR UPDATE SKIP LOCKED)
UPDATE bench_queue q SET status = 'DONE' FROM c WHERE q.id = c.id;
SQL
chown postgres: "$dir/claim.sql"
tps=$(as_postgres "$PGBIN/pgbench" -h "$dir" -p "$port" -U postgres -n -c 2 -j 2 -T 20 \
	-f "$dir/claim.sql" postgres 2>/dev/null | awk '/^tps/ {print $3}')
rows=$(echo "$tps * 100 / 1" | bc)
echo "pgbench claim-100-and-mark-done, 2 clients, 20 s: $rows rows/s ($tps tps)"
for label in "${!burn[@]}"; do
	printf "  burn-down, %-34s / pgbench rate: %s\n" "$label" \
		"$(echo "scale=2; ${burn[$label]} / $rows" | bc)"
done | sort
