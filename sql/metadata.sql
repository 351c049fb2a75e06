-- Run metadata from inside a task: set, del, append, remove, increment,
-- replace; kept across a failed attempt; readable while the run executes.
CREATE FUNCTION meta_task(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	attempt int := (taskorch.current_run()->>'attempt')::int;
BEGIN
	PERFORM taskorch.metadata_set('status', '"working"');
	PERFORM taskorch.metadata_append('steps', to_jsonb('step' || attempt));
	PERFORM taskorch.metadata_increment('tries');
	PERFORM taskorch.metadata_increment('score', 2.5);
	PERFORM taskorch.metadata_append('todo', '"b"');
	PERFORM taskorch.metadata_remove('todo', '"a"');
	PERFORM taskorch.metadata_del('scratch');
	IF attempt < 2 THEN
		RAISE EXCEPTION 'first attempt fails';
	END IF;
	RETURN taskorch.metadata();
END $$;
SELECT taskorch.register_task('meta-task', 'meta_task(jsonb)', retry => '{"minTimeoutInMs": 10}');
SELECT taskorch.trigger('meta-task', metadata => '{"todo": ["a", "c"], "scratch": true}') AS run \gset
SELECT wait_for_runs();
-- the failed first attempt's changes stayed: two steps, two tries
SELECT status, output, metadata FROM taskorch.runs_wide WHERE id = :'run';
SELECT taskorch.retrieve(:'run')->'metadata' AS retrieved;

-- while a run executes, other sessions see the metadata its task set
CREATE FUNCTION meta_progress(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	PERFORM taskorch.metadata_set('progress', '0.5');
	PERFORM pg_sleep(2);
	PERFORM taskorch.metadata_set('progress', '1');
	RETURN '{}';
END $$;
SELECT taskorch.register_task('meta-progress', 'meta_progress(jsonb)');
SELECT taskorch.trigger('meta-progress') AS live \gset
DO $$
BEGIN
	FOR i IN 1..500 LOOP
		EXIT WHEN EXISTS (SELECT FROM taskorch.runs_wide
						   WHERE task_id = 'meta-progress' AND metadata ? 'progress');
		PERFORM pg_sleep(0.01);
	END LOOP;
END $$;
SELECT status, metadata FROM taskorch.runs_wide WHERE id = :'live';
-- nothing is committed yet: the table still has the trigger's metadata
SELECT metadata FROM taskorch.run WHERE id = :'live';
SELECT wait_for_runs();
SELECT status, metadata FROM taskorch.runs_wide WHERE id = :'live';

-- metadata too large to show live (over 4,096 bytes as text) is not shown
-- cut, nor is the smaller value set before it: readers see the stored
-- metadata until the run commits.  The task waits on an advisory lock this
-- session holds, after both changes.
CREATE FUNCTION meta_big(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	PERFORM taskorch.metadata_set('progress', '"small"');
	PERFORM taskorch.metadata_set('blob', to_jsonb(repeat('é', 3000)));
	PERFORM pg_advisory_xact_lock(4242);
	RETURN '{}';
END $$;
SELECT taskorch.register_task('meta-big', 'meta_big(jsonb)');
SELECT pg_advisory_lock(4242);
SELECT taskorch.trigger('meta-big', metadata => '{"stage": "stored"}') AS big \gset
DO $$
BEGIN
	FOR i IN 1..1000 LOOP
		EXIT WHEN EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory'
						   AND objid = 4242 AND NOT granted);
		PERFORM pg_sleep(0.01);
	END LOOP;
END $$;
SELECT status, metadata FROM taskorch.runs_wide WHERE id = :'big';
SELECT pg_advisory_unlock(4242);
SELECT wait_for_runs();
SELECT status, metadata->>'progress' AS progress, length(metadata->>'blob') AS blob
  FROM taskorch.runs_wide WHERE id = :'big';

-- refusals
CREATE FUNCTION meta_bad(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	PERFORM taskorch.metadata_set('n', '"text"');
	PERFORM taskorch.metadata_increment('n');
	RETURN '{}';
END $$;
CREATE FUNCTION meta_array(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT taskorch.metadata_replace('[1]') $$;
SELECT taskorch.register_task('meta-bad', 'meta_bad(jsonb)', max_attempts => 1);
SELECT taskorch.register_task('meta-array', 'meta_array(jsonb)', max_attempts => 1);
SELECT taskorch.trigger('meta-bad') AS bad \gset
SELECT taskorch.trigger('meta-array') AS arr \gset
SELECT wait_for_runs();
SELECT task_id, status, error->>'message' AS error, metadata FROM taskorch.runs_wide
 WHERE id IN (:'bad', :'arr') ORDER BY task_id;
SELECT taskorch.metadata();
SELECT taskorch.metadata_set('k', '1');
