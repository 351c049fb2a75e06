#!/usr/bin/env bash
# The taskorch command against a real cluster:
#   - help and exit codes; trigger (--wait), runs, show, logs, cancel,
#     replay, top, with and without --json;
#   - worker: a command per run (payload on stdin, environment, output,
#     stderr as the error), and --stdio;
#   - a run canceled while its command runs: the command gets SIGTERM;
#   - kill -9 of a worker mid-run: the run is retried and completes, its
#     attempt charged;
#   - a hung command past its lease: charged, retried;
#   - SIGTERM: running commands finish within the grace, the rest are
#     released without an attempt spent;
#   - a server restart under running workers: every run completes, in its
#     first attempt;
#   - 4 workers x concurrency 8 on 400 runs: each command ran once, each
#     run completed once.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/test/lib.sh"
port=${CLI_PORT:-55449}
throwaway_cluster cli "$port" "taskorch.workers_per_database = 1"
# workers left running by a failed check go with the cluster
trap 'pkill -f "$dir" 2>/dev/null || true; cluster_stop "$dir" immediate; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
export PGHOST=$dir PGPORT=$port PGUSER=postgres PGDATABASE=postgres
T=$PGBIN/taskorch
[ -x "$T" ] || fail "taskorch is not installed next to the server ($T)"
work=$dir/work
mkdir -p "$work"

psql_as "$port" postgres >/dev/null <<'SQL'
CREATE EXTENSION taskorch;
SELECT taskorch.register_external_task('echo');
SELECT taskorch.register_external_task('flaky', max_attempts => 2,
	retry => '{"minTimeoutInMs": 100, "maxTimeoutInMs": 100, "randomize": false}');
SELECT taskorch.register_external_task('sleepy', max_attempts => 3,
	retry => '{"minTimeoutInMs": 100, "maxTimeoutInMs": 100, "randomize": false}');
SELECT taskorch.register_external_task('count', max_attempts => 3);
SQL

cat >"$work/echo.sh" <<'EOF'
#!/bin/sh
payload=$(cat)
echo "{\"got\": $payload, \"run\": \"$TASKORCH_RUN_ID\", \"task\": \"$TASKORCH_TASK\", \"attempt\": $TASKORCH_ATTEMPT}"
EOF
cat >"$work/flaky.sh" <<'EOF'
#!/bin/sh
echo "disk full on attempt $TASKORCH_ATTEMPT" >&2
exit 3
EOF
# sleeps the payload's seconds, noting its start and its SIGTERM
cat >"$work/sleepy.sh" <<EOF
#!/bin/sh
s=\$(sed 's/.*"s": *\([0-9.]*\).*/\1/')
echo "\$TASKORCH_RUN_ID \$TASKORCH_ATTEMPT" >>"$work/started"
$T log info "sleeping \$s s" --data "{\\"s\\": \$s}"
trap 'echo "\$TASKORCH_RUN_ID" >>"$work/terminated"; exit 143' TERM
sleep "\$s" & wait
echo '{"slept": true}'
EOF
cat >"$work/count.sh" <<EOF
#!/bin/sh
echo "\$TASKORCH_RUN_ID" >>"$work/counted"
echo null
EOF
cat >"$work/stdio.py" <<'EOF'
import json, sys
for line in sys.stdin:
    req = json.loads(line)
    if req.get("cancel"):
        continue
    if "n" not in req["payload"]:
        print(json.dumps({"id": req["id"], "error": "no n"}), flush=True)
    else:
        print(json.dumps({"id": req["id"], "output": {"doubled": 2 * req["payload"]["n"]}}), flush=True)
