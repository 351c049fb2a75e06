------------------------------------------------------------------------------
-- Registry: the tasks view and the registry API
------------------------------------------------------------------------------
CREATE OR REPLACE VIEW taskorch.tasks WITH (security_invoker = true) AS
SELECT t.id, t.fn AS function, t.owner, t.queue, t.max_attempts,
	   jsonb_build_object('factor', t.retry_factor,
						  'minTimeoutInMs', t.retry_min_ms,
						  'maxTimeoutInMs', t.retry_max_ms,
						  'randomize', t.retry_randomize) AS retry,
	   t.max_duration, t.triggerers, t.description, t.created_at, t.updated_at,
	   t.payload_schema, t.output_schema, t.on_success, t.on_failure, t.on_start, t.retention,
	   t.external, t.executors
  FROM taskorch.task t;
GRANT SELECT ON taskorch.tasks TO PUBLIC;

CREATE OR REPLACE FUNCTION taskorch.register_task(
	id text,
	fn regprocedure,
	queue text DEFAULT NULL,
	max_attempts int DEFAULT 3,
	retry taskorch.json_input DEFAULT NULL,
	max_duration taskorch.duration DEFAULT NULL,
	description text DEFAULT NULL,
	payload_schema taskorch.json_input DEFAULT NULL,
	output_schema taskorch.json_input DEFAULT NULL,
	on_success text DEFAULT NULL,
	on_failure text DEFAULT NULL,
	on_start text DEFAULT NULL,
	retention taskorch.duration DEFAULT NULL)
	RETURNS text
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_register_task_v2';

CREATE OR REPLACE FUNCTION taskorch.unregister_task(id text) RETURNS bigint
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_unregister_task';

CREATE OR REPLACE FUNCTION taskorch.grant_trigger(task text, role regrole) RETURNS void
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_grant_trigger';

CREATE OR REPLACE FUNCTION taskorch.revoke_trigger(task text, role regrole) RETURNS void
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_revoke_trigger';
