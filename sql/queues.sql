-- Queues: create, alter, pause/resume, drop, and their refusals.
CREATE FUNCTION q_echo(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT payload $$;
SELECT taskorch.register_task('q-echo', 'q_echo(jsonb)', queue => 'q-default');

SELECT taskorch.create_queue('paid-users', concurrency_limit => 10);
SELECT taskorch.create_queue('free-users', 1);
SELECT taskorch.create_queue('unlimited');
SELECT name, concurrency_limit, paused, owner FROM taskorch.queues ORDER BY name;
SELECT taskorch.alter_queue('free-users', 2);
SELECT taskorch.alter_queue('unlimited', NULL);
SELECT name, concurrency_limit FROM taskorch.queues ORDER BY name;

-- a run goes to its task's queue, or to the one trigger() names
SELECT taskorch.trigger('q-echo') AS r1 \gset
SELECT taskorch.trigger('q-echo', queue => 'paid-users', concurrency_key => 'user-1') AS r2 \gset
SELECT wait_for_runs();
SELECT queue, concurrency_key, status FROM taskorch.runs WHERE id IN (:'r1', :'r2') ORDER BY queue;

-- pause: runs wait; resume: they run
SELECT taskorch.pause_queue('free-users');
SELECT taskorch.trigger('q-echo', queue => 'free-users') AS paused_run \gset
SELECT pg_sleep(0.5);
SELECT status, (SELECT queued FROM taskorch.queues WHERE name = 'free-users') AS queued
  FROM taskorch.runs WHERE id = :'paused_run';
SELECT taskorch.resume_queue('free-users');
SELECT wait_for_runs();
SELECT status FROM taskorch.runs WHERE id = :'paused_run';

-- refusals
SELECT taskorch.create_queue('paid-users', 5);
SELECT taskorch.create_queue('bad name', 5);
SELECT taskorch.create_queue('zero', 0);
SELECT taskorch.create_queue(NULL);
SELECT taskorch.alter_queue('no-such-queue', 3);
SELECT taskorch.alter_queue('paid-users', -1);
SELECT taskorch.pause_queue('no-such-queue');
CREATE ROLE regress_q_other;
SET ROLE regress_q_other;
SELECT taskorch.alter_queue('paid-users', 100);
SELECT taskorch.drop_queue('paid-users');
SELECT taskorch.create_queue('others-queue', 1);
RESET ROLE;
-- an admin may change any queue
SELECT taskorch.alter_queue('others-queue', 4);
SELECT taskorch.drop_queue('unlimited');
SELECT name, concurrency_limit, owner FROM taskorch.queues ORDER BY name;