EOF
chmod +x "$work"/*.sh
chmod -R a+rwX "$work"

echo "-- help and exit codes"
grep -q "^Usage: taskorch" <<<"$($T --help)" || fail "no help"
for c in worker trigger runs show cancel replay logs log top; do
	grep -q "Usage: taskorch $c" <<<"$($T $c --help)" || fail "no help for $c"
done
set +e
$T nonsense >/dev/null 2>&1; [ $? = 2 ] || fail "an unknown command does not exit 2"
$T show run_999999 >/dev/null 2>&1; [ $? = 1 ] || fail "show of a missing run does not exit 1"
$T -d "host=$dir port=1" runs >/dev/null 2>&1; [ $? = 3 ] || fail "no connection does not exit 3"
$T trigger no-such-task >/dev/null 2>&1; [ $? = 1 ] || fail "a trigger of no task does not exit 1"
$T trigger echo "not json" >/dev/null 2>&1; [ $? = 3 ] || fail "a refused trigger does not exit 3"
set -e
echo "ok: help and exit codes"

echo "-- a command per run"
r1=$($T trigger echo '{"n": 1}' --tag cli --tag first)
r2=$($T --json trigger echo '{"n": 2}' | sed 's/.*"id": "\([^"]*\)".*/\1/')
timeout 20 $T worker echo -c 2 --poll 100ms -- "$work/echo.sh" &
wpid=$!
wait_for "$port" postgres "SELECT count(*) = 2 FROM taskorch.runs WHERE id IN ('$r1', '$r2') AND status = 'COMPLETED'" 10
[ "$(q "SELECT output FROM taskorch.runs WHERE id = '$r1'")" = \
  "{\"got\": {\"n\": 1}, \"run\": \"$r1\", \"task\": \"echo\", \"attempt\": 1}" ] || fail "output of $r1: $(q "SELECT output FROM taskorch.runs WHERE id = '$r1'")"
