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
echo "cluster running: psql -h $dir -p $port -U postgres"
psql_as "$port" postgres -e <<'SQL'
CREATE EXTENSION taskorch;
SELECT database, slot, idle FROM taskorch.workers();

CREATE TABLE outbox (addr text, sent_at timestamptz DEFAULT clock_timestamp());
CREATE FUNCTION send_welcome(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	INSERT INTO outbox (addr) VALUES (payload->>'to')
	RETURNING jsonb_build_object('sent', true, 'to', addr) $$;
SELECT taskorch.register_task('send-welcome', 'send_welcome(jsonb)'::regprocedure);

-- a flaky task: fails its first two attempts, then succeeds
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

SELECT taskorch.trigger('send-welcome', jsonb_build_object('to', 'user' || g || '@example.com'))
  FROM generate_series(1, 5) g;
SELECT taskorch.trigger('charge-card', '{"amount": 4200}') AS charge \gset
SELECT pg_sleep(0.1);
SELECT id, task_id, status, attempts, output, duration FROM taskorch.runs ORDER BY created_at;
SELECT * FROM outbox;
SELECT pg_sleep(1.5);
SELECT id, task_id, status, attempts, output FROM taskorch.runs WHERE task_id = 'charge-card';
SELECT run_id, number, message, started_at FROM taskorch.attempts;
SELECT jsonb_pretty(taskorch.retrieve(:'charge'));

-- a track: two steps run one after the other, the parent waiting durably
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
SELECT jsonb_pretty(taskorch.job(:'result'::jsonb->>'id')) AS job;
SQL
