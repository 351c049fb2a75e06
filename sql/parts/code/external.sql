------------------------------------------------------------------------------
-- External tasks: the protocol of workers outside the server (external.c,
-- docs/external-tasks.md).  Call each function in a transaction of its own.
------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION taskorch.register_external_task(
	id text,
	queue text DEFAULT NULL,
	max_attempts int DEFAULT 3,
	retry taskorch.json_input DEFAULT NULL,
	max_duration taskorch.duration DEFAULT NULL,
	payload_schema taskorch.json_input DEFAULT NULL,
	output_schema taskorch.json_input DEFAULT NULL,
	on_success text DEFAULT NULL,
	on_failure text DEFAULT NULL,
	description text DEFAULT NULL,
	on_start text DEFAULT NULL,
	retention taskorch.duration DEFAULT NULL)
	RETURNS text
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_register_external_task';

CREATE OR REPLACE FUNCTION taskorch.grant_execute(task text, role regrole) RETURNS void
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_grant_execute';

CREATE OR REPLACE FUNCTION taskorch.revoke_execute(task text, role regrole) RETURNS void
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_revoke_execute';

CREATE OR REPLACE FUNCTION taskorch.claim_runs(
	tasks text[],
	max_runs int DEFAULT 1,
	lease taskorch.duration DEFAULT '30s')
	RETURNS TABLE (run_id text, task text, payload jsonb, attempt int, max_attempts int,
				   metadata jsonb, lease text, lease_expires_at timestamptz)
	LANGUAGE c CALLED ON NULL INPUT VOLATILE ROWS 1
	AS 'MODULE_PATHNAME', 'taskorch_claim_runs';

CREATE OR REPLACE FUNCTION taskorch.heartbeat(
	lease text, extend taskorch.duration DEFAULT NULL,
	OUT canceled bool, OUT lease_expires_at timestamptz)
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_heartbeat';

CREATE OR REPLACE FUNCTION taskorch.complete_run(lease text, output taskorch.json_input DEFAULT NULL)
	RETURNS text
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_complete_run';

CREATE OR REPLACE FUNCTION taskorch.fail_run(lease text, error taskorch.json_input,
											 retry bool DEFAULT true)
	RETURNS text
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_fail_run';

-- Several outcomes in one transaction, each settled on its own.
CREATE OR REPLACE FUNCTION taskorch.complete_runs(outcomes taskorch.json_input)
	RETURNS TABLE (lease text, status text, error text)
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_complete_runs';

CREATE OR REPLACE FUNCTION taskorch.release_run(lease text) RETURNS text
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_release_run';

CREATE OR REPLACE FUNCTION taskorch.lease_log(lease text, level text, message text,
											  data taskorch.json_input DEFAULT NULL)
	RETURNS void
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_lease_log';

CREATE OR REPLACE FUNCTION taskorch.lease_metadata(lease text) RETURNS jsonb
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_lease_metadata';

CREATE OR REPLACE FUNCTION taskorch.lease_metadata_replace(lease text, metadata taskorch.json_input)
	RETURNS jsonb
	LANGUAGE c CALLED ON NULL INPUT VOLATILE
	AS 'MODULE_PATHNAME', 'taskorch_lease_metadata_replace';

CREATE OR REPLACE FUNCTION taskorch.lease_metadata_set(lease text, key text, value jsonb)
	RETURNS jsonb
	LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
	AS $$ SELECT taskorch.lease_metadata_replace(lease, taskorch.lease_metadata(lease)
												 || jsonb_build_object(key, value)) $$;

-- Is the backend that claimed a run still there? (the lost-run pass)
CREATE OR REPLACE FUNCTION taskorch_internal.claimer_alive(pid int, started timestamptz)
	RETURNS bool
	LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'taskorch_claimer_alive';
REVOKE ALL ON FUNCTION taskorch_internal.claimer_alive(int, timestamptz) FROM PUBLIC;
