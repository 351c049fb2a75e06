-- Tracks, orchestrators, jobs and hooks, on the worked example of
-- docs/media-pipeline.md (test/pgtap.sh puts its examples in media.inc):
-- the page runs first, then the contracts are checked from its runs.
\o /dev/null
\set QUIET on
\ir media.inc
\o
SELECT plan(16);

CREATE FUNCTION pg_temp.job_of(track text, n int) RETURNS text LANGUAGE sql AS $$
	SELECT id FROM taskorch.jobs WHERE name = track ORDER BY created_at, id OFFSET n - 1 LIMIT 1 $$;
CREATE FUNCTION pg_temp.step_run(of_job text, named text) RETURNS taskorch.run LANGUAGE sql AS $$
	SELECT r.* FROM taskorch.run r JOIN taskorch.job_steps s ON s.run_id = r.id
	 WHERE s.job_id = of_job AND s.step = named $$;

-- the envelope
SELECT is((SELECT array_agg(k ORDER BY k) FROM taskorch.runs_wide r, jsonb_object_keys(r.output) k
			WHERE r.id = pg_temp.job_of('MEDIA_TRACK', 1)),
	ARRAY['job', 'metadata', 'results', 'trampData'], 'a track''s output is the envelope {job, results, metadata, trampData}');
SELECT is((SELECT (output->'job') - 'input' FROM taskorch.runs WHERE id = pg_temp.job_of('MEDIA_TRACK', 1)),
	jsonb_build_object('success', true, 'taskName', 'MEDIA_TRACK', 'runId', pg_temp.job_of('MEDIA_TRACK', 1)),
	'job: {success, taskName, runId, input}');
-- mapping and trampData
SELECT is((pg_temp.step_run(pg_temp.job_of('MEDIA_TRACK', 1), 'extract_audio')).payload->'url', '"https://cdn/keynote"',
	'the first step gets the raw input');
SELECT is((pg_temp.step_run(pg_temp.job_of('MEDIA_TRACK', 1), 'generate_transcript')).payload - 'trampData',
	'{"seconds": 95, "audioUrl": "https://cdn/keynote.mp3", "tenantId": "acme"}',
	'the input mapper maps the previous output (the FP Result''s data) and the original input');
SELECT is((pg_temp.step_run(pg_temp.job_of('MEDIA_TRACK', 1), 'generate_transcript')).payload->'trampData',
	'{"requestId": "r-1"}', 'trampData reaches a step its mapper did not copy it to');
SELECT is((SELECT output->'trampData' FROM taskorch.runs WHERE id = pg_temp.job_of('MEDIA_TRACK', 1)),
	'{"requestId": "r-1"}', 'and the envelope');
-- the stop policy
SELECT is((SELECT status::text FROM taskorch.runs WHERE id = pg_temp.job_of('MEDIA_TRACK', 2)), 'FAILED',
	'a failed step fails the track');
SELECT is((pg_temp.step_run(pg_temp.job_of('MEDIA_TRACK', 2), 'generate_transcript')).id, NULL,
	'the steps after it never run');
-- the continue policy
SELECT is((SELECT array_agg(step || ':' || status ORDER BY position) FROM taskorch.job_steps
			WHERE job_id = pg_temp.job_of('MEDIA_TRACK_LENIENT', 1)),
	ARRAY['extract_audio:FAILED', 'extract_frames:COMPLETED', 'detect_scenes:COMPLETED'],
	'continue_on_failure runs every step');
SELECT is((SELECT error->'result'->'data'->'metadata'->'errors'->0->>'step' FROM taskorch.runs_wide
			WHERE id = pg_temp.job_of('MEDIA_TRACK_LENIENT', 1)), 'extract_audio',
	'and collects the errors in the envelope of its failure');
-- jobs
SELECT is((SELECT array_agg(name || ':' || status ORDER BY created_at, id) FROM taskorch.jobs
			WHERE name LIKE 'MEDIA%' OR name LIKE 'VIDEO%'),
	ARRAY['MEDIA_ORCHESTRATOR:Complete', 'MEDIA_TRACK:Complete', 'VIDEO_TRACK:Complete',
		  'MEDIA_ORCHESTRATOR:Partial', 'MEDIA_TRACK:Error', 'VIDEO_TRACK:Complete', 'MEDIA_TRACK_LENIENT:Partial'],
	'job statuses: Complete, Partial, Error');
SELECT is((SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(taskorch.job(pg_temp.job_of('VIDEO_TRACK', 1))) k),
	ARRAY['detect_scenes', 'detect_scenes_ended', 'detect_scenes_started', 'ended', 'extract_frames',
		  'extract_frames_ended', 'extract_frames_started', 'lastupdated', 'started', 'status'],
	'job(): the seed''s record, per step {step}, {step}_started, {step}_ended');
SELECT ok((SELECT (j->>'extract_frames_ended')::timestamptz <= (j->>'detect_scenes_started')::timestamptz
				  AND (j->>'started')::timestamptz <= (j->>'extract_frames_started')::timestamptz
			 FROM taskorch.job(pg_temp.job_of('VIDEO_TRACK', 1)) j), 'steps run in order, within the job');
-- schemas and hooks
SELECT throws_ok($$ SELECT taskorch.trigger('extract_audio', '{"tenantId": "acme", "projectId": "p", "url": "ftp://x"}') $$,
	'22023', 'payload of task "extract_audio" does not match its schema: $.url: pattern: "ftp://x" does not match "^https://"',
	'a step''s payload schema');
SELECT is((SELECT count(*) FROM taskorch.runs WHERE task_id = 'notify_error'), 1::bigint,
	'on_failure ran once, for the one failed track');
SELECT is((SELECT payload->>'id' FROM taskorch.runs WHERE task_id = 'notify_error'), pg_temp.job_of('MEDIA_TRACK', 2),
	'with the failed track''s Result');

SELECT * FROM finish();
