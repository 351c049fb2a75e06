------------------------------------------------------------------------------
-- Schedules and cron expressions (schedules.c, cron.c)
------------------------------------------------------------------------------
-- The next `count` times a cron expression names after `after`, and the
-- expression in words.
CREATE OR REPLACE FUNCTION taskorch.cron_next(cron text, timezone text DEFAULT 'UTC',
											  count int DEFAULT 5, after timestamptz DEFAULT now())
	RETURNS SETOF timestamptz
	LANGUAGE c CALLED ON NULL INPUT STABLE AS 'MODULE_PATHNAME', 'taskorch_cron_next';
CREATE OR REPLACE FUNCTION taskorch.cron_describe(cron text) RETURNS text
	LANGUAGE c CALLED ON NULL INPUT IMMUTABLE AS 'MODULE_PATHNAME', 'taskorch_cron_describe';

-- Runs of `task` at each tick of `cron` in `timezone`; returns the
-- schedule's id.  The same deduplication_key (of your role) updates that
-- schedule.  options: trigger options, and "overlap" ("allow" or "skip"),
-- "missed" ("latest", "skip" or a number of ticks).
CREATE OR REPLACE FUNCTION taskorch.schedule(
	task text,
	cron text,
	timezone text DEFAULT 'UTC',
	payload taskorch.json_input DEFAULT NULL,
	deduplication_key text DEFAULT NULL,
	external_id text DEFAULT NULL,
	options taskorch.json_input DEFAULT NULL,
	active bool DEFAULT true)
	RETURNS text
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_schedule';
CREATE OR REPLACE FUNCTION taskorch.unschedule(schedule text) RETURNS void
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_unschedule';
CREATE OR REPLACE FUNCTION taskorch.activate_schedule(schedule text, active bool DEFAULT true) RETURNS void
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_schedule_activate';
CREATE OR REPLACE FUNCTION taskorch.deactivate_schedule(schedule text) RETURNS void
	LANGUAGE sql VOLATILE RETURN taskorch.activate_schedule(schedule, false);
CREATE OR REPLACE FUNCTION taskorch.run_schedule_now(schedule text) RETURNS text
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_run_schedule_now';

-- The schedules you may see: the expression in words, the next runs in
-- the schedule's time zone, the last run and its status.
CREATE OR REPLACE VIEW taskorch.schedules WITH (security_invoker = true) AS
SELECT s.id, s.task_id, s.cron, taskorch.cron_describe(s.cron) AS description, s.timezone,
	   s.active,
	   ARRAY(SELECT t AT TIME ZONE s.timezone
			   FROM taskorch.cron_next(s.cron, s.timezone, 3, now()) t
			  WHERE s.active) AS next_runs,
	   s.last_tick AT TIME ZONE s.timezone AS last_run_at, s.last_run_id, r.status AS last_run_status,
	   s.last_error, s.external_id, s.deduplication_key, s.payload, s.options, s.overlap, s.missed,
	   s.owner, s.next_tick, s.created_at, s.updated_at
  FROM taskorch.schedule s
  LEFT JOIN taskorch.run r ON r.id = s.last_run_id;
GRANT SELECT ON taskorch.schedules TO PUBLIC;
