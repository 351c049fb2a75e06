#!/usr/bin/env bash
# The main job: install dependencies, build and install taskorch, start a
# throwaway cluster with shared_preload_libraries = 'taskorch', and show
# runs being triggered, executed by the background workers, retried and
# recorded.  DEMO_KEEP=1 leaves the cluster running afterwards.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/test/lib.sh"
build_and_install
dir=${DEMO_DIR:-/tmp/taskorch-demo}
port=${DEMO_PORT:-55435}
[ "${DEMO_KEEP:-0}" = 1 ] || trap 'cluster_stop "$dir"; rm -rf "$dir"' EXIT
cluster_start "$dir" "$port"
# psql -a echoes the script as written, comments included: the demo reads as
# the story below, each step's result under it
psql_as "$port" postgres -a <<'SQL'
-- taskorch: durable tasks that run inside PostgreSQL.
-- 1. Install it in a database: background workers start serving it.
CREATE EXTENSION taskorch;
SELECT database, slot, idle FROM taskorch.workers();

-- 2. A task is a SQL function taking the run's payload; register it by name.
CREATE TABLE outbox (addr text, sent_at timestamptz DEFAULT clock_timestamp());
CREATE FUNCTION send_welcome(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	INSERT INTO outbox (addr) VALUES (payload->>'to')
	RETURNING jsonb_build_object('sent', true, 'to', addr) $$;
SELECT taskorch.register_task('send-welcome', 'send_welcome(jsonb)');

-- 3. Trigger runs from any session: each is a row, committed with your
--    transaction; a worker executes it right after the commit.
SELECT taskorch.trigger('send-welcome', jsonb_build_object('to', 'user' || g || '@example.com'))
  FROM generate_series(1, 3) g;
SELECT pg_sleep(0.2);
SELECT id, task_id, status, attempts, output, duration FROM taskorch.runs ORDER BY created_at;
SELECT * FROM outbox;

-- 4. A flaky task fails its first two attempts: taskorch retries it with
--    backoff, and records every failed attempt.
CREATE FUNCTION charge_card(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	attempt int := (taskorch.current_run()->>'attempt')::int;
BEGIN
	IF attempt < 3 THEN
		RAISE EXCEPTION 'card processor timeout (attempt %)', attempt;
	END IF;
	RETURN jsonb_build_object('charged', payload->'amount', 'attempt', attempt);
END $$;
SELECT taskorch.register_task('charge-card', 'charge_card(jsonb)',
	retry => '{"minTimeoutInMs": 200, "factor": 2}');
SELECT taskorch.trigger('charge-card', '{"amount": 4200}') AS charge \gset
CALL taskorch.wait_for_run(:'charge') \gset
SELECT id, task_id, status, attempts, output FROM taskorch.runs WHERE task_id = 'charge-card';
SELECT run_id, number, message FROM taskorch.attempts;

-- 5. A task that keeps failing ends FAILED after its attempts, with the error.
CREATE FUNCTION always_fails(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'no such customer %', payload->>'customer' USING HINT = 'check the id';
END $$;
SELECT taskorch.register_task('lookup-customer', 'always_fails(jsonb)', max_attempts => 2,
	retry => '{"minTimeoutInMs": 100}');
SELECT taskorch.trigger('lookup-customer', '{"customer": "c-404"}') AS lookup \gset
CALL taskorch.wait_for_run(:'lookup') \gset
SELECT id, status, attempts, error_message FROM taskorch.runs WHERE id = :'lookup';

-- 6. A track: steps run one after the other, each a run of its own; the
--    track waits for each step without holding a worker.
CREATE FUNCTION extract_audio(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_build_object('audioUrl', (payload->>'url') || '.mp3') $$;
CREATE FUNCTION generate_transcript(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_build_object('transcript', 'words of ' || (payload->>'audioUrl')) $$;
SELECT taskorch.register_task('extract_audio', 'extract_audio(jsonb)');
SELECT taskorch.register_task('generate_transcript', 'generate_transcript(jsonb)');
SELECT taskorch.define_track('MEDIA_TRACK', '[{"task": "extract_audio"}, {"task": "generate_transcript"}]',
							 base_fields => true);
CALL taskorch.run_and_wait('MEDIA_TRACK', '{"tenantId": "t1", "projectId": "p1", "url": "https://cdn/talk"}') \gset
SELECT jsonb_pretty(:'result'::jsonb->'output'->'results') AS results;
SELECT step, status, run_id FROM taskorch.job_steps WHERE job_id = :'result'::jsonb->>'id';
SQL
if [ "${DEMO_KEEP:-0}" = 1 ]; then
	echo "The cluster keeps running: psql -h $dir -p $port -U postgres"
else
	echo "Done. (DEMO_KEEP=1 test/demo.sh keeps the cluster running to explore.)"
fi
