-- Security: tasks run as their owner; triggering another role's task needs
-- a grant; roles see only their own runs; task code cannot climb back.
CREATE ROLE regress_alice;
CREATE ROLE regress_bob;
CREATE ROLE regress_carol;
CREATE ROLE regress_admin IN ROLE taskorch_admin;
CREATE SCHEMA sec AUTHORIZATION regress_alice;
GRANT USAGE ON SCHEMA sec TO PUBLIC;
CREATE TABLE sec_secret (s text);
INSERT INTO sec_secret VALUES ('top secret');
\set VERBOSITY default

SET ROLE regress_alice;
CREATE TABLE sec.alice_log (who text, sess text);
CREATE FUNCTION sec.whoami(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	INSERT INTO sec.alice_log VALUES (current_user, session_user)
	RETURNING jsonb_build_object('current_user', current_user) $$;
CREATE FUNCTION sec.read_secret(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_build_object('s', s) FROM public.sec_secret $$;
CREATE FUNCTION sec.set_role(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN EXECUTE 'SET ROLE postgres'; RETURN '{}'; END $$;
CREATE FUNCTION sec.reset_role(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN RESET ROLE; RETURN jsonb_build_object('current_user', current_user); END $$;
CREATE FUNCTION sec.set_session(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN EXECUTE 'SET SESSION AUTHORIZATION postgres'; RETURN '{}'; END $$;
CREATE FUNCTION sec.temp_table(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN CREATE TEMP TABLE sneaky (x int); RETURN '{}'; END $$;
CREATE FUNCTION sec.set_path(payload jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN PERFORM set_config('search_path', 'sec', false); RETURN '{}'; END $$;
CREATE FUNCTION sec.show_path(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_build_object('search_path', current_setting('search_path')) $$;
SELECT taskorch.register_task('sec-whoami', 'sec.whoami(jsonb)');
SELECT taskorch.register_task('sec-secret', 'sec.read_secret(jsonb)', max_attempts => 1);
SELECT taskorch.register_task('sec-set-role', 'sec.set_role(jsonb)', max_attempts => 1);
SELECT taskorch.register_task('sec-reset-role', 'sec.reset_role(jsonb)', max_attempts => 1);
SELECT taskorch.register_task('sec-set-session', 'sec.set_session(jsonb)', max_attempts => 1);
SELECT taskorch.register_task('sec-temp', 'sec.temp_table(jsonb)', max_attempts => 1);
SELECT taskorch.register_task('sec-set-path', 'sec.set_path(jsonb)', max_attempts => 1);
SELECT taskorch.register_task('sec-show-path', 'sec.show_path(jsonb)', max_attempts => 1);
SELECT taskorch.trigger('sec-whoami') AS alice_run \gset
SELECT taskorch.trigger('sec-secret') AS secret_run \gset
SELECT taskorch.trigger('sec-set-role') AS set_role_run \gset
SELECT taskorch.trigger('sec-reset-role') AS reset_role_run \gset
SELECT taskorch.trigger('sec-set-session') AS set_session_run \gset
SELECT taskorch.trigger('sec-temp') AS temp_run \gset
-- one task's SET does not leak into the next task in the same worker session
SELECT count(taskorch.trigger('sec-set-path')) FROM generate_series(1, 5);
SELECT count(taskorch.trigger('sec-show-path')) FROM generate_series(1, 5);
RESET ROLE;
SELECT wait_for_runs();

-- the task ran as alice, not as the worker's superuser
SELECT status, output FROM taskorch.runs WHERE id = :'alice_run';
SELECT DISTINCT who FROM sec.alice_log;
-- with alice's privileges: no access to what alice cannot read
SELECT status, error->>'message' AS error FROM taskorch.runs_wide WHERE id = :'secret_run';
-- task code cannot switch back to the superuser or leave traces
SELECT id = :'set_role_run' AS set_role, id = :'reset_role_run' AS reset_role,
	   id = :'set_session_run' AS set_session, status, error->>'message' AS error
  FROM taskorch.runs_wide WHERE id IN (:'set_role_run', :'reset_role_run', :'set_session_run', :'temp_run')
 ORDER BY created_at;
SELECT DISTINCT status, output FROM taskorch.runs WHERE task_id = 'sec-show-path';

-- bob may not trigger alice's task ...
SET ROLE regress_bob;
SELECT taskorch.trigger('sec-whoami');
-- ... nor change it, nor write the tables directly
SELECT taskorch.register_task('sec-whoami', 'sec.whoami(jsonb)');
SELECT taskorch.unregister_task('sec-whoami');
SELECT taskorch.grant_trigger('sec-whoami', 'regress_bob');
INSERT INTO taskorch.run (task_id, payload, max_attempts, queue, owner, triggered_by, run_at)
	VALUES ('sec-whoami', '{}', 1, 'q', 'regress_alice', 'regress_bob', now());
UPDATE taskorch.task SET owner = 'regress_bob';
DELETE FROM taskorch.run;
SELECT taskorch.run_pending();
-- and bob sees neither alice's tasks nor her runs
SELECT count(*) AS bob_sees_tasks FROM taskorch.tasks WHERE id LIKE 'sec-%';
SELECT count(*) AS bob_sees_runs FROM taskorch.runs WHERE task_id LIKE 'sec-%';
SELECT try(format('SELECT taskorch.retrieve(%L)', :'alice_run')) AS bob_retrieves_alices;
RESET ROLE;

-- alice grants bob the right to trigger sec-whoami: it still runs as alice
SET ROLE regress_alice;
SELECT taskorch.grant_trigger('sec-whoami', 'regress_bob');
SELECT triggerers FROM taskorch.tasks WHERE id = 'sec-whoami';
SET ROLE regress_bob;
-- bob now sees the task he may trigger (the table's policy, task_visible())
SELECT id FROM taskorch.tasks WHERE id LIKE 'sec-%' ORDER BY id;
SELECT taskorch.trigger('sec-whoami') AS bob_run \gset
RESET ROLE;
SELECT wait_for_runs();
SET ROLE regress_bob;
SELECT status, output, triggered_by, owner FROM taskorch.runs_wide WHERE id = :'bob_run';
-- bob sees the run he triggered, not alice's own runs
SELECT count(*) AS bob_sees_runs FROM taskorch.runs WHERE task_id LIKE 'sec-%';
SELECT taskorch.retrieve(:'bob_run')->>'status' AS bob_retrieves;
-- carol has no grant
SET ROLE regress_carol;
SELECT taskorch.trigger('sec-whoami');
SELECT count(*) AS carol_sees_tasks FROM taskorch.tasks WHERE id LIKE 'sec-%';
SELECT count(*) AS carol_sees_runs FROM taskorch.runs;
-- alice sees all runs of her tasks, including bob's
SET ROLE regress_alice;
SELECT count(*) > 10 AS alice_sees_all FROM taskorch.runs WHERE task_id LIKE 'sec-%';
SELECT count(*) AS alice_sees_bobs FROM taskorch.runs WHERE id = :'bob_run';
-- taskorch_admin members see everything and may trigger any task
SET ROLE regress_admin;
SELECT count(*) > 10 AS admin_sees_all FROM taskorch.runs WHERE task_id LIKE 'sec-%';
SELECT taskorch.trigger('sec-whoami') IS NOT NULL AS admin_triggers;
RESET ROLE;

-- revoking takes the right away again
SET ROLE regress_alice;
SELECT taskorch.revoke_trigger('sec-whoami', 'regress_bob');
SET ROLE regress_bob;
SELECT taskorch.trigger('sec-whoami');
RESET ROLE;

-- C-language functions: only superusers may register them
CREATE FUNCTION public.sec_c_task(jsonb) RETURNS jsonb LANGUAGE c
	AS 'taskorch', 'taskorch_current_run';
GRANT EXECUTE ON FUNCTION public.sec_c_task(jsonb) TO regress_alice;
SET ROLE regress_alice;
SELECT taskorch.register_task('sec-c', 'public.sec_c_task(jsonb)');
RESET ROLE;
SELECT taskorch.register_task('sec-c', 'public.sec_c_task(jsonb)');
-- a C-language task runs like any other
SELECT taskorch.trigger('sec-c') AS c_run \gset
SELECT wait_for_runs();
SELECT status, output->>'taskIdentifier' AS c_task_saw FROM taskorch.runs WHERE id = :'c_run';
SELECT taskorch.unregister_task('sec-c');

-- a function the registering role may not execute cannot become its task
REVOKE EXECUTE ON FUNCTION public.sec_c_task(jsonb) FROM PUBLIC, regress_alice;
CREATE FUNCTION public.sec_private(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
REVOKE EXECUTE ON FUNCTION public.sec_private(jsonb) FROM PUBLIC;
SET ROLE regress_alice;
SELECT taskorch.register_task('sec-private', 'public.sec_private(jsonb)');
RESET ROLE;

-- losing EXECUTE after registering makes runs fail, not run as someone else
GRANT EXECUTE ON FUNCTION public.sec_private(jsonb) TO regress_alice;
SET ROLE regress_alice;
SELECT taskorch.register_task('sec-private', 'public.sec_private(jsonb)', max_attempts => 1);
RESET ROLE;
REVOKE EXECUTE ON FUNCTION public.sec_private(jsonb) FROM regress_alice;
SET ROLE regress_alice;
SELECT taskorch.trigger('sec-private') AS private_run \gset
RESET ROLE;
SELECT wait_for_runs();
SELECT status, error->>'message' AS error, error->>'sqlstate' AS sqlstate
  FROM taskorch.runs_wide WHERE id = :'private_run';

-- functions that change privileges pin their search_path
SELECT p.oid::regprocedure FROM pg_proc p
 WHERE p.pronamespace = 'taskorch'::regnamespace AND p.prosecdef
   AND NOT coalesce(p.proconfig::text LIKE '%search_path%', false);
