------------------------------------------------------------------------------
-- Registry
------------------------------------------------------------------------------
CREATE TABLE taskorch.task (
	id				text PRIMARY KEY,
	fn				regprocedure,				-- NULL: an external task (external.c)
	owner			taskorch.role_ref NOT NULL,
	queue			text NOT NULL,
	max_attempts	int NOT NULL,
	retry_factor	float8 NOT NULL,
	retry_min_ms	int NOT NULL,
	retry_max_ms	int NOT NULL,
	retry_randomize	bool NOT NULL,
	max_duration	interval,
	triggerers		taskorch.role_ref[] NOT NULL DEFAULT '{}',
	description		text,
	created_at		timestamptz NOT NULL DEFAULT now(),
	updated_at		timestamptz NOT NULL DEFAULT now(),
	payload_schema	jsonb,						-- JSON Schemas checked at trigger
	output_schema	jsonb,						-- and on completion (schema.c)
	on_success		text,						-- hook tasks (hooks.c)
	on_failure		text,
	on_start		text,
	retention		interval,					-- NULL: taskorch.retention (retention.c)
	external		bool NOT NULL DEFAULT false,	-- claimed over libpq, not executed here
	executors		taskorch.role_ref[] NOT NULL DEFAULT '{}',	-- may claim its runs
	CONSTRAINT task_function_or_external CHECK (external = (fn IS NULL))
);

SELECT pg_catalog.pg_extension_config_dump('taskorch.task', '');
ALTER TABLE taskorch.task ENABLE ROW LEVEL SECURITY;

-- Who sees a task: the members of its owner and of the roles allowed to
-- trigger it, and the admins, as trigger() decides who may trigger it
-- (trigger.c).  A call: each new backend's first read of the table parses
-- the policy's expression, and trigger() reads the table.
CREATE FUNCTION taskorch.task_visible(owner taskorch.role_ref, triggerers taskorch.role_ref[])
	RETURNS bool LANGUAGE c STABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'taskorch_task_visible';
CREATE POLICY task_visible ON taskorch.task FOR SELECT
	USING (taskorch.task_visible(owner, triggerers));
REVOKE ALL ON taskorch.task FROM PUBLIC;
GRANT SELECT ON taskorch.task TO PUBLIC;

-- Task ids belong to the role that first registered them and stay with it
-- after unregister_task(): a run, hook or track step that names a task
-- never reaches another role's function (registry.c).
CREATE TABLE taskorch.task_name (
	id				text PRIMARY KEY,
	owner			taskorch.role_ref NOT NULL
);
SELECT pg_catalog.pg_extension_config_dump('taskorch.task_name', '');
REVOKE ALL ON taskorch.task_name FROM PUBLIC;
