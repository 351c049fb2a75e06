-- A list of roles (a task's triggerers, a queue's users) with `role`
-- added (once) or removed: grant_trigger/revoke_trigger, grant_queue/revoke_queue.
CREATE OR REPLACE FUNCTION taskorch_internal.role_list(roles taskorch.role_ref[], role oid, add bool)
	RETURNS taskorch.role_ref[]
	LANGUAGE sql STABLE
	AS $$
	SELECT CASE WHEN NOT add THEN ARRAY(SELECT g FROM pg_catalog.unnest(roles) g WHERE g::oid <> role)
				WHEN role = ANY (roles::oid[]) THEN roles
				ELSE pg_catalog.array_append(roles, role::taskorch.role_ref) END $$;

------------------------------------------------------------------------------
-- Missing roles: the roles that rows name but that do not exist (after a
-- restore into a cluster without them, or a role dropped while it owned
-- tasks), and how many rows of each column name them.  Creating a role of
-- that name makes restored rows whole (docs/operations.md, "Backups and
-- restore"); a dropped role's rows stay missing.
------------------------------------------------------------------------------
CREATE OR REPLACE VIEW taskorch.missing_roles WITH (security_invoker = true) AS
SELECT m.role::text AS role, m.in_column, count(*) AS rows
  FROM (SELECT owner, 'task.owner' FROM taskorch.task
		UNION ALL
		SELECT g, 'task.triggerers' FROM taskorch.task, pg_catalog.unnest(triggerers) AS g
		UNION ALL
		SELECT owner, 'run.owner' FROM taskorch.run
		UNION ALL
		SELECT triggered_by, 'run.triggered_by' FROM taskorch.run
		UNION ALL
		SELECT triggered_by, 'batch.triggered_by' FROM taskorch.batch
		UNION ALL
		SELECT owner, 'queue.owner' FROM taskorch.queue
		UNION ALL
		SELECT owner, 'schema.owner' FROM taskorch.schema
		UNION ALL
		SELECT g, 'queue.users' FROM taskorch.queue, pg_catalog.unnest(users) AS g
		UNION ALL
		SELECT owner, 'wait_token.owner' FROM taskorch.wait_token) AS m(role, in_column)
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.oid = m.role::oid)
 GROUP BY 1, 2
 ORDER BY 1, 2;
GRANT SELECT ON taskorch.missing_roles TO PUBLIC;
