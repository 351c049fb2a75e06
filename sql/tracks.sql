-- Tracks (sequential steps), orchestrators (parallel members, traverse)
-- and their jobs, all derived from runs.
CREATE FUNCTION extract_audio(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	IF payload->>'url' LIKE '%broken%' THEN
		RAISE EXCEPTION 'cannot decode %', payload->>'url';
	END IF;
	RETURN jsonb_build_object('audioUrl', (payload->>'url') || '.mp3', 'seconds', 42,
							  'sawTramp', payload->'trampData');
END $$;
CREATE FUNCTION generate_transcript(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	IF payload->>'language' = 'xx' THEN
		RETURN jsonb_build_object('success', false, 'error', 'unknown language xx');
	END IF;
	RETURN jsonb_build_object('success', true,
		'data', jsonb_build_object('transcript', 'words of ' || (payload->>'audioUrl'),
								   'language', payload->'language', 'sawTramp', payload->'trampData'),
		'meta', jsonb_build_object('function_name', 'generate_transcript'));
END $$;
CREATE FUNCTION summarize(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_build_object('summary', left(payload->>'transcript', 8)) $$;
SELECT taskorch.register_task('extract_audio', 'extract_audio(jsonb)', max_attempts => 1);
SELECT taskorch.register_task('generate_transcript', 'generate_transcript(jsonb)', max_attempts => 1);
SELECT taskorch.register_task('summarize', 'summarize(jsonb)', max_attempts => 1);
-- an input mapper: (previous output, original input) -> this step's input
CREATE FUNCTION map_transcript(prev jsonb, input jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_build_object('audioUrl', prev->'audioUrl', 'language', coalesce(input->'language', '"en"')) $$;

SELECT taskorch.define_track('MEDIA_TRACK', '[
	{"task": "extract_audio"},
	{"task": "generate_transcript", "input_mapper": "map_transcript(jsonb,jsonb)"},
	{"task": "summarize", "name": "summary", "input": {"transcript": "$.prev.transcript", "of": "$.input.url"}}]',
	base_fields => true, description => 'audio, transcript, summary');
SELECT name, kind, steps, continue_on_failure, base_fields FROM taskorch.composite;
SELECT id, function, max_attempts FROM taskorch.tasks WHERE id = 'MEDIA_TRACK';

-- a run: each step's output feeds the next; trampData reaches every step;
-- the FP Result of generate_transcript is unwrapped to its data
CALL taskorch.run_and_wait('MEDIA_TRACK', '{"tenantId": "t1", "projectId": "p1", "url": "https://v/1",
											"trampData": {"jobRef": "J-1"}}') \gset
SELECT :'result'::jsonb->'ok' AS ok, jsonb_pretty((:'result'::jsonb->'output') #- '{job,runId}') AS envelope;
SELECT :'result'::jsonb->'output'->'job'->>'runId' = :'result'::jsonb->>'id' AS envelope_names_its_run;
SELECT :'result'::jsonb->>'id' AS job \gset
SELECT position, step, task_id, status, done, started IS NOT NULL AS has_started, ended >= started AS ended_after
  FROM taskorch.job_steps WHERE job_id = :'job' ORDER BY position;
SELECT name, kind, status, run_status, lastupdated >= ended AS lastupdated_ok FROM taskorch.jobs WHERE id = :'job';
-- job(): exactly the seed's shape
SELECT array_agg(k ORDER BY k) AS keys FROM jsonb_object_keys(taskorch.job(:'job')) k;
SELECT j->'status' AS status, j->'extract_audio' AS extract_audio, j->'summary' AS summary,
	   (j->>'summary_ended')::timestamptz >= (j->>'summary_started')::timestamptz AS times_in_order,
	   (j->>'ended')::timestamptz = (SELECT finished_at FROM taskorch.runs WHERE id = :'job') AS ended_is_runs
  FROM taskorch.job(:'job') j;
-- step transitions are in the track run's logs, once each
SELECT level, message FROM taskorch.logs WHERE run_id = :'job' ORDER BY logged_at, position;
-- the steps' runs are the track's children, in the tree the track is the top of
SELECT count(*) AS steps, bool_and(root_run_id = :'job') AS rooted_at_the_track,
	   (SELECT root_run_id IS NULL FROM taskorch.runs_wide WHERE id = :'job') AS track_is_a_root
  FROM taskorch.runs_wide WHERE parent_run_id = :'job';

-- a failed step stops the track by default: the run fails, the envelope in its error
CALL taskorch.run_and_wait('MEDIA_TRACK', '{"tenantId": "t1", "projectId": "p1", "url": "https://v/broken"}') \gset
SELECT :'result'::jsonb->'ok' AS ok, :'result'::jsonb->'error'->>'message' AS error,
	   (:'result'::jsonb->'error'->'result'->'data'->'metadata') - 'errors' AS metadata,
	   :'result'::jsonb->'error'->'result'->'data'->'job'->'success' AS job_success;
SELECT :'result'::jsonb->>'id' AS stopped \gset
SELECT step, status, done FROM taskorch.job_steps WHERE job_id = :'stopped' ORDER BY position;
SELECT status FROM taskorch.jobs WHERE id = :'stopped';
SELECT (taskorch.job(:'stopped'))->'generate_transcript' AS never_ran;

-- continue_on_failure runs the remaining steps and collects the errors
SELECT taskorch.define_track('MEDIA_TRACK_ALL', '[
	{"task": "extract_audio"},
	{"task": "generate_transcript", "input_mapper": "map_transcript(jsonb,jsonb)"},
	{"task": "summarize", "name": "summary", "input": {"transcript": "$.input.url"}}]',
	continue_on_failure => true);
CALL taskorch.run_and_wait('MEDIA_TRACK_ALL', '{"url": "https://v/2", "language": "xx"}') \gset
-- a step failed: the track's run fails, the envelope in its error's data
SELECT :'result'::jsonb->'ok' AS ok, :'result'::jsonb->'error'->>'message' AS message,
	   :'result'::jsonb->'error'->'result'->'data'->'job'->'success' AS job_success,
	   :'result'::jsonb->'error'->'result'->'data'->'job'->'error' AS job_error,
	   jsonb_pretty((:'result'::jsonb->'error'->'result'->'data'->'metadata'->'errors'->0) - 'runId') AS first_error,
	   :'result'::jsonb->'error'->'result'->'data'->'results'->'summary' AS summary;
SELECT status FROM taskorch.jobs WHERE id = :'result'::jsonb->>'id';

-- a step whose input its task's schema refuses fails as a step (under
-- either policy), without running
SELECT taskorch.register_task('strict_summary', 'summarize(jsonb)',
	payload_schema => '{"required": ["transcript"], "properties": {"transcript": {"type": "string"}}}');
SELECT taskorch.define_track('STRICT_TRACK', '[{"task": "extract_audio"},
	{"task": "strict_summary", "input": {"text": "$.prev.audioUrl"}},
	{"task": "summarize", "input": {"transcript": "$.prev.audioUrl"}}]', continue_on_failure => true);
CALL taskorch.run_and_wait('STRICT_TRACK', '{"url": "https://v/9"}') \gset
SELECT :'result'::jsonb->'error'->'result'->'data'->'metadata'->'errors'->0->>'step' AS failed_step,
	   :'result'::jsonb->'error'->'result'->'data'->'metadata'->'errors'->0->'error'->>'message' AS why,
	   :'result'::jsonb->'error'->'result'->'data'->'results'->'summarize' AS last_step_ran;
SELECT step, status, done FROM taskorch.job_steps WHERE job_id = :'result'::jsonb->>'id' ORDER BY position;
SELECT status FROM taskorch.jobs WHERE id = :'result'::jsonb->>'id';
SELECT level, message FROM taskorch.logs WHERE run_id = :'result'::jsonb->>'id' ORDER BY logged_at, position;
-- each step that ran is a checkpoint under its name, with the state the
-- track carried into it; the refused step has none, and no wait was spent
-- to keep positions aligned
SELECT seq, kind, key, state->'n' AS steps_before, jsonb_array_length(state->'errors') AS failed_before,
	   result->'ok' AS ok
  FROM taskorch.waitpoint WHERE run_id = :'result'::jsonb->>'id' ORDER BY seq;
SELECT taskorch.define_track('STRICT_TRACK', '[{"task": "extract_audio"},
	{"task": "strict_summary", "input": {"text": "$.prev.audioUrl"}}, {"task": "summarize"}]');
CALL taskorch.run_and_wait('STRICT_TRACK', '{"url": "https://v/9"}') \gset
SELECT :'result'::jsonb->'ok' AS ok, :'result'::jsonb->'error'->>'message' AS error;
-- the FP failure a track returns carries seed 004's meta
SELECT m->>'function_name' AS function_name, jsonb_typeof(m->'timestamp') AS timestamp,
	   m->'errors'->0->>'step' AS first_error_step
  FROM (SELECT :'result'::jsonb->'error'->'result'->'meta' AS m) x;

-- base fields are checked when the track declares them (no retry)
CALL taskorch.run_and_wait('MEDIA_TRACK', '{"url": "https://v/3", "projectId": ""}') \gset
SELECT :'result'::jsonb->'error'->>'message' AS error, :'result'::jsonb->'error'->>'sqlstate' AS sqlstate;

-- orchestrators: members in parallel, results aggregated
SELECT taskorch.define_track('VIDEO_TRACK', '[{"task": "extract_audio", "name": "frames"}]');
SELECT taskorch.define_orchestrator('MEDIA_ORCHESTRATOR', '[
	{"task": "MEDIA_TRACK", "name": "audio"},
	{"task": "VIDEO_TRACK", "name": "video", "input": {"url": "$.input.videoUrl"}},
	{"task": "summarize", "input": {"transcript": "orchestrated"}}]');
CALL taskorch.run_and_wait('MEDIA_ORCHESTRATOR', '{"tenantId": "t1", "projectId": "p1", "url": "https://a/1",
												   "videoUrl": "https://v/broken"}') \gset
SELECT :'result'::jsonb->'ok' AS ok, :'result'::jsonb->'error'->>'message' AS message,
	   (:'result'::jsonb->'error'->'result'->'data'->'metadata') - 'errors' AS counts,
	   jsonb_path_query_array(:'result'::jsonb, '$.error.result.data.results.keyvalue().key') AS succeeded,
	   :'result'::jsonb->'error'->'result'->'data'->'metadata'->'errors'->0->>'member' AS failed_member,
	   :'result'::jsonb->'error'->'result'->'data'->'metadata'->'errors'->0->'error'->>'message' AS failed_because;
-- an orchestrator's output is seed 001's envelope, as a track's
SELECT array_agg(k ORDER BY k) AS envelope_keys
  FROM jsonb_object_keys(:'result'::jsonb->'error'->'result'->'data') k;
SELECT :'result'::jsonb->>'id' AS orch \gset
SELECT step, task_id, status, done FROM taskorch.job_steps WHERE job_id = :'orch' ORDER BY position;
SELECT status FROM taskorch.jobs WHERE id = :'orch';
-- every member failing fails the orchestrator
CALL taskorch.run_and_wait('VIDEO_TRACK', '{"url": "https://v/broken"}') \gset
SELECT :'result'::jsonb->'error'->>'message' AS video_error;

-- traverse: the rows of a query in pages, successes and failures apart
CREATE TABLE agents (id int PRIMARY KEY, url text);
INSERT INTO agents SELECT g, CASE WHEN g % 7 = 0 THEN 'https://broken/' || g ELSE 'https://ok/' || g END
  FROM generate_series(1, 25) g;
GRANT SELECT ON agents TO PUBLIC;
SELECT taskorch.define_orchestrator('AGGREGATE_AGENTS', traverse => '{
	"query": "SELECT jsonb_build_object(''url'', url) AS payload FROM agents ORDER BY id",
	"task": "extract_audio", "page_size": 10}');
CALL taskorch.run_and_wait('AGGREGATE_AGENTS') \gset
SELECT (:'result'::jsonb->'error'->'result'->'data'->'metadata') - 'errors' AS totals,
	   jsonb_path_query_array(:'result'::jsonb, '$.error.result.data.metadata.errors[*].error.message') AS errors;
SELECT step, status, done FROM taskorch.job_steps WHERE job_id = :'result'::jsonb->>'id' ORDER BY position;
-- one page of it, from a task of your own
CREATE FUNCTION one_page(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT taskorch.traverse('SELECT jsonb_build_object(''url'', url) AS payload FROM agents ORDER BY id',
							 'extract_audio', 10, (payload->>'page')::int) $$;
SELECT taskorch.register_task('one-page', 'one_page(jsonb)', max_attempts => 1);
CALL taskorch.run_and_wait('one-page', '{"page": 2}') \gset
-- a row failed: the page is {"success": false, ...}, so the task's run fails
SELECT :'result'::jsonb->'ok' AS ok,
	   ((:'result'::jsonb->'error'->'result') - 'successes') - 'errors' AS last_page,
	   jsonb_array_length(:'result'::jsonb->'error'->'result'->'successes') AS successes;

-- definitions are checked
SELECT taskorch.define_track('T1', '[]');
SELECT taskorch.define_track('T1', '[{"task": "nope"}]');
SELECT taskorch.define_track('T1', '[{"task": "summarize"}, {"task": "summarize"}]');
SELECT taskorch.define_track('T1', '[{"task": "summarize", "input_mapper": "no_such_fn(jsonb,jsonb)"}]');
SELECT taskorch.define_track('T1', '[{"task": "summarize", "input_mapper": "summarize(jsonb)"}]');
SELECT taskorch.define_track('T1', '[{"task": "summarize", "input": {}, "input_mapper": "map_transcript(jsonb,jsonb)"}]');
SELECT taskorch.define_track('T1', '[{"task": "summarize", "mapper": "x"}]');
-- a track may not run itself, directly or through others
SELECT taskorch.define_track('VIDEO_TRACK', '[{"task": "VIDEO_TRACK"}]');
SELECT taskorch.define_track('MEDIA_TRACK', '[{"task": "extract_audio"}, {"task": "VIDEO_TRACK"}]');
SELECT taskorch.define_track('VIDEO_TRACK', '[{"task": "MEDIA_TRACK"}]');
SELECT taskorch.define_track('summarize', '[{"task": "extract_audio"}]');
SELECT taskorch.define_orchestrator('O1');
SELECT taskorch.define_orchestrator('O1', traverse => '{"query": "SELECT 1 AS payload", "task": "summarize"}');
SELECT taskorch.define_orchestrator('O1', traverse => '{"query": "SELECT ''{}''::jsonb AS payload", "task": "summarize", "page_size": 0}');
SELECT count(*) AS defined FROM taskorch.composite WHERE name IN ('T1', 'O1');
SELECT taskorch.job('run_999999999');
-- another role may not redefine a track
CREATE ROLE track_stranger;
SET ROLE track_stranger;
SELECT taskorch.register_task('stranger-task', 'summarize(jsonb)');
SELECT taskorch.define_track('MEDIA_TRACK', '[{"task": "stranger-task"}]');
SELECT count(*) AS tracks_seen FROM taskorch.composite;
SELECT count(*) AS jobs_seen FROM taskorch.jobs;
SELECT taskorch.unregister_task('stranger-task');
RESET ROLE;
DROP ROLE track_stranger;
-- unregistering a track's task removes its definition
SELECT taskorch.unregister_task('MEDIA_TRACK_ALL');
SELECT count(*) AS left_defined FROM taskorch.composite WHERE name = 'MEDIA_TRACK_ALL';
