------------------------------------------------------------------------------
-- Jobs: the job and step status of track and orchestrator runs
------------------------------------------------------------------------------
-- Jobs: every track and orchestrator run, its status derived from the runs
-- (seed 004's job record: Started, Processing, Partial, Complete, Error).
CREATE OR REPLACE VIEW taskorch.jobs WITH (security_invoker = true) AS
SELECT j.id, j.task_id AS name, d.kind,
	   CASE WHEN taskorch.succeeded(j.status) THEN 'Complete'
			-- failed, with some steps (members) completed: the failure's data counts them
			WHEN taskorch.finished(j.status)
			THEN CASE WHEN coalesce((j.error->'result'->'data'->'metadata'->>'completed')::int,
									(j.error->'result'->'data'->'metadata'->>'processed')::int, 0) > 0
					  THEN 'Partial' ELSE 'Error' END
			WHEN EXISTS (SELECT FROM taskorch.run c WHERE c.parent_run_id = j.id) THEN 'Processing'
			ELSE 'Started' END AS status,
	   j.status AS run_status, j.created_at, j.started_at AS started, j.finished_at AS ended,
	   greatest(j.updated_at, (SELECT max(c.updated_at) FROM taskorch.run c WHERE c.parent_run_id = j.id))
		   AS lastupdated,
	   j.error
  FROM taskorch.runs_wide j JOIN taskorch.composite d ON d.name = j.task_id;
GRANT SELECT ON taskorch.jobs TO PUBLIC;

-- The steps of every job: a track's steps and an orchestrator's members
-- (each with the child run that ran it, once there is one), or the pages
-- of a traverse orchestrator.  done: the step has ended (however).
CREATE OR REPLACE VIEW taskorch.job_steps WITH (security_invoker = true) AS
SELECT j.id AS job_id, s.n::int - 1 AS position, s.step->>'name' AS step, s.step->>'task' AS task_id,
	   c.id AS run_id, c.status, c.started_at AS started, c.finished_at AS ended,
	   coalesce(taskorch.finished(c.status), false) AS done
  FROM taskorch.run j
  JOIN taskorch.composite d ON d.name = j.task_id AND NOT d.steps->0 ? 'query'
  CROSS JOIN LATERAL jsonb_array_elements(d.steps) WITH ORDINALITY AS s(step, n)
  -- a track's step: the child of its checkpoint (keyed by the step's
  -- name); an orchestrator's member: its child in the one batch wait
  LEFT JOIN LATERAL (
	SELECT ch.id, ch.status, ch.started_at, ch.finished_at
	  FROM taskorch.waitpoint w
	  JOIN taskorch.run ch ON ch.id = w.children[CASE WHEN d.kind = 'track' THEN 1 ELSE s.n END]
	 WHERE w.run_id = j.id
	   AND CASE WHEN d.kind = 'track' THEN w.key = s.step->>'name' ELSE w.seq = 0 END) c ON true
UNION ALL
SELECT j.id, w.seq, 'page_' || w.seq, d.steps->0->>'task', NULL,
	   CASE WHEN w.completed_at IS NULL THEN taskorch_internal.waiting() ELSE taskorch_internal.completed() END,
	   w.created_at, w.completed_at, w.completed_at IS NOT NULL
  FROM taskorch.run j
  JOIN taskorch.composite d ON d.name = j.task_id AND d.steps->0 ? 'query'
  JOIN taskorch.waitpoint w ON w.run_id = j.id;
GRANT SELECT ON taskorch.job_steps TO PUBLIC;

-- A job as seed 004's record: {status, started, ended, lastupdated, and per
-- step {step}: done, {step}_started, {step}_ended}.
CREATE OR REPLACE FUNCTION taskorch.job(run text) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	result jsonb;
BEGIN
	SELECT jsonb_build_object('status', j.status, 'started', j.started, 'ended', j.ended,
							  'lastupdated', j.lastupdated)
		   || coalesce((SELECT jsonb_object_agg(k, v)
						  FROM taskorch.job_steps s,
							   LATERAL (VALUES (s.step, to_jsonb(s.done)),
											   (s.step || '_started', to_jsonb(s.started)),
											   (s.step || '_ended', to_jsonb(s.ended))) AS x(k, v)
						 WHERE s.job_id = j.id), '{}')
	  INTO result
	  FROM taskorch.jobs j WHERE j.id = job.run;
	IF result IS NULL THEN
		RAISE EXCEPTION 'job "%" does not exist', run
			USING ERRCODE = 'undefined_object',
				  HINT = 'A job is a run of a track or an orchestrator you can see; taskorch.jobs lists them.';
	END IF;
	RETURN result;
END
$$;
