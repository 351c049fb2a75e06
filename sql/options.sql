-- Trigger options: delay, ttl, idempotency keys, priority, tags, metadata,
-- per-run max_attempts and max_duration, and the refusals.
CREATE TABLE opt_log (note text);
CREATE FUNCTION opt_echo(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT payload $$;
CREATE FUNCTION opt_fail(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'always fails'; END $$;
CREATE FUNCTION opt_sleep(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT pg_sleep(10); SELECT '{}'::jsonb $$;
SELECT taskorch.register_task('opt-echo', 'opt_echo(jsonb)');
SELECT taskorch.register_task('opt-other', 'opt_echo(jsonb)');
SELECT taskorch.register_task('opt-fail', 'opt_fail(jsonb)',
	retry => '{"minTimeoutInMs": 10, "randomize": false}');
SELECT taskorch.register_task('opt-sleep', 'opt_sleep(jsonb)');

-- delay: a duration; the run is DELAYED until then, and runs after it
-- (on a paused queue, so that it can be looked at between queued and run)
SELECT taskorch.create_queue('opt-paused');
SELECT taskorch.pause_queue('opt-paused');
SELECT taskorch.trigger('opt-echo', '{"n": 1}', delay => '1s', ttl => '1h', queue => 'opt-paused') AS delayed \gset
SELECT status, delayed_until - created_at BETWEEN '1s' AND '1.1s' AS due_in_1s,
	   expires_at IS NULL AS ttl_not_started
  FROM taskorch.runs_wide WHERE id = :'delayed';
SELECT pg_sleep(1.5);
-- queued at its time: the ttl counts from then, not from the trigger
SELECT status, expires_at - delayed_until BETWEEN '1h' AND '1h 1s' AS ttl_from_enqueue
  FROM taskorch.runs_wide WHERE id = :'delayed';
SELECT taskorch.resume_queue('opt-paused');
SELECT wait_for_runs();
SELECT status, started_at >= delayed_until AS started_after_delay, expires_at AS no_expiry_once_started
  FROM taskorch.runs_wide WHERE id = :'delayed';

-- delay: the other forms
SELECT taskorch.trigger('opt-echo', delay => '1h52m18s') AS r \gset
SELECT delayed_until - created_at BETWEEN '1h52m18s' AND '1h52m19s' AS compound FROM taskorch.runs_wide WHERE id = :'r';
SELECT taskorch.trigger('opt-echo', delay => '2w') AS r \gset
SELECT delayed_until - created_at BETWEEN '14 days' AND '14 days 1s' AS weeks FROM taskorch.runs_wide WHERE id = :'r';
SELECT taskorch.trigger('opt-echo', delay => interval '90 minutes') AS r \gset
SELECT delayed_until - created_at BETWEEN '90 minutes' AND '90 minutes 1s' AS an_interval FROM taskorch.runs_wide WHERE id = :'r';
SELECT taskorch.trigger('opt-echo', delay => timestamptz '2099-12-01 00:00:00+00') AS r \gset
SELECT delayed_until = '2099-12-01 00:00:00+00' AS a_timestamp FROM taskorch.runs_wide WHERE id = :'r';
SELECT taskorch.trigger('opt-echo', '{}', '{"delay": "2099-12-01T00:00:00Z"}') AS r \gset
SELECT delayed_until = '2099-12-01 00:00:00+00' AS an_iso_string FROM taskorch.runs_wide WHERE id = :'r';
SELECT taskorch.trigger('opt-echo', delay => 88) AS r \gset
SELECT delayed_until - created_at BETWEEN '88s' AND '89s' AS seconds_number FROM taskorch.runs_wide WHERE id = :'r';
-- a time in the past: queued at once
SELECT taskorch.trigger('opt-echo', delay => '2024-01-01T00:00:00Z') AS r \gset
SELECT status <> 'DELAYED' AS not_delayed, delayed_until IS NULL AS no_delay FROM taskorch.runs_wide WHERE id = :'r';
SELECT wait_for_runs();
-- cancel the far-future runs made above
SELECT count(*) FILTER (WHERE taskorch.cancel(id)) AS canceled_delayed
  FROM taskorch.runs WHERE status = 'DELAYED';

-- ttl: a run that cannot start within its ttl expires (the trigger's
-- transaction outlives the ttl, so the run is already stale when queued)
BEGIN;
SELECT taskorch.trigger('opt-echo', '{}', ttl => '100ms') AS stale \gset
SELECT pg_sleep(0.3);
COMMIT;
SELECT wait_for_runs();
SELECT status, attempts, error->>'message' AS error FROM taskorch.runs_wide WHERE id = :'stale';
-- a number is seconds; 0 means none
SELECT taskorch.trigger('opt-echo', ttl => 3600) AS r \gset
SELECT ttl FROM taskorch.runs_wide WHERE id = :'r';
SELECT taskorch.trigger('opt-echo', ttl => 0) AS r \gset
SELECT ttl FROM taskorch.runs_wide WHERE id = :'r';
-- taskorch.default_ttl applies when no ttl is given
SET taskorch.default_ttl = '10min';
SELECT taskorch.trigger('opt-echo') AS r \gset
SELECT ttl FROM taskorch.runs_wide WHERE id = :'r';
SELECT taskorch.trigger('opt-echo', ttl => '1h') AS r \gset
SELECT ttl FROM taskorch.runs_wide WHERE id = :'r';
RESET taskorch.default_ttl;
SELECT wait_for_runs();

-- idempotency: a live key returns the run it made, per task
SELECT taskorch.trigger('opt-echo', '{"k": 1}', idempotency_key => 'order-42') AS first \gset
SELECT taskorch.trigger('opt-echo', '{"k": 2}', idempotency_key => 'order-42') = :'first' AS same_run;
SELECT taskorch.trigger('opt-echo', '{"k": 3}', '{"idempotencyKey": "order-42"}') = :'first' AS same_run_camel;
SELECT taskorch.trigger('opt-other', '{"k": 4}', idempotency_key => 'order-42') <> :'first' AS other_task_other_run;
SELECT count(*) AS runs_with_key FROM taskorch.runs_wide WHERE idempotency_key = 'order-42';
-- the key expires after its ttl (default 30 days)
SELECT idempotency_key_expires_at - created_at AS key_ttl FROM taskorch.run WHERE id = :'first';
SELECT taskorch.trigger('opt-echo', idempotency_key => 'short', idempotency_key_ttl => '100ms') AS short1 \gset
SELECT pg_sleep(0.2);
SELECT taskorch.trigger('opt-echo', idempotency_key => 'short', idempotency_key_ttl => '100ms') <> :'short1' AS new_run_after_ttl;
-- in a rolled-back transaction the key made nothing
BEGIN;
SELECT taskorch.trigger('opt-echo', idempotency_key => 'rolled') IS NOT NULL AS made;
ROLLBACK;
SELECT count(*) AS rolled_back_key FROM taskorch.run WHERE idempotency_key = 'rolled';
-- idempotency_key(): global keys are the same everywhere, run keys differ per run
SELECT taskorch.idempotency_key('x', 'global') = taskorch.idempotency_key('x', 'global') AS global_stable,
	   taskorch.idempotency_key('x') = taskorch.idempotency_key('x', 'global') AS run_scope_outside_a_task,
	   length(taskorch.idempotency_key('x')) AS hex_length;
CREATE FUNCTION opt_parent(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	a text := taskorch.trigger('opt-echo', payload, idempotency_key => taskorch.idempotency_key('child'));
	b text := taskorch.trigger('opt-echo', payload, idempotency_key => taskorch.idempotency_key('child'));
BEGIN
	RETURN jsonb_build_object('same_child', a = b,
		'differs_from_global', taskorch.idempotency_key('child') <> taskorch.idempotency_key('child', 'global'));
END $$;
SELECT taskorch.register_task('opt-parent', 'opt_parent(jsonb)');
SELECT taskorch.trigger('opt-parent') AS parent1 \gset
SELECT taskorch.trigger('opt-parent') AS parent2 \gset
SELECT wait_for_runs();
SELECT output FROM taskorch.runs WHERE id IN (:'parent1', :'parent2');
-- each parent run made its own single child
SELECT count(DISTINCT idempotency_key) AS child_keys, count(*) AS children
  FROM taskorch.runs_wide WHERE task_id = 'opt-echo' AND idempotency_key IS NOT NULL
   AND idempotency_key NOT IN ('order-42', 'short');

-- priority: seconds ahead in the queue
SELECT taskorch.trigger('opt-echo', priority => 30) AS r \gset
SELECT created_at - run_at AS ahead_by FROM taskorch.run WHERE id = :'r';
-- tags and metadata
SELECT taskorch.trigger('opt-echo', tags => ARRAY['user:1', 'org:7', 'user:1'],
							 metadata => '{"progress": 0}') AS r \gset
SELECT tags, metadata FROM taskorch.runs_wide WHERE id = :'r';
SELECT taskorch.trigger('opt-echo', '{}', '{"tags": "single"}') AS r \gset
SELECT tags FROM taskorch.runs WHERE id = :'r';
-- per-run max_attempts and max_duration override the task's
SELECT taskorch.trigger('opt-fail', max_attempts => 1) AS once \gset
SELECT taskorch.trigger('opt-sleep', '{}', '{"maxDuration": "300ms"}') AS bounded \gset
SELECT wait_for_runs();
SELECT task_id, status, attempts, max_attempts FROM taskorch.runs_wide WHERE id IN (:'once', :'bounded')
 ORDER BY task_id;

-- refusals, each naming the option; nothing is written
SELECT count(*) AS runs_before FROM taskorch.run \gset
SELECT taskorch.trigger('opt-echo', delay => 'soon');
SELECT taskorch.trigger('opt-echo', delay => 'next-tuesday');
SELECT taskorch.trigger('opt-echo', delay => true);
SELECT taskorch.trigger('opt-echo', ttl => '-5s');
SELECT taskorch.trigger('opt-echo', ttl => '2024-01-01T00:00:00Z');
SELECT taskorch.trigger('opt-echo', max_duration => interval '-1 second');
SELECT taskorch.trigger('opt-echo', max_duration => 0.0001);
SELECT taskorch.trigger('opt-echo', ttl => '5215w');
SELECT taskorch.trigger('opt-echo', '{}', '{"ttl": "NaN"}');
SELECT taskorch.trigger('opt-echo', '{}', '{"ttl": 1e20}');
SELECT taskorch.trigger('opt-echo', '{}', '{"maxDuration": -1}');
SELECT taskorch.trigger('opt-echo', delay => '5215w');
SELECT taskorch.trigger('opt-echo', delay => '-5s');
SELECT taskorch.trigger('opt-echo', delay => 'NaN'::float8);
SELECT taskorch.trigger('opt-echo', delay => 'infinity');
SELECT taskorch.trigger('opt-echo', delay => '-infinity'::timestamptz);
SELECT taskorch.trigger('opt-echo', '{}', '{"delay": "5215w"}');
SELECT taskorch.trigger('opt-echo', max_attempts => 0);
SELECT taskorch.trigger('opt-echo', priority => -1);
SELECT taskorch.trigger('opt-echo', idempotency_key => '');
SELECT taskorch.trigger('opt-echo', idempotency_key_ttl => '1h');
SELECT taskorch.trigger('opt-echo', tags => ARRAY['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k']);
SELECT taskorch.trigger('opt-echo', tags => ARRAY[repeat('t', 129)]);
-- tags count characters, keys count bytes
SELECT taskorch.trigger('opt-echo', tags => ARRAY[repeat('é', 129)]);
SELECT taskorch.trigger('opt-echo', '{}', '{"tags": ["a", ""]}');
SELECT taskorch.trigger('opt-echo', tags => ARRAY['a', NULL]);
SELECT taskorch.trigger('opt-echo', idempotency_key => repeat('é', 1025));
SELECT taskorch.trigger('opt-echo', concurrency_key => repeat('c', 2049));
SELECT taskorch.trigger('opt-echo', debounce => jsonb_build_object('key', '', 'delay', '1s'));
SELECT taskorch.trigger('opt-echo', debounce => '{"key": 1, "delay": "1s"}');
SELECT taskorch.trigger('opt-echo', metadata => '[1]');
SELECT taskorch.trigger('opt-echo', queue => 'no spaces');
SELECT taskorch.trigger('opt-echo', machine => 'large-1x');
SELECT taskorch.trigger('opt-echo', region => 'eu-central-1');
SELECT taskorch.trigger('opt-echo', '{}', '{"machine": "small-1x"}');
SELECT taskorch.trigger('opt-echo', '{}', '{"delay": "1h"}', delay => '1h');
SELECT taskorch.trigger('opt-echo', '{}', '{"bogus": 1}');
SELECT taskorch.trigger('opt-echo', '{}', '[]');
SELECT taskorch.trigger('opt-echo', '{}', '{"maxAttempts": "three"}');
SELECT taskorch.trigger('opt-echo', '{}', '{"tags": [1]}');
SELECT count(*) - :runs_before AS new_runs FROM taskorch.run;
-- the longest tag (in characters) and key (in bytes) accepted
SELECT taskorch.trigger('opt-echo', tags => ARRAY[repeat('é', 128)],
						idempotency_key => repeat('k', 2048)) AS longest \gset
SELECT length(tags[1]) AS tag_characters, octet_length(tags[1]) AS tag_bytes,
	   octet_length(idempotency_key) AS key_bytes
  FROM taskorch.runs_wide WHERE id = :'longest';

-- a raw key given inside a task is the run's (as in Trigger.dev since
-- 4.3.1): the same as idempotency_key(key); idempotency_key(key, 'global')
-- is shared by every run
CREATE FUNCTION opt_raw_parent(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	raw text := taskorch.trigger('opt-echo', payload, idempotency_key => 'raw-child');
	made text := taskorch.trigger('opt-echo', payload, idempotency_key => taskorch.idempotency_key('raw-child'));
	global text := taskorch.trigger('opt-echo', payload,
									idempotency_key => taskorch.idempotency_key('raw-child', 'global'));
BEGIN
	RETURN jsonb_build_object('raw_is_run_scoped', raw = made, 'raw', raw, 'global', global);
END $$;
SELECT taskorch.register_task('opt-raw-parent', 'opt_raw_parent(jsonb)');
SELECT taskorch.trigger('opt-raw-parent') AS rp1 \gset
SELECT taskorch.trigger('opt-raw-parent') AS rp2 \gset
SELECT wait_for_runs();
SELECT bool_and((output->'raw_is_run_scoped')::bool) AS raw_is_run_scoped,
	   count(DISTINCT output->>'raw') AS raw_children, count(DISTINCT output->>'global') AS global_children
  FROM taskorch.runs WHERE id IN (:'rp1', :'rp2');
-- a run that failed frees its key (Trigger.dev's rule): the next trigger
-- makes a new run; a completed or canceled run keeps it
SELECT taskorch.trigger('opt-fail', max_attempts => 1, idempotency_key => 'fails') AS failing \gset
SELECT wait_for_runs();
SELECT status FROM taskorch.runs WHERE id = :'failing';
SELECT taskorch.trigger('opt-fail', max_attempts => 1, idempotency_key => 'fails') <> :'failing'
	AS new_run_after_failure;
SELECT taskorch.trigger('opt-echo', delay => '1h', idempotency_key => 'canceled') AS canceled \gset
SELECT taskorch.cancel(:'canceled');
SELECT taskorch.trigger('opt-echo', idempotency_key => 'canceled') = :'canceled' AS canceled_keeps_key;
-- reset takes the key as trigger() would take it here, or in a scope
SELECT taskorch.idempotency_key_reset('opt-echo', 'canceled') AS reset_runs;
SELECT taskorch.idempotency_key_reset('opt-echo', 'raw-child', 'global') AS reset_global_runs;
SELECT taskorch.idempotency_key_reset('opt-echo', 'raw-child', 'bogus');
SELECT wait_for_runs();
