-- A new run's row enters the indexes of taskorch.run whose predicates it
-- meets: the trigger opens only those (run_insert.c).  amcheck reads every
-- row of the table and finds each in every index it belongs to, for the
-- runs of every kind the tests before made and for these: each option
-- that puts a new run into a partial index, an external task's, and runs
-- made after a role's own indexes on the table, made after this session's
-- first trigger (a partial one and one on an expression).
CREATE EXTENSION amcheck;
CREATE FUNCTION idx_echo(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT payload $$;
SELECT taskorch.register_task('idx-echo', 'idx_echo(jsonb)');
SELECT taskorch.register_external_task('idx-external');
SELECT taskorch.create_queue('idx-paused');
SELECT taskorch.pause_queue('idx-paused');

SELECT taskorch.trigger('idx-echo', '{"k": "plain"}', queue => 'idx-paused') IS NOT NULL AS plain;
SELECT taskorch.trigger('idx-echo', delay => '1h') IS NOT NULL AS delayed;
SELECT taskorch.trigger('idx-echo', ttl => '1h', queue => 'idx-paused') IS NOT NULL AS expiring;
SELECT taskorch.trigger('idx-echo', idempotency_key => 'idx-1', queue => 'idx-paused') IS NOT NULL AS keyed;
SELECT taskorch.trigger('idx-echo', debounce => '{"key": "idx", "delay": "1h"}') IS NOT NULL AS debounced;
SELECT taskorch.batch_trigger('idx-echo', '[{"payload": {"i": 1}}, {"payload": {"i": 2}}]') IS NOT NULL AS batch;
SELECT taskorch.trigger('idx-external') IS NOT NULL AS external;

CREATE INDEX idx_tagged ON taskorch.run (queue) WHERE tags <> '{}';
CREATE INDEX idx_payload_k ON taskorch.run ((payload->>'k'));
SELECT taskorch.trigger('idx-echo', '{"k": "tagged"}', tags => '{t1}', queue => 'idx-paused') IS NOT NULL AS tagged;
SELECT taskorch.trigger('idx-echo', '{"k": "untagged"}', queue => 'idx-paused') IS NOT NULL AS untagged;

-- each kind above is in the index made for it
SELECT count(*) FILTER (WHERE status = 'DELAYED' AND debounce_key IS NULL) AS delayed,
	   count(*) FILTER (WHERE expires_at IS NOT NULL) AS expiring,
	   count(*) FILTER (WHERE idempotency_key IS NOT NULL) AS keyed,
	   count(*) FILTER (WHERE debounce_key IS NOT NULL) AS debounced,
	   count(*) FILTER (WHERE batch_id IS NOT NULL) AS batched,
	   count(*) FILTER (WHERE tags <> '{}') AS tagged
  FROM taskorch.run WHERE task_id = 'idx-echo';
SELECT c.relname AS index, 'every row found' AS heapallindexed
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid,
	   LATERAL (SELECT bt_index_check(c.oid, heapallindexed => true)) AS checked
 WHERE i.indrelid = 'taskorch.run'::regclass ORDER BY 1;
DROP INDEX taskorch.idx_tagged, taskorch.idx_payload_k;
SELECT count(taskorch.cancel(id)) AS canceled FROM taskorch.run
 WHERE task_id = 'idx-external' OR (task_id = 'idx-echo' AND status = 'DELAYED');
SELECT taskorch.resume_queue('idx-paused');
SELECT wait_for_runs();
DROP EXTENSION amcheck;
