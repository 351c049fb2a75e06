#!/usr/bin/env bash
# The workers' notifications on taskorch_runs, against a real cluster:
#
#   1. a batch commits without taking PostgreSQL's lock of notifying
#      commits: another session's NOTIFY is held in its commit (waiting for
#      a synchronous standby that never comes, the lock held meanwhile), and
#      runs triggered then still complete (a batch that notified at its own
#      commit waited there for that lock: its runs stayed QUEUED);
#   2. the notification follows the batch's commit: once the other session
#      lets the lock go, a LISTENer hears of the runs, COMPLETED;
#   3. a cancel inside a task that then fails is not announced (user code's
#      notification goes with its subtransaction), the task's failure is;
#   4. a batch whose commit fails (a deferred constraint trigger refuses a
#      run's completion) announces nothing of it: the refused run is never
#      heard COMPLETED, while its batch mate, run again, is.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/test/lib.sh"
port=${NOTIFY_PORT:-55451}
# heard TASK STATUS RUN: the listener heard RUN of TASK announced with STATUS
heard() { grep -q "\"id\": \"$3\", \"task\": \"$1\", \"status\": \"$2\"" "$dir/heard"; }
# wait_heard TASK STATUS RUN...: within 5 s, every RUN heard so
wait_heard() {
	local task=$1 status=$2 run missing
	shift 2
	for _ in $(seq 50); do
		missing=0
		for run in "$@"; do heard "$task" "$status" "$run" || missing=1; done
		[ $missing = 0 ] && return 0
		sleep 0.1
	done
	return 1
}

# commits wait for no standby unless a session asks (synchronous_commit = on)
throwaway_cluster notify "$port" "synchronous_standby_names = 'nobody'" "synchronous_commit = local"
psql_as "$port" postgres >/dev/null <<'SQL'
CREATE EXTENSION taskorch;
CREATE FUNCTION noop(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
SELECT taskorch.register_task('noop', 'noop(jsonb)');
CREATE FUNCTION cancel_then_fail(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	PERFORM taskorch.cancel(payload->>'victim');
	RAISE EXCEPTION 'failing after the cancel';
END $$;
SELECT taskorch.register_task('cancel-then-fail', 'cancel_then_fail(jsonb)', retry => '{"maxAttempts": 1}');
CREATE TABLE elsewhere (i int);
SQL
wait_for "$port" postgres "SELECT count(*) >= 1 FROM taskorch.workers() WHERE pid IS NOT NULL" 30

# a listener, its notifications in $dir/heard (psql prints them after each statement)
as_postgres touch "$dir/heard"
( printf 'LISTEN taskorch_runs;\n'; for _ in $(seq 900); do printf 'SELECT pg_sleep(0.1);\n'; done ) |
	psql_as "$port" postgres -tA > "$dir/heard" 2>&1 &
listener=$!
sleep 0.5

# 1. hold the notify lock: a write and a NOTIFY, whose commit waits for the standby
psql_as "$port" postgres -c "SET synchronous_commit = on" -c "BEGIN" -c "INSERT INTO elsewhere VALUES (1)" \
	-c "NOTIFY elsewhere" -c "COMMIT" \
	>/dev/null 2>&1 &
blocker=$!
wait_for "$port" postgres "SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event = 'SyncRep'" 10 ||
	fail "the other session's commit is not waiting for its standby"
runs=$(q "SELECT string_agg(taskorch.trigger('noop', jsonb_build_object('i', g)), ' ') FROM generate_series(1, 5) g")
wait_for "$port" postgres "SELECT count(*) = 5 FROM taskorch.runs WHERE task_id = 'noop' AND status = 'COMPLETED'" 10 ||
	fail "runs did not complete while another transaction's NOTIFY held its lock: $(q "SELECT string_agg(status::text, ' ') FROM taskorch.runs")"
echo "ok - a batch commits while another session's NOTIFY waits in its commit"

# 2. the lock let go (the standby wait canceled), the listener hears of them
q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'" >/dev/null
wait "$blocker" || true
# shellcheck disable=SC2086 # the run ids, one word each
wait_heard noop COMPLETED $runs || fail "the listener did not hear of every run: $(cat "$dir/heard")"
echo "ok - the listener hears of the runs, COMPLETED, after the lock is let go"

# 3. a cancel rolled back with its task's failure is not announced
victim=$(q "SELECT taskorch.trigger('noop', delay => '1h')")
run=$(q "SELECT taskorch.trigger('cancel-then-fail', jsonb_build_object('victim', '$victim'))")
wait_for "$port" postgres "SELECT status = 'FAILED' FROM taskorch.runs WHERE id = '$run'" 10 ||
	fail "the task did not fail"
[ "$(q "SELECT status FROM taskorch.runs WHERE id = '$victim'")" = DELAYED ] ||
	fail "the cancel inside the failed task took effect"
wait_heard cancel-then-fail FAILED "$run" ||
	fail "the listener did not hear of the failed run: $(cat "$dir/heard")"
if grep -q "\"id\": \"$victim\"" "$dir/heard"; then
	fail "the cancel rolled back was announced: $(grep "$victim" "$dir/heard")"
fi
echo "ok - a cancel rolled back with its task is not announced; the task's failure is"

# 4. a batch that fails at its commit: its notification is dropped
psql_as "$port" postgres >/dev/null <<'SQL'
CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.task_id = 'refused' AND NEW.status = 'COMPLETED' THEN
		RAISE EXCEPTION 'completion of % refused at commit', NEW.id;
	END IF;
	RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER UPDATE ON taskorch.run
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_at_commit();
SELECT taskorch.register_task('refused', 'noop(jsonb)');
SQL
# one transaction: the two runs are claimed together
IFS='|' read -r refused mate < <(q "SELECT taskorch.trigger('refused'), taskorch.trigger('noop')")
wait_for "$port" postgres "SELECT status = 'SYSTEM_FAILURE' FROM taskorch.runs WHERE id = '$refused'" 30 ||
	fail "the refused run did not end SYSTEM_FAILURE: $(q "SELECT status FROM taskorch.runs WHERE id = '$refused'")"
wait_heard noop COMPLETED "$mate" ||
	fail "the listener did not hear of the refused run's batch mate: $(cat "$dir/heard")"
# a notification kept by mistake would go out at the worker's next commit,
# within milliseconds, and the listener prints what it heard every 0.1 s
sleep 0.5
if heard refused COMPLETED "$refused"; then
	fail "the completion refused at commit was announced"
fi
echo "ok - a batch that fails at its commit announces nothing of it; its mate, run again, is heard"
kill "$listener" 2>/dev/null || true
echo "notify.sh: PASS"
