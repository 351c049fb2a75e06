-- External tasks: registration, the claim protocol by lease, outcomes,
-- stale and forged leases, lost leases, cancel, release, queue limits,
-- hooks, a parent waiting on an external child, and who may claim.
\set VERBOSITY terse
-- a lease in the output: its shape, not its value
CREATE FUNCTION lease_shape(lease text) RETURNS text LANGUAGE sql AS $$
	SELECT regexp_replace(lease, '^run_[0-9]+\.([0-9]+)\.[0-9]+\.[0-9a-f]{32}$', 'run_N.\1.<claim>.<signature>') $$;
-- try(), with the leases in its message masked
CREATE FUNCTION try_lease(sql text) RETURNS text LANGUAGE sql AS $$
	SELECT regexp_replace(try(sql), 'lease "[^"]*"', 'lease "<lease>"') $$;

SELECT taskorch.register_external_task('ext-audio', max_attempts => 2,
	retry => '{"minTimeoutInMs": 100, "maxTimeoutInMs": 100, "randomize": false}',
	description => 'extract the audio of a talk');
SELECT id, function, queue, max_attempts, external, description FROM taskorch.tasks WHERE id = 'ext-audio';
-- a task keeps its kind
SELECT try($$SELECT taskorch.register_task('ext-audio', 'jsonb_typeof(jsonb)')$$);
CREATE FUNCTION ext_sql(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT payload $$;
SELECT taskorch.register_task('ext-sql', 'ext_sql(jsonb)');
SELECT try($$SELECT taskorch.register_external_task('ext-sql')$$);

-- the server's workers never execute an external run
SELECT taskorch.trigger('ext-audio', '{"url": "https://cdn/talk.mp4"}') AS r1 \gset
SELECT pg_sleep(0.3);
SELECT status, attempts, started_at IS NULL AS unstarted FROM taskorch.runs WHERE id = :'r1';

-- claims that cannot be made
SELECT try($$SELECT * FROM taskorch.claim_runs('{}')$$);
SELECT try($$SELECT * FROM taskorch.claim_runs(NULL)$$);
SELECT try($$SELECT * FROM taskorch.claim_runs('{ext-audio,NULL}')$$);
SELECT try($$SELECT * FROM taskorch.claim_runs('{no-such-task}')$$);
SELECT try($$SELECT * FROM taskorch.claim_runs('{ext-sql}')$$);
SELECT try($$SELECT * FROM taskorch.claim_runs('{ext-audio}', 0)$$);
SELECT try($$SELECT * FROM taskorch.claim_runs('{ext-audio}', 1001)$$);
SELECT try($$SELECT * FROM taskorch.claim_runs('{ext-audio}', 1, '0.5s')$$);
SELECT try($$SELECT * FROM taskorch.claim_runs('{ext-audio}', 1, 'soon')$$);
-- nothing was claimed by them
SELECT status FROM taskorch.runs WHERE id = :'r1';

-- claim, heartbeat, log, metadata, complete
SELECT run_id AS claimed, task, payload, attempt, max_attempts, metadata, lease,
	   lease_expires_at - now() BETWEEN '9s' AND '11s' AS ten_seconds
  FROM taskorch.claim_runs('{ext-audio}', 10, '10s') \gset
SELECT :'claimed' = :'r1' AS same_run, :'task' AS task, :'payload' AS payload, :attempt AS attempt,
	   :max_attempts AS max_attempts, :'metadata' AS metadata, lease_shape(:'lease'), :'ten_seconds';
SELECT status, attempts, started_at IS NOT NULL AS started FROM taskorch.runs WHERE id = :'r1';
SELECT canceled, lease_expires_at - now() BETWEEN '9s' AND '11s' AS same_length FROM taskorch.heartbeat(:'lease');
SELECT canceled, lease_expires_at - now() BETWEEN '59s' AND '61s' AS a_minute FROM taskorch.heartbeat(:'lease', '1m');
SELECT try(format($$SELECT taskorch.heartbeat(%L, '2 days')$$, :'lease'));
SELECT taskorch.lease_log(:'lease', 'info', 'extracting', '{"codec": "aac"}');
SELECT try(format($$SELECT taskorch.lease_log(%L, 'loud', 'x')$$, :'lease'));
SELECT taskorch.lease_metadata_set(:'lease', 'progress', '0.5');
SELECT taskorch.lease_metadata(:'lease');
SELECT try(format($$SELECT taskorch.lease_metadata_replace(%L, '[1]')$$, :'lease'));
SELECT taskorch.complete_run(:'lease', '{"audio": "s3://talk.aac"}');
SELECT status, attempts, output, metadata FROM taskorch.runs_wide WHERE id = :'r1';
SELECT level, message, data FROM taskorch.logs WHERE run_id = :'r1';
-- an attempt has one outcome: the lease is spent
SELECT try(format($$SELECT taskorch.complete_run(%L, '{}')$$, :'lease'));
SELECT try(format($$SELECT taskorch.fail_run(%L, '"late"')$$, :'lease'));
SELECT try(format($$SELECT taskorch.heartbeat(%L)$$, :'lease'));
-- leases cannot be made up or altered
SELECT try_lease(format($$SELECT taskorch.complete_run(%L, '{}')$$, :'lease' || '0'));
SELECT try_lease(format($$SELECT taskorch.complete_run(%L, '{}')$$,
		   regexp_replace(:'lease', '\.([0-9]+)\.', '.7.')));
SELECT try($$SELECT taskorch.complete_run('run_1.1.1.00000000000000000000000000000000', '{}')$$);
SELECT try($$SELECT taskorch.complete_run('nonsense', '{}')$$);
SELECT try($$SELECT taskorch.complete_run(NULL, '{}')$$);

-- failures: retried per the task, then FAILED; an error string is its message
SELECT taskorch.trigger('ext-audio', '{"n": 2}') AS r2 \gset
SELECT lease FROM taskorch.claim_runs('{ext-audio}') \gset
SELECT try(format($$SELECT taskorch.fail_run(%L, '[1, 2]')$$, :'lease'));
SELECT taskorch.fail_run(:'lease', '"ffmpeg exited with 1"');
SELECT status, attempts FROM taskorch.runs WHERE id = :'r2';
SELECT pg_sleep(0.2);
SELECT attempt, lease FROM taskorch.claim_runs('{ext-audio}') \gset
SELECT :attempt AS attempt, taskorch.fail_run(:'lease', '{"message": "no audio track", "name": "MediaError"}');
SELECT number, status, message FROM taskorch.attempts WHERE run_id = :'r2' ORDER BY number;
SELECT status, attempts, error FROM taskorch.runs_wide WHERE id = :'r2';
-- retry => false fails at once
SELECT taskorch.trigger('ext-audio', '{"n": 3}') AS r3 \gset
SELECT taskorch.fail_run(lease, '"bad input"', retry => false) FROM taskorch.claim_runs('{ext-audio}');
-- an FP Result with success false is a failed attempt
SELECT taskorch.trigger('ext-audio', '{"n": 4}') AS r4 \gset
SELECT taskorch.complete_run(lease, '{"success": false, "error": "not found"}') FROM taskorch.claim_runs('{ext-audio}');
SELECT status, attempts, error->>'message' AS message FROM taskorch.runs_wide WHERE id IN (:'r3', :'r4') ORDER BY id;
UPDATE taskorch.run SET status = 'CANCELED', finished_at = now() WHERE id = :'r4';

-- an output the task's schema refuses fails the attempt
SELECT taskorch.register_external_task('ext-typed', max_attempts => 1,
	output_schema => '{"type": "object", "required": ["text"]}');
SELECT taskorch.trigger('ext-typed') AS r5 \gset
SELECT taskorch.complete_run(lease, '{"txt": "hi"}') FROM taskorch.claim_runs('{ext-typed}');
SELECT status, error->>'message' AS message FROM taskorch.runs_wide WHERE id = :'r5';

-- cancel while a worker holds it: the heartbeat says so, the lease is spent
SELECT taskorch.trigger('ext-audio', '{"n": 6}') AS r6 \gset
SELECT lease FROM taskorch.claim_runs('{ext-audio}') \gset
SELECT taskorch.cancel(:'r6');
SELECT canceled, lease_expires_at FROM taskorch.heartbeat(:'lease');
SELECT try(format($$SELECT taskorch.complete_run(%L, '{}')$$, :'lease'));
SELECT status FROM taskorch.runs WHERE id = :'r6';

-- release: back to the queue, no attempt spent; the old lease is spent
SELECT taskorch.trigger('ext-audio', '{"n": 7}') AS r7 \gset
SELECT lease AS old_lease FROM taskorch.claim_runs('{ext-audio}') \gset
SELECT taskorch.release_run(:'old_lease');
SELECT status, attempts FROM taskorch.runs WHERE id = :'r7';
SELECT attempt, lease FROM taskorch.claim_runs('{ext-audio}') \gset
SELECT :attempt AS attempt_again;
SELECT try(format($$SELECT taskorch.complete_run(%L, '{}')$$, :'old_lease'));
SELECT taskorch.complete_run(:'lease', '"ok"');

-- a lease that expires charges the attempt; after the last, CRASHED
SELECT taskorch.trigger('ext-audio', '{"n": 8}') AS r8 \gset
SELECT lease AS lost_lease FROM taskorch.claim_runs('{ext-audio}', 1, '1s') \gset
SELECT pg_sleep(1.1);
SELECT taskorch.run_pending(0);
SELECT status, attempts FROM taskorch.runs WHERE id = :'r8';
SELECT number, status, message FROM taskorch.attempts WHERE run_id = :'r8';
SELECT try(format($$SELECT taskorch.complete_run(%L, '{}')$$, :'lost_lease'));
SELECT pg_sleep(0.2);
SELECT lease FROM taskorch.claim_runs('{ext-audio}', 1, '1s') \gset
SELECT pg_sleep(1.1);
SELECT taskorch.run_pending(0);
SELECT status, attempts, error->>'name' AS error FROM taskorch.runs_wide WHERE id = :'r8';

-- max_duration: an attempt past it is TIMED_OUT, whatever its lease
SELECT taskorch.register_external_task('ext-quick', max_duration => '1s');
SELECT taskorch.trigger('ext-quick') AS r9 \gset
SELECT lease FROM taskorch.claim_runs('{ext-quick}', 1, '1h') \gset
SELECT pg_sleep(1.1);
SELECT taskorch.run_pending(0);
SELECT status, error->>'message' AS message FROM taskorch.runs_wide WHERE id = :'r9';

-- a queue's limit counts the external runs in flight
SELECT taskorch.create_queue('ext-pair', concurrency_limit => 2);
SELECT count(taskorch.trigger('ext-audio', jsonb_build_object('n', g), queue => 'ext-pair'))
  FROM generate_series(1, 5) g;
CREATE TABLE held (lease text);
INSERT INTO held SELECT lease FROM taskorch.claim_runs('{ext-audio}', 5);
SELECT count(*) AS claimed_at_once FROM held;
SELECT count(*) AS more FROM taskorch.claim_runs('{ext-audio}', 5);
WITH one AS (DELETE FROM held WHERE lease = (SELECT min(lease) FROM held) RETURNING lease)
SELECT taskorch.complete_run(lease, '{}') FROM one;
WITH claimed AS (INSERT INTO held SELECT lease FROM taskorch.claim_runs('{ext-audio}', 5) RETURNING 1)
SELECT count(*) AS after_one_ended FROM claimed;
-- a paused queue gives nothing
SELECT taskorch.pause_queue('ext-pair');
SELECT count(taskorch.complete_run(lease, '{}')) AS completed FROM held;
SELECT count(*) AS while_paused FROM taskorch.claim_runs('{ext-audio}', 5);
SELECT taskorch.resume_queue('ext-pair');
SELECT count(taskorch.complete_run(lease, '{}')) AS the_last_two FROM taskorch.claim_runs('{ext-audio}', 5);
SELECT count(*) AS left_queued FROM taskorch.runs_wide WHERE task_id = 'ext-audio' AND status = 'QUEUED';
DROP TABLE held;

-- hooks fire, and a SQL parent waits on an external child
CREATE TABLE ext_heard (what text, payload jsonb);
CREATE FUNCTION ext_hook(payload jsonb) RETURNS void LANGUAGE sql AS $$
	INSERT INTO ext_heard VALUES ('hook', payload - 'id') $$;
SELECT taskorch.register_task('ext-hook', 'ext_hook(jsonb)');
SELECT taskorch.register_external_task('ext-hooked', on_start => 'ext-hook', on_success => 'ext-hook');
SELECT taskorch.trigger('ext-hooked', '{"x": 1}') AS r10 \gset
SELECT taskorch.complete_run(lease, '{"y": 2}') FROM taskorch.claim_runs('{ext-hooked}');
SELECT wait_for_runs();
SELECT what, payload FROM ext_heard ORDER BY payload::text;
CREATE FUNCTION ext_parent(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_build_object('child', taskorch.trigger_and_wait('ext-audio', payload)) $$;
SELECT taskorch.register_task('ext-parent', 'ext_parent(jsonb)');
SELECT taskorch.trigger('ext-parent', '{"talk": 1}') AS parent \gset
SELECT wait_for_runs();
SELECT status FROM taskorch.runs WHERE id = :'parent';
SELECT taskorch.complete_run(lease, jsonb_build_object('transcript', payload)) FROM taskorch.claim_runs('{ext-audio}');
SELECT wait_for_runs();
SELECT status, output #- '{child,id}' AS output FROM taskorch.runs WHERE id = :'parent';

-- trigger options work for external runs: an idempotency key names the
-- same run, a ttl expires it unclaimed, tags and metadata come with it
SELECT taskorch.trigger('ext-audio', '{"n": 12}', idempotency_key => 'talk-12', tags => '{talks}',
						metadata => '{"lang": "en"}') AS r12 \gset
SELECT taskorch.trigger('ext-audio', '{"n": 12}', idempotency_key => 'talk-12') = :'r12' AS same_run;
SELECT task, payload, metadata FROM taskorch.claim_runs('{ext-audio}') \gset
SELECT :'task' AS task, :'payload' AS payload, :'metadata' AS metadata,
	   (SELECT tags FROM taskorch.runs WHERE id = :'r12') AS tags;
SELECT taskorch.cancel(:'r12');
SELECT taskorch.trigger('ext-audio', '{"n": 13}', ttl => '1s') AS r13 \gset
SELECT pg_sleep(1.1);
SELECT taskorch.run_pending(0);
SELECT count(*) AS claimed_after_ttl FROM taskorch.claim_runs('{ext-audio}');
SELECT status FROM taskorch.runs WHERE id = :'r13';

-- a schedule of an external task makes runs its workers claim
SELECT taskorch.schedule('ext-audio', '0 3 * * *', external_id => 'nightly') AS sched \gset
SELECT taskorch.run_schedule_now(:'sched') AS r14 \gset
SELECT run_id = :'r14' AS the_scheduled_run, payload->>'externalId' AS external_id,
	   payload ? 'scheduleId' AS has_schedule_id,
	   taskorch.complete_run(lease, '{}') AS status
  FROM taskorch.claim_runs('{ext-audio}');
SELECT taskorch.unschedule(:'sched');

-- who may claim: the owner, a role granted execute, taskorch_admin
CREATE ROLE regress_ext_worker;
CREATE ROLE regress_ext_other;
GRANT USAGE ON SCHEMA taskorch TO regress_ext_worker, regress_ext_other;
SELECT taskorch.trigger('ext-audio', '{"n": 11}') AS r11 \gset
SET ROLE regress_ext_worker;
SELECT try($$SELECT * FROM taskorch.claim_runs('{ext-audio}')$$);
RESET ROLE;
SELECT taskorch.grant_execute('ext-audio', 'regress_ext_worker');
SELECT executors FROM taskorch.tasks WHERE id = 'ext-audio';
SET ROLE regress_ext_worker;
SELECT lease FROM taskorch.claim_runs('{ext-audio}') \gset
-- another role cannot act by someone else's lease unless it holds it
SET ROLE regress_ext_other;
SELECT try_lease(format($$SELECT taskorch.complete_run(%L, '{}')$$, regexp_replace(:'lease', '.$', 'x')));
SET ROLE regress_ext_worker;
SELECT taskorch.complete_run(:'lease', '"done"');
RESET ROLE;
SELECT taskorch.revoke_execute('ext-audio', 'regress_ext_worker');
SET ROLE regress_ext_worker;
SELECT try($$SELECT * FROM taskorch.claim_runs('{ext-audio}')$$);
RESET ROLE;
-- the lease key is no role's to read
SET ROLE regress_ext_other;
SELECT try($$SELECT * FROM taskorch_internal.lease_key$$);
RESET ROLE;
REVOKE USAGE ON SCHEMA taskorch FROM regress_ext_worker, regress_ext_other;
DROP ROLE regress_ext_worker, regress_ext_other;

-- nothing external is left waiting for the tests that follow
SELECT count(taskorch.cancel(id)) FROM taskorch.runs_wide WHERE external AND NOT taskorch.finished(status);
