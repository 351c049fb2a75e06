------------------------------------------------------------------------------
-- Results: the Result object of a finished run, and waiting for a run from
-- top-level SQL (wait_for_run, run_and_wait)
------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION taskorch_internal.in_transaction_block() RETURNS bool
	LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'taskorch_in_transaction_block';

-- The Result object of a finished run (Trigger.dev's): {ok, id,
-- taskIdentifier, output} or {ok: false, id, taskIdentifier, error}.
CREATE OR REPLACE FUNCTION taskorch_internal.result(status taskorch.run_status, id text, task_id text,
								 output jsonb, error jsonb) RETURNS jsonb
	LANGUAGE sql STABLE PARALLEL SAFE
	AS $$
	SELECT pg_catalog.jsonb_build_object('ok', taskorch.succeeded(status), 'id', id, 'taskIdentifier', task_id)
		   || CASE WHEN taskorch.succeeded(status) THEN pg_catalog.jsonb_build_object('output', output)
				   ELSE pg_catalog.jsonb_build_object('error', coalesce(error,
						pg_catalog.jsonb_build_object('message', 'run ' || status))) END $$;

-- The FP Result of a failure that taskorch builds (a track's or an
-- orchestrator's, seed 004): {success: false, data, error, meta:
-- {function_name, timestamp, errors}}; the rule of docs/runs.md makes the
-- run that returns it FAILED.
CREATE OR REPLACE FUNCTION taskorch_internal.fp_failure(function_name text, data jsonb, error text,
												errors jsonb) RETURNS jsonb
	LANGUAGE sql STABLE
	AS $$
	SELECT pg_catalog.jsonb_build_object('success', false, 'data', data, 'error', error,
		'meta', pg_catalog.jsonb_build_object('function_name', function_name,
											  'timestamp', pg_catalog.now(), 'errors', errors)) $$;

-- The FP Result rule (runs.c, docs/runs.md): the error of an output that is
-- a failed FP Result ({"success": false, ...}), or NULL.
CREATE OR REPLACE FUNCTION taskorch_internal.result_error(output jsonb) RETURNS jsonb
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_result_error';

-- The Result a wait for a token returns: {ok: true, output}, or {ok: false,
-- error} when the token timed out or was completed with a failed FP Result.
CREATE OR REPLACE FUNCTION taskorch_internal.token_result(timed_out bool, output jsonb) RETURNS jsonb
	LANGUAGE sql STABLE PARALLEL SAFE
	AS $$
	SELECT CASE WHEN timed_out
				THEN pg_catalog.jsonb_build_object('ok', false, 'error',
						pg_catalog.jsonb_build_object('message', 'wait token timed out'))
				WHEN taskorch_internal.result_error(output) IS NOT NULL
				THEN pg_catalog.jsonb_build_object('ok', false, 'error', taskorch_internal.result_error(output))
				ELSE pg_catalog.jsonb_build_object('ok', true, 'output', output) END $$;

-- The Result object of a run you can see; NULL while it has not finished.
CREATE OR REPLACE FUNCTION taskorch.result(run text) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	r record;
BEGIN
	SELECT id, task_id, status, output, error INTO r FROM taskorch.runs_wide WHERE id = run;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'run "%" does not exist', run
			USING ERRCODE = 'undefined_object',
				  HINT = 'The run may belong to a role whose runs you cannot see; check taskorch.runs.';
	END IF;
	IF NOT taskorch.finished(r.status) THEN
		RETURN NULL;
	END IF;
	RETURN taskorch_internal.result(r.status, r.id, r.task_id, r.output, r.error);
END
$$;

-- From top-level SQL (not in a transaction block): wait up to timeout for
-- a run to finish; result is its Result object, or NULL after the timeout
-- (the run goes on).
CREATE OR REPLACE PROCEDURE taskorch.wait_for_run(run text, timeout interval DEFAULT '1 minute',
									   INOUT result jsonb DEFAULT NULL)
	LANGUAGE plpgsql
	AS $$
DECLARE
	deadline timestamptz := clock_timestamp() + timeout;
BEGIN
	IF taskorch_internal.in_transaction_block() THEN
		RAISE EXCEPTION 'taskorch.wait_for_run() cannot run inside a transaction block'
			USING ERRCODE = 'active_sql_transaction',
				  HINT = 'CALL it on its own (autocommit), so that it sees the run change; or read taskorch.result() later.';
	END IF;
	LOOP
		result := taskorch.result(run);
		EXIT WHEN result IS NOT NULL OR clock_timestamp() >= deadline;
		PERFORM pg_sleep(0.01);
		COMMIT;		-- a new snapshot for the next look
	END LOOP;
END
$$;

-- Trigger, commit, and wait_for_run().
CREATE OR REPLACE PROCEDURE taskorch.run_and_wait(task text, payload taskorch.json_input DEFAULT '{}',
									   options taskorch.json_input DEFAULT NULL,
									   timeout interval DEFAULT '1 minute',
									   INOUT result jsonb DEFAULT NULL)
	LANGUAGE plpgsql
	AS $$
DECLARE
	run text;
BEGIN
	IF taskorch_internal.in_transaction_block() THEN
		RAISE EXCEPTION 'taskorch.run_and_wait() cannot run inside a transaction block'
			USING ERRCODE = 'active_sql_transaction',
				  HINT = 'CALL it on its own (autocommit): the run must be committed before it can run; or use taskorch.trigger() and read the run later.';
	END IF;
	run := taskorch.trigger(task, coalesce(payload, '{}'), options);
	COMMIT;
	CALL taskorch.wait_for_run(run, timeout, result);
END
$$;
