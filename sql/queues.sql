-- Queues: create, alter, pause/resume, drop, and their refusals.
CREATE FUNCTION q_echo(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT payload $$;
SELECT taskorch.register_task('q-echo', 'q_echo(jsonb)', queue => 'q-default');

SELECT taskorch.create_queue('paid-users', concurrency_limit => 10);
SELECT taskorch.create_queue('free-users', 1);
SELECT taskorch.create_queue('unlimited');
SELECT name, concurrency_limit, paused, owner FROM taskorch.queues WHERE created ORDER BY name;
-- a task's queue that was not created is listed too, without limits
SELECT name, concurrency_limit, paused, owner, created FROM taskorch.queues WHERE name = 'q-default';
SELECT taskorch.alter_queue('free-users', 2);
SELECT taskorch.alter_queue('unlimited', NULL);
SELECT name, concurrency_limit FROM taskorch.queues WHERE created ORDER BY name;

-- a run goes to its task's queue, or to the one trigger() names
SELECT taskorch.trigger('q-echo') AS r1 \gset
SELECT taskorch.trigger('q-echo', queue => 'paid-users', concurrency_key => 'user-1') AS r2 \gset
SELECT wait_for_runs();
SELECT queue, concurrency_key, status FROM taskorch.runs_wide WHERE id IN (:'r1', :'r2') ORDER BY queue;

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
SELECT name, concurrency_limit, owner FROM taskorch.queues WHERE created ORDER BY name;

-- Queue names belong to someone: a defined queue to its owner, an undefined
-- one to the owners of the tasks whose queue it is.  Two login roles, bob
-- and mallory; carol may trigger bob's task; an admin.
CREATE FUNCTION sq_echo(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT payload $$;
-- a parent that triggers a child into the queue its payload names, and waits
CREATE FUNCTION sq_parent(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	RETURN taskorch.trigger_and_wait(payload->>'task', '{}',
									 jsonb_build_object('queue', payload->>'queue'));
END $$;
CREATE ROLE regress_qbob LOGIN;
CREATE ROLE regress_qmallory LOGIN;
CREATE ROLE regress_qcarol LOGIN;
CREATE ROLE regress_qadmin LOGIN IN ROLE taskorch_admin;
CREATE ROLE regress_qdeputy LOGIN IN ROLE regress_qbob;	-- has bob's privileges
CREATE ROLE regress_qteam;
GRANT regress_qteam TO regress_qmallory;
-- everything a refusal must leave as it was: queues, tasks, runs (read as superuser)
CREATE FUNCTION sq_state() RETURNS text LANGUAGE sql SECURITY DEFINER AS $$
	SELECT md5(concat_ws('/',
		(SELECT string_agg(concat_ws('|', name, concurrency_limit, paused, owner, users, updated_at), ','
						   ORDER BY name) FROM taskorch.queue),
		(SELECT string_agg(concat_ws('|', id, owner, queue, updated_at), ',' ORDER BY id)
		   FROM taskorch.task),
		(SELECT count(*) FROM taskorch.run)))
$$;
CREATE FUNCTION sq_queues() RETURNS TABLE (name text, concurrency_limit int, paused bool,
										   owner taskorch.role_ref, users taskorch.role_ref[])
	LANGUAGE sql AS $$
	SELECT name, concurrency_limit, paused, owner, users FROM taskorch.queues
	 WHERE name ILIKE 'sq-%' ORDER BY name $$;

-- bob's task: its queue (its id) has no definition and belongs to bob
SET ROLE regress_qbob;
SELECT taskorch.register_task('sq-bob-save', 'sq_echo(jsonb)');
SELECT taskorch.register_task('sq-bob-plain', 'sq_echo(jsonb)');
RESET ROLE;
SELECT sq_state() AS before \gset
SET ROLE regress_qmallory;
-- mallory cannot define, and so pause, the queue of bob's task
SELECT taskorch.create_queue('sq-bob-save', 1);
SELECT taskorch.pause_queue('sq-bob-save');
SELECT taskorch.grant_queue('sq-bob-save', 'regress_qmallory');
-- nor register a task of hers in it
SELECT taskorch.register_task('sq-mal-squat', 'sq_echo(jsonb)', queue => 'sq-bob-save');
SELECT sq_state() = :'before' AS unchanged;
RESET ROLE;

-- bob defines his queue; mallory can neither create it again nor change it
SET ROLE regress_qbob;
SELECT taskorch.create_queue('sq-bob-save', 2);
RESET ROLE;
SELECT sq_state() AS before \gset
SET ROLE regress_qmallory;
SELECT taskorch.create_queue('sq-bob-save', 1);
SELECT taskorch.alter_queue('sq-bob-save', 1);
SELECT taskorch.pause_queue('sq-bob-save');
SELECT taskorch.resume_queue('sq-bob-save');
SELECT taskorch.drop_queue('sq-bob-save');
SELECT taskorch.grant_queue('sq-bob-save', 'regress_qmallory');
SELECT taskorch.revoke_queue('sq-bob-save', 'regress_qbob');
SELECT taskorch.register_task('sq-mal-squat', 'sq_echo(jsonb)', queue => 'sq-bob-save');
SELECT sq_state() = :'before' AS unchanged;
RESET ROLE;

-- a queue bob defines before his task exists is his too
SET ROLE regress_qbob;
SELECT taskorch.create_queue('sq-bob-next', 1);
SET ROLE regress_qmallory;
SELECT taskorch.pause_queue('sq-bob-next');
SELECT taskorch.register_task('sq-bob-next', 'sq_echo(jsonb)');
SET ROLE regress_qbob;
SELECT taskorch.register_task('sq-bob-next', 'sq_echo(jsonb)');
RESET ROLE;

-- squatting before the task exists: mallory defines and pauses the name of
-- bob's next task; bob is refused (with the owner's name), not silently paused
SET ROLE regress_qmallory;
SELECT taskorch.create_queue('sq-bob-late');
SELECT taskorch.pause_queue('sq-bob-late');
RESET ROLE;
SELECT sq_state() AS before \gset
SET ROLE regress_qbob;
SELECT taskorch.register_task('sq-bob-late', 'sq_echo(jsonb)');
SELECT sq_state() = :'before' AS unchanged;
-- he may register it in a queue of his own
SELECT taskorch.register_task('sq-bob-late', 'sq_echo(jsonb)', queue => 'sq-bob-save');
-- and mallory may not move her squat onto bob's task by re-registering hers
SET ROLE regress_qmallory;
SELECT taskorch.register_task('sq-bob-save', 'sq_echo(jsonb)');
RESET ROLE;

-- names are exact: a look-alike in another case is another queue
SET ROLE regress_qmallory;
SELECT taskorch.create_queue('SQ-BOB-SAVE');
SELECT taskorch.pause_queue('SQ-BOB-SAVE');
SELECT taskorch.create_queue(' sq-bob-save');
SELECT taskorch.create_queue('sq-bob-save ');
RESET ROLE;

-- triggering into another role's queue is refused, however it is asked for
SET ROLE regress_qmallory;
SELECT taskorch.register_task('sq-mal', 'sq_echo(jsonb)');
SELECT taskorch.register_task('sq-mal-parent', 'sq_parent(jsonb)', max_attempts => 1);
RESET ROLE;
SELECT sq_state() AS before \gset
SET ROLE regress_qmallory;
SELECT taskorch.trigger('sq-mal', queue => 'sq-bob-save');
SELECT taskorch.trigger('sq-mal', options => '{"queue": {"name": "sq-bob-save"}}');
SELECT taskorch.trigger('sq-mal', queue => 'sq-bob-plain');
SELECT taskorch.trigger('sq-mal', queue => 'sq-nobody');
SELECT taskorch.batch_trigger('sq-mal', '[{"payload": {}}, {"payload": {}, "options": {"queue": "sq-bob-save"}}]');
SELECT taskorch.batch_trigger('[{"task": "sq-mal", "payload": {}}]', options => '{"queue": "sq-bob-save"}');
SELECT sq_state() = :'before' AS unchanged;
-- a child of a wait is triggered as its parent's owner: refused too, and
-- the parent's attempt fails
SELECT taskorch.trigger('sq-mal-parent', '{"task": "sq-mal", "queue": "sq-bob-save"}') AS refused_parent \gset
RESET ROLE;
SELECT wait_for_runs();
SELECT status, error->>'message' AS message FROM taskorch.runs_wide WHERE id = :'refused_parent';
SELECT count(*) AS runs_in_bobs_queue FROM taskorch.runs_wide WHERE queue = 'sq-bob-save';

-- granted, mallory may use bob's queue (trigger into it, register in it),
-- and still not change it
SET ROLE regress_qbob;
SELECT taskorch.grant_queue('sq-bob-save', 'regress_qmallory');
SELECT * FROM sq_queues();
SELECT taskorch.grant_queue('sq-bob-save', NULL);
-- only a defined queue is granted
SELECT taskorch.grant_queue('sq-bob-plain', 'regress_qmallory');
SET ROLE regress_qmallory;
SELECT taskorch.trigger('sq-mal', queue => 'sq-bob-save') AS granted_run \gset
SELECT taskorch.trigger('sq-mal-parent', '{"task": "sq-mal", "queue": "sq-bob-save"}') AS granted_parent \gset
SELECT taskorch.register_task('sq-mal-in-bob', 'sq_echo(jsonb)', queue => 'sq-bob-save');
SELECT taskorch.pause_queue('sq-bob-save');
SELECT taskorch.grant_queue('sq-bob-save', 'regress_qcarol');
RESET ROLE;
SELECT wait_for_runs();
-- the parent resumes once its child's end is recorded (at the latest by the
-- next maintenance pass)
CALL taskorch.wait_for_run(:'granted_parent') \gset
SELECT r.task_id, r.queue, r.status, r.triggered_by FROM taskorch.runs_wide r
 WHERE r.id = :'granted_run' OR r.id = :'granted_parent' OR r.parent_run_id = :'granted_parent'
 ORDER BY r.task_id;
-- revoked, she may not; granted to a role she is a member of, she may
SET ROLE regress_qbob;
SELECT taskorch.revoke_queue('sq-bob-save', 'regress_qmallory');
SET ROLE regress_qmallory;
SELECT taskorch.trigger('sq-mal', queue => 'sq-bob-save');
SET ROLE regress_qbob;
SELECT taskorch.grant_queue('sq-bob-save', 'regress_qteam');
SET ROLE regress_qmallory;
SELECT taskorch.trigger('sq-mal', queue => 'sq-bob-save') IS NOT NULL AS triggered_through_team;
SET ROLE regress_qbob;
SELECT taskorch.revoke_queue('sq-bob-save', 'regress_qteam');
SELECT * FROM sq_queues();
-- revoking stops new registrations and triggers naming the queue; a task
-- already registered in it keeps it (until it is registered elsewhere)
SET ROLE regress_qmallory;
SELECT taskorch.trigger('sq-mal-in-bob') AS kept_run \gset
SELECT taskorch.register_task('sq-mal-in-bob', 'sq_echo(jsonb)', queue => 'sq-bob-save',
							  description => 'same queue');
SELECT taskorch.register_task('sq-mal-in-bob', 'sq_echo(jsonb)');
SELECT taskorch.register_task('sq-mal-in-bob', 'sq_echo(jsonb)', queue => 'sq-bob-save');
RESET ROLE;
SELECT wait_for_runs();
SELECT queue, status FROM taskorch.runs_wide WHERE id = :'kept_run';

-- whoever may trigger bob's task may put its runs into the task's own queue,
-- and no other queue of bob's
SET ROLE regress_qbob;
SELECT taskorch.grant_trigger('sq-bob-save', 'regress_qcarol');
SET ROLE regress_qcarol;
SELECT taskorch.trigger('sq-bob-save') AS carol_run \gset
SELECT taskorch.trigger('sq-bob-save', queue => 'sq-bob-save') AS carol_run2 \gset
SELECT taskorch.trigger('sq-bob-save', queue => 'sq-bob-next');
RESET ROLE;
SELECT wait_for_runs();
SELECT queue, status, triggered_by FROM taskorch.runs_wide WHERE id IN (:'carol_run', :'carol_run2');

-- a member of bob's role acts for bob
SET ROLE regress_qdeputy;
SELECT taskorch.alter_queue('sq-bob-save', 3);
SELECT taskorch.trigger('sq-bob-save', queue => 'sq-bob-next') IS NOT NULL AS deputy_triggered;
RESET ROLE;
SELECT wait_for_runs();

-- a renamed owner keeps its queues; messages name it as it is now
ALTER ROLE regress_qbob RENAME TO regress_qrobert;
SET ROLE regress_qmallory;
SELECT taskorch.alter_queue('sq-bob-save', 1);
SET ROLE regress_qrobert;
SELECT taskorch.alter_queue('sq-bob-save', 2);
RESET ROLE;
ALTER ROLE regress_qrobert RENAME TO regress_qbob;

-- taskorch_admin may do all of it
SET ROLE regress_qadmin;
SELECT taskorch.pause_queue('sq-bob-save');
SELECT taskorch.resume_queue('sq-bob-save');
SELECT taskorch.alter_queue('sq-bob-save', 5);
SELECT taskorch.grant_queue('sq-bob-save', 'regress_qcarol');
SELECT taskorch.create_queue('sq-bob-plain', 4);
SELECT taskorch.trigger('sq-mal', queue => 'sq-nobody') IS NOT NULL AS admin_triggered;
SELECT taskorch.drop_queue('sq-bob-late');
SELECT taskorch.drop_queue('SQ-BOB-SAVE');
RESET ROLE;
SELECT wait_for_runs();
SELECT * FROM sq_queues();
-- with mallory's squat gone, bob may register his task in its queue
SET ROLE regress_qbob;
SELECT taskorch.register_task('sq-bob-late', 'sq_echo(jsonb)');
RESET ROLE;
SELECT id, owner, queue FROM taskorch.tasks WHERE id LIKE 'sq-%' ORDER BY id;

-- Trigger.dev's queue object: trigger(queue => {"name", "concurrencyLimit"})
-- defines the queue with that limit, or sets the limit of one the caller may
-- change; null: no limit.  Another role's queue is refused, changing nothing.
SET ROLE regress_qbob;
SELECT taskorch.trigger('sq-bob-late', queue => '{"name": "sq-bob-inline", "concurrencyLimit": 2}') IS NOT NULL AS made;
SELECT taskorch.trigger('sq-bob-late', '{}', '{"queue": {"name": "sq-bob-inline", "concurrencyLimit": 3}}') IS NOT NULL AS made;
SELECT name, concurrency_limit, owner FROM sq_queues() WHERE name = 'sq-bob-inline';
SELECT taskorch.trigger('sq-bob-late', '{}', '{"queue": {"name": "sq-bob-inline", "concurrencyLimit": null}}') IS NOT NULL AS made;
SELECT name, concurrency_limit FROM sq_queues() WHERE name = 'sq-bob-inline';
SELECT taskorch.trigger('sq-bob-late', '{}', '{"queue": {"name": "sq-bob-inline", "concurrencyLimit": 0}}');
SELECT taskorch.trigger('sq-bob-late', '{}', '{"queue": {"name": "sq-bob-inline", "limit": 1}}');
RESET ROLE;
SET ROLE regress_qmallory;
SELECT taskorch.trigger('sq-mal', queue => '{"name": "sq-bob-inline", "concurrencyLimit": 50}');
RESET ROLE;
SELECT name, concurrency_limit, owner FROM sq_queues() WHERE name = 'sq-bob-inline';
SELECT wait_for_runs();

-- Fairness: queues are served round robin, a chunk of runs each in turn,
-- and runs in order inside a queue (priority first).  The runs are
-- triggered and executed in one transaction, out of the workers' sight.
-- (the order is a sequence's, in each run's output: a task that wrote rows
-- would fill the backend's cache of subtransaction ids before one chunk)
CREATE SEQUENCE q_order;
CREATE FUNCTION q_record(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_build_object('n', nextval('q_order'), 'q', payload->'q', 'i', payload->'i') $$;
SELECT taskorch.register_task('q-fair-a', 'q_record(jsonb)', queue => 'fair-a');
SELECT taskorch.register_task('q-fair-b', 'q_record(jsonb)', queue => 'fair-b');
BEGIN;
-- a backlog of 100 in one queue; then 3 runs of another, the last with priority
SELECT count(taskorch.trigger('q-fair-a', jsonb_build_object('q', 'a', 'i', g))) FROM generate_series(1, 100) g;
SELECT count(taskorch.trigger('q-fair-b', jsonb_build_object('q', 'b', 'i', g))) FROM generate_series(1, 2) g;
SELECT count(taskorch.trigger('q-fair-b', '{"q": "b", "i": 3}', priority => 10));
SELECT taskorch.run_pending(40);
-- the other queue's runs went second, behind one chunk (32) of the backlog
CREATE TEMP VIEW q_done AS SELECT output->>'q' AS q, output->>'i' AS i, (output->>'n')::int AS n
  FROM taskorch.run WHERE task_id IN ('q-fair-a', 'q-fair-b') AND status = 'COMPLETED';
SELECT q AS queue, count(*), min(n), max(n) FROM q_done GROUP BY 1 ORDER BY 1;
SELECT string_agg(i, ',' ORDER BY n) AS b_order FROM q_done WHERE q = 'b';
ROLLBACK;
-- two backlogs share the executions, in chunks of one size taken in turn
-- (the task writes nothing: a batch's runs that write are bounded by the
-- backend's cache of subtransaction ids)
SELECT taskorch.register_task('q-fair-a2', 'q_echo(jsonb)', queue => 'fair-a');
SELECT taskorch.register_task('q-fair-b2', 'q_echo(jsonb)', queue => 'fair-b');
BEGIN;
SELECT count(taskorch.trigger('q-fair-a2')) FROM generate_series(1, 100) g;
SELECT count(taskorch.trigger('q-fair-b2')) FROM generate_series(1, 100) g;
SELECT taskorch.run_pending(192);
SELECT queue, count(*) FROM taskorch.runs_wide WHERE task_id IN ('q-fair-a2', 'q-fair-b2') AND status = 'COMPLETED'
 GROUP BY 1 ORDER BY 1;
-- a paused queue is passed over, the other still served
SELECT taskorch.create_queue('fair-a');
SELECT taskorch.pause_queue('fair-a');
SELECT taskorch.run_pending(20);
SELECT queue, count(*) FROM taskorch.runs_wide WHERE task_id IN ('q-fair-a2', 'q-fair-b2') AND status = 'COMPLETED'
 GROUP BY 1 ORDER BY 1;
ROLLBACK;
