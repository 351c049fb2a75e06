------------------------------------------------------------------------------
-- Queues: concurrency limits (per concurrency key), pause and resume
------------------------------------------------------------------------------
-- Every queue: those created (create_queue(): limits, pause, owner, users;
-- created true) and each task's own queue that none was created for
-- (Trigger.dev's default: named after the task, no limit; its owner is the
-- task's; created false).
-- queued counts the runs the reader may see (security_invoker: row-level
-- security), and the tasks' queues are those of tasks the reader may see.
CREATE OR REPLACE VIEW taskorch.queues WITH (security_invoker = true) AS
SELECT q.name, q.concurrency_limit, q.paused, q.owner, q.users,
	   (SELECT count(*) FROM taskorch.run r WHERE r.queue = q.name AND taskorch.queued(r.status)) AS queued,
	   q.created_at, q.updated_at, q.created
  FROM (SELECT name, concurrency_limit, paused, owner, users, created_at, updated_at, true AS created
		  FROM taskorch.queue
		UNION ALL
		(SELECT DISTINCT ON (t.queue) t.queue, NULL::int, false, t.owner, '{}'::taskorch.role_ref[],
				t.created_at, t.updated_at, false
		   FROM taskorch.task t
		  WHERE NOT EXISTS (SELECT FROM taskorch.queue c WHERE c.name = t.queue)
		  ORDER BY t.queue, t.created_at)) q;
GRANT SELECT ON taskorch.queues TO PUBLIC;

CREATE OR REPLACE FUNCTION taskorch.create_queue(name text, concurrency_limit int DEFAULT NULL)
	RETURNS text LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_create_queue';
CREATE OR REPLACE FUNCTION taskorch.alter_queue(name text, concurrency_limit int)
	RETURNS void LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_alter_queue';
CREATE OR REPLACE FUNCTION taskorch.pause_queue(name text, paused bool DEFAULT true)
	RETURNS void LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_pause_queue';
CREATE OR REPLACE FUNCTION taskorch.resume_queue(name text) RETURNS void
	LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
	AS $$ SELECT taskorch.pause_queue(name, false) $$;
CREATE OR REPLACE FUNCTION taskorch.drop_queue(name text)
	RETURNS void LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_drop_queue';
-- The role (and its members) may register tasks in the queue and trigger into it.
CREATE OR REPLACE FUNCTION taskorch.grant_queue(queue text, role regrole)
	RETURNS void LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_grant_queue';
CREATE OR REPLACE FUNCTION taskorch.revoke_queue(queue text, role regrole)
	RETURNS void LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_revoke_queue';
