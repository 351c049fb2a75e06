#!/usr/bin/env bash
# Queue concurrency limits against a real cluster with 8 workers.
#
# A task sleeps 20 ms; its runs go to queue "limited" (limit 2), with three
# concurrency keys (a separate limit of 2 each), and to an unlimited queue.
# From the runs' own started_at/finished_at (set around the task call) the
# test computes how many runs of each key executed at once, and checks:
#   - never more than the limit, for any key            (the limit holds)
#   - the limit was reached for every key                (it was exercised)
#   - runs of different keys overlapped                  (keys are separate)
#   - the unlimited queue ran more than 2 at once        (no limit leaks)
#   - a paused queue's runs wait, and run once resumed
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/test/lib.sh"
port=${CONC_PORT:-55439}
# small batches, so the 8 workers run side by side rather than in long batches
throwaway_cluster concurrency "$port" "taskorch.workers_per_database = 8" "max_worker_processes = 16" \
	"taskorch.batch_size = 2"
sql() { psql_as "$port" postgres -tA "$@"; }

sql >/dev/null <<'SQL'
CREATE EXTENSION taskorch;
CREATE FUNCTION nap(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT pg_sleep(0.02); SELECT payload $$;
SELECT taskorch.register_task('nap', 'nap(jsonb)');
SELECT taskorch.create_queue('limited', concurrency_limit => 2);
SQL
wait_for "$port" postgres "SELECT count(*) = 8 FROM taskorch.workers() WHERE pid IS NOT NULL" 30 ||
	fail "8 workers did not start"

sql >/dev/null <<'SQL'
SELECT count(taskorch.trigger('nap', jsonb_build_object('i', g), queue => 'limited',
							  concurrency_key => 'user-' || (g % 3)))
  FROM generate_series(1, 150) g;
SELECT count(taskorch.trigger('nap', jsonb_build_object('i', g), queue => 'open'))
  FROM generate_series(1, 60) g;
SQL
wait_for "$port" postgres "SELECT NOT EXISTS (SELECT FROM taskorch.run WHERE status = 'QUEUED')" 120 ||
	fail "runs did not finish"

# most runs of one key executing at the same instant, per key
overlap() {
	sql -c "
	SELECT r.queue || '/' || coalesce(r.concurrency_key, '-'),
		   max((SELECT count(*) FROM taskorch.run o
				 WHERE o.queue = r.queue AND o.concurrency_key IS NOT DISTINCT FROM r.concurrency_key
				   AND o.started_at <= r.started_at AND o.finished_at > r.started_at))
	  FROM taskorch.run r WHERE r.status = 'COMPLETED' $1
	 GROUP BY 1 ORDER BY 1"
}
echo "most runs executing at once, per queue/key:"
overlap "" | sed 's/^/  /'
[ "$(sql -c "SELECT count(*) FROM taskorch.run WHERE status <> 'COMPLETED'")" = 0 ] || fail "runs did not complete"
while IFS='|' read -r key most; do
	case "$key" in
		limited/*)
			[ "$most" -le 2 ] || fail "$key had $most runs executing at once (limit 2)"
			[ "$most" -eq 2 ] || fail "$key never reached its limit of 2 ($most)"
			;;
		open/*)
			[ "$most" -gt 2 ] || fail "the unlimited queue ran only $most at once"
			;;
	esac
done < <(overlap "")
cross=$(sql -c "
	SELECT count(*) FROM taskorch.run a JOIN taskorch.run b
	  ON a.queue = 'limited' AND b.queue = 'limited' AND a.concurrency_key < b.concurrency_key
	 AND a.started_at < b.finished_at AND b.started_at < a.finished_at")
[ "$cross" -gt 0 ] || fail "runs of different keys never overlapped"
echo "ok - limit 2 per key held with 8 workers; keys ran side by side ($cross overlapping pairs)"

# a paused queue holds its runs until resumed
sql -c "SELECT taskorch.pause_queue('limited')" \
	-c "SELECT count(taskorch.trigger('nap', queue => 'limited')) FROM generate_series(1, 5)" >/dev/null
sleep 1
[ "$(sql -c "SELECT count(*) FROM taskorch.run WHERE status = 'QUEUED'")" = 5 ] ||
	fail "runs of a paused queue were executed"
sql -c "SELECT taskorch.resume_queue('limited')" >/dev/null
wait_for "$port" postgres "SELECT NOT EXISTS (SELECT FROM taskorch.run WHERE status = 'QUEUED')" 30 ||
	fail "runs did not start after resume_queue"
echo "ok - a paused queue's runs waited, and ran after resume"
echo "concurrency test passed"