# trigger --wait, while the worker runs
out=$($T trigger echo '{"n": 3}' --wait --timeout 10s)
echo "$out" | grep -q '"got": {"n": 3}' || fail "trigger --wait printed: $out"
kill -TERM $wpid; wait $wpid
grep -q "$r1 .*| echo .*| COMPLETED" <<<"$($T runs --task echo --tag cli)" || fail "runs does not list $r1"
[ "$($T --json runs --task echo --limit 2 | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 2 ] ||
	fail "runs --json --limit 2"
grep -q "^status: *COMPLETED" <<<"$($T show "$r1")" || fail "show $r1"
[ "$($T --json show "$r1" | /usr/bin/python3 -c 'import json,sys; r = json.load(sys.stdin); print(r["status"], r["output"]["got"]["n"])')" = "COMPLETED 1" ] ||
	fail "show --json $r1"
echo "ok: worker, trigger --wait, runs, show"

echo "-- a failing command: its stderr is the error, retried per the task"
rf=$($T trigger flaky)
set +e
timeout 10 $T worker flaky --poll 100ms -- "$work/flaky.sh" &
wpid=$!
$T trigger flaky --wait --timeout 5s >/dev/null 2>"$work/wait.err"; rc=$?
set -e
wait_for "$port" postgres "SELECT status = 'FAILED' FROM taskorch.runs WHERE id = '$rf'" 10
kill -TERM $wpid; wait $wpid || true
[ $rc = 1 ] || fail "trigger --wait of a failed run exited $rc"
grep -q "ended FAILED: disk full on attempt 2" "$work/wait.err" || fail "trigger --wait said: $(cat "$work/wait.err")"
[ "$(q "SELECT string_agg(message, '; ' ORDER BY number) FROM taskorch.attempts WHERE run_id = '$rf'")" = \
  "disk full on attempt 1; disk full on attempt 2" ] || fail "the attempts' errors"
[ "$(q "SELECT error->>'exitCode' FROM taskorch.runs_wide WHERE id = '$rf'")" = 3 ] || fail "the exit code"
echo "ok: a failing command"

echo "-- --stdio"
s1=$($T trigger echo '{"n": 21}')
s2=$($T trigger echo '{"m": 1}')
timeout 10 $T worker echo --stdio -c 4 --poll 100ms -- /usr/bin/python3 "$work/stdio.py" &
wpid=$!
wait_for "$port" postgres "SELECT count(*) = 2 FROM taskorch.runs WHERE id IN ('$s1', '$s2') AND taskorch.finished(status)" 10
kill -TERM $wpid; wait $wpid
[ "$(q "SELECT output FROM taskorch.runs WHERE id = '$s1'")" = '{"doubled": 42}' ] || fail "--stdio output"
[ "$(q "SELECT status || ' ' || (error->>'message') FROM taskorch.runs_wide WHERE id = '$s2'")" = "FAILED no n" ] ||
	fail "--stdio error: $(q "SELECT status, error FROM taskorch.runs_wide WHERE id = '$s2'")"
echo "ok: --stdio"

echo "-- logs, cancel while the command runs, replay, top"
rs=$($T trigger sleepy '{"s": 30}')
$T worker sleepy --lease 3s --grace 5s --poll 100ms -- "$work/sleepy.sh" &
wpid=$!
wait_for "$port" postgres "SELECT status = 'EXECUTING' FROM taskorch.runs WHERE id = '$rs'" 10
for _ in $(seq 30); do grep -q "^ sleepy *| 0 *| 0 *| 1 " <<<"$($T top --once)" && break; sleep 0.1; done
grep -q "^ sleepy *| 0 *| 0 *| 1 " <<<"$($T top --once)" || fail "top does not show the executing run: $($T top --once)"
[ "$($T --json top --once | /usr/bin/python3 -c 'import json,sys; t = json.load(sys.stdin); print(t["workers"]["external_connections"])')" = 1 ] ||
	fail "top --json"
grep -qx "canceled $rs" <<<"$($T cancel "$rs")" || fail "cancel"
set +e; $T cancel "$rs" >/dev/null 2>&1; rc=$?; set -e
[ $rc = 1 ] || fail "a second cancel exited $rc"
# the next heartbeat (a second) says so: the command is stopped
for _ in $(seq 50); do grep -qx "$rs" "$work/terminated" 2>/dev/null && break; sleep 0.1; done
grep -qx "$rs" "$work/terminated" || fail "the canceled run's command was not stopped"
grep -q "\[1\] info  sleeping 30 s {\"s\": 30}" <<<"$($T logs "$rs")" || fail "logs: $($T logs "$rs")"
new=$($T replay "$rs")
[ "$(q "SELECT replayed_from FROM taskorch.runs_wide WHERE id = '$new'")" = "$rs" ] || fail "replay"
$T cancel "$new" >/dev/null
kill -TERM $wpid; wait $wpid || true
echo "ok: cancel stops the command; replay; top"

echo "-- logs --follow until the run ends"
rl=$($T trigger sleepy '{"s": 1}')
$T worker sleepy --grace 5s --poll 100ms -- "$work/sleepy.sh" &
wpid=$!
timeout 10 $T logs "$rl" --follow >"$work/follow.out" || fail "logs --follow did not end with its run"
grep -q "sleeping 1 s" "$work/follow.out" || fail "logs --follow printed: $(cat "$work/follow.out")"
kill -TERM $wpid; wait $wpid
echo "ok: logs --follow"

echo "-- kill -9 of a worker mid-run"
rk=$($T trigger sleepy '{"s": 2}')
$T worker sleepy --poll 100ms -- "$work/sleepy.sh" 2>/dev/null &
wpid=$!
wait_for "$port" postgres "SELECT status = 'EXECUTING' FROM taskorch.runs WHERE id = '$rk'" 10
kill -9 $wpid; wait $wpid 2>/dev/null || true
wait_for "$port" postgres "SELECT status = 'QUEUED' AND attempts = 1 FROM taskorch.runs WHERE id = '$rk'" 5
$T worker sleepy --grace 5s --poll 100ms -- "$work/sleepy.sh" &
wpid=$!
wait_for "$port" postgres "SELECT status = 'COMPLETED' FROM taskorch.runs WHERE id = '$rk'" 15
kill -TERM $wpid; wait $wpid
[ "$(q "SELECT attempts || ' ' || (SELECT status FROM taskorch.attempts WHERE run_id = '$rk') FROM taskorch.runs WHERE id = '$rk'")" = "2 CRASHED" ] ||
	fail "the killed worker's attempt was not charged"
echo "ok: a killed worker's run retried, charged, completed"

echo "-- a hung command past its lease"
rh=$($T trigger sleepy '{"s": 600}')
# a worker that cannot heartbeat: stopped (SIGSTOP) with its command running
$T worker sleepy --lease 2s --poll 100ms -- "$work/sleepy.sh" 2>/dev/null &
wpid=$!
wait_for "$port" postgres "SELECT status = 'EXECUTING' FROM taskorch.runs WHERE id = '$rh'" 10
kill -STOP $wpid
wait_for "$port" postgres "SELECT status = 'QUEUED' AND attempts = 1 FROM taskorch.runs WHERE id = '$rh'" 6
[ "$(q "SELECT message FROM taskorch.attempts WHERE run_id = '$rh'")" = \
  "the external worker of this run was lost: its lease expired" ] || fail "the hung attempt"
kill -KILL $wpid; wait $wpid 2>/dev/null || true
$T cancel "$rh" >/dev/null
echo "ok: a hung command's lease expires, its attempt is charged"

echo "-- SIGTERM: finish within the grace, release the rest"
short=$($T trigger sleepy '{"s": 0.5}')
long=$($T trigger sleepy '{"s": 600}')
$T worker sleepy -c 2 --grace 2s --poll 100ms -- "$work/sleepy.sh" 2>/dev/null &
wpid=$!
wait_for "$port" postgres "SELECT count(*) = 2 FROM taskorch.runs WHERE id IN ('$short', '$long') AND status = 'EXECUTING'" 10
kill -TERM $wpid
wait $wpid
[ "$(q "SELECT string_agg(status || ' ' || attempts, ', ' ORDER BY id = '$long') FROM taskorch.runs WHERE id IN ('$short', '$long')")" = \
  "COMPLETED 1, QUEUED 0" ] || fail "grace: $(q "SELECT id, status, attempts FROM taskorch.runs WHERE id IN ('$short', '$long')")"
$T cancel "$long" >/dev/null
echo "ok: SIGTERM lets a run finish and releases the other unspent"

echo "-- a server restart under running workers"
q "SELECT count(taskorch.trigger('sleepy', '{\"s\": 3}', tags => '{restart}')) FROM generate_series(1, 4)" >/dev/null
for w in 1 2; do
	$T worker sleepy -c 2 --poll 100ms -- "$work/sleepy.sh" 2>>"$work/restart.err" &
	eval "rw$w=\$!"
done
wait_for "$port" postgres "SELECT count(*) = 4 FROM taskorch.runs WHERE 'restart' = ANY (tags) AND status = 'EXECUTING'" 10
cluster_stop "$dir" fast
cluster_restart "$dir"
wait_for "$port" postgres "SELECT count(*) = 4 FROM taskorch.runs WHERE 'restart' = ANY (tags) AND status = 'COMPLETED'" 20
kill -TERM $rw1 $rw2; wait $rw1 $rw2
[ "$(q "SELECT count(*) FROM taskorch.runs WHERE 'restart' = ANY (tags) AND attempts = 1")" = 4 ] ||
	fail "a run took another attempt across the restart"
echo "ok: workers reconnect after a restart; their runs complete in their first attempt"

echo "-- 4 workers x concurrency 8, 400 runs"
q "SELECT count(taskorch.trigger('count', jsonb_build_object('n', g))) FROM generate_series(1, 400) g" >/dev/null
pids=()
for w in 1 2 3 4; do
	$T worker count -c 8 --poll 100ms -- "$work/count.sh" &
	pids+=($!)
done
wait_for "$port" postgres "SELECT count(*) = 400 FROM taskorch.runs WHERE task_id = 'count' AND status = 'COMPLETED'" 60
kill -TERM "${pids[@]}"; wait "${pids[@]}"
[ "$(sort "$work/counted" | uniq | wc -l)" = 400 ] || fail "not every run's command ran"
[ "$(wc -l <"$work/counted")" = 400 ] || fail "a command ran twice: $(sort "$work/counted" | uniq -d | head)"
[ "$(q "SELECT count(*) FROM taskorch.runs WHERE task_id = 'count' AND attempts <> 1")" = 0 ] || fail "an attempt was spent twice"
echo "ok: 400 runs, each command once, each run completed once"

echo "-- --stdio, 2 workers x concurrency 500, 3000 runs: claims and reports of hundreds"
q "SELECT count(taskorch.trigger('echo', jsonb_build_object('n', g), tags => '{wide}')) FROM generate_series(1, 3000) g" >/dev/null
pids=()
for w in 1 2; do
	$T worker echo --stdio -c 500 --poll 100ms -- /usr/bin/python3 "$work/stdio.py" &
	pids+=($!)
done
wait_for "$port" postgres "SELECT count(*) = 3000 FROM taskorch.runs WHERE 'wide' = ANY (tags) AND status = 'COMPLETED'" 60
kill -TERM "${pids[@]}"; wait "${pids[@]}"
[ "$(q "SELECT count(*) FROM taskorch.runs WHERE 'wide' = ANY (tags) AND attempts = 1 AND output = jsonb_build_object('doubled', 2 * (payload->>'n')::int)")" = 3000 ] ||
	fail "wide claims: not every run completed once with its own output"
! grep -q "terminated by signal" "$dir/server.log" || fail "a server process crashed: $(grep "terminated by signal" "$dir/server.log")"
echo "ok: 3000 runs in claims of hundreds, each completed once with its output"
echo "taskorch command: all checks passed"
