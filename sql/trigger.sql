-- trigger(): transactional enqueue, run ids, and the trip to COMPLETED.
CREATE TABLE outbox (addr text);
CREATE FUNCTION send_welcome(payload jsonb) RETURNS jsonb LANGUAGE sql
	AS $$ INSERT INTO outbox (addr) VALUES (payload->>'to')
		  RETURNING jsonb_build_object('sent', true) $$;
SELECT taskorch.register_task('send-welcome', 'send_welcome(jsonb)'::regprocedure);

-- a run id is a stable text handle
SELECT taskorch.trigger('send-welcome', '{"to": "a@example.com"}') AS run \gset
SELECT :'run' ~ '^run_[0-9]+$' AS looks_like_a_run_id;
SELECT wait_for_runs();
SELECT status, output, attempts, error, started_at >= created_at AS started_after_created,
	   finished_at >= started_at AS finished_after_started
  FROM taskorch.runs_wide WHERE id = :'run';
SELECT addr FROM outbox;

-- retrieve() gives the whole run as jsonb
SELECT r->>'id' = :'run' AS same_id, r->>'status' AS status, r->'output' AS output,
	   r->>'taskIdentifier' AS task, r->'attempts' AS attempts,
	   r->'isCompleted' AS is_completed, r->'isSuccess' AS is_success,
	   r->'attemptErrors' AS attempt_errors
  FROM taskorch.retrieve(:'run') AS r;

-- the payload defaults to {}
SELECT taskorch.trigger('send-welcome') AS run2 \gset
SELECT payload FROM taskorch.runs WHERE id = :'run2';

-- a rolled-back trigger leaves nothing behind, and no effect happens
SELECT count(*) AS runs_before FROM taskorch.run \gset
BEGIN;
SELECT taskorch.trigger('send-welcome', '{"to": "rolled@back"}') IS NOT NULL AS triggered;
ROLLBACK;
SELECT wait_for_runs();
SELECT count(*) - :runs_before AS new_runs FROM taskorch.run;
SELECT count(*) AS rolled_back_sent FROM outbox WHERE addr = 'rolled@back';

-- a trigger in a rolled-back savepoint is gone too; the rest commits
BEGIN;
SELECT taskorch.trigger('send-welcome', '{"to": "kept@x"}') IS NOT NULL AS kept;
SAVEPOINT s;
SELECT taskorch.trigger('send-welcome', '{"to": "dropped@x"}') IS NOT NULL AS dropped;
ROLLBACK TO SAVEPOINT s;
COMMIT;

-- a read-only transaction (as on a standby) cannot trigger
BEGIN READ ONLY;
SELECT taskorch.trigger('send-welcome', '{"to": "read@only"}');
ROLLBACK;
SELECT wait_for_runs();
SELECT addr FROM outbox WHERE addr LIKE '%@x' ORDER BY addr;

-- until commit the run is invisible to workers; at commit one starts it
BEGIN;
SELECT taskorch.trigger('send-welcome', '{"to": "later@y"}') AS run3 \gset
SELECT pg_sleep(0.3);
SELECT status FROM taskorch.runs WHERE id = :'run3';
COMMIT;
SELECT wait_for_runs();
SELECT status FROM taskorch.runs WHERE id = :'run3';

-- streaming form: one run per row of a query, in one statement
SELECT count(taskorch.trigger('send-welcome', jsonb_build_object('to', 'bulk' || g || '@z')))
  FROM generate_series(1, 200) g;
SELECT wait_for_runs();
SELECT count(*) AS bulk_sent FROM outbox WHERE addr LIKE 'bulk%@z';
SELECT count(*) AS bulk_completed FROM taskorch.runs
 WHERE task_id = 'send-welcome' AND payload->>'to' LIKE 'bulk%@z' AND status = 'COMPLETED';
-- exactly once: every address was sent once
SELECT addr, count(*) FROM outbox GROUP BY addr HAVING count(*) > 1;

-- JSON arguments take what a client or an expression gives: jsonb, json,
-- or text (an ORM's typed string, a text expression)
SELECT taskorch.trigger('send-welcome', format('{"n": %s}', 41)) AS from_text \gset
SELECT taskorch.trigger('send-welcome', '{"n": 42}'::json, '{"tags": ["json"]}'::varchar) AS from_json \gset
SELECT id = :'from_text' AS from_text, payload, tags FROM taskorch.runs
 WHERE id IN (:'from_text', :'from_json') ORDER BY id;
SELECT taskorch.trigger('send-welcome', 'not json'::text);
