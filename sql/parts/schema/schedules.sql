------------------------------------------------------------------------------
-- Schedules (schedules.c): runs of a task on a cron expression in a time
-- zone.  next_tick is the instant of the next tick; a worker's maintenance
-- pass fires due ticks and moves it, in one transaction with their runs.
------------------------------------------------------------------------------
CREATE SEQUENCE taskorch.schedule_id_seq;
CREATE TABLE taskorch.schedule (
	id				text COLLATE "C" PRIMARY KEY,
	task_id			text NOT NULL,
	cron			text NOT NULL,
	timezone		text NOT NULL,
	payload			jsonb,						-- added to each tick's fields
	deduplication_key text,						-- per owner: schedule() updates
	external_id		text,
	options			jsonb,						-- trigger options of each run
	overlap			text NOT NULL CHECK (overlap IN ('allow', 'skip')),
	missed			int NOT NULL CHECK (missed BETWEEN 0 AND 100),	-- missed ticks that run
	active			bool NOT NULL,
	owner			taskorch.role_ref NOT NULL,
	next_tick		timestamptz,				-- NULL: inactive, or no tick to come
	last_tick		timestamptz,
	last_run_id		text,
	last_error		text,						-- why the last tick made no run
	created_at		timestamptz NOT NULL DEFAULT now(),
	updated_at		timestamptz NOT NULL DEFAULT now()
);
ALTER SEQUENCE taskorch.schedule_id_seq OWNED BY taskorch.schedule.id;
CREATE INDEX schedule_due ON taskorch.schedule (next_tick) WHERE active;
CREATE INDEX schedule_deduplication_key ON taskorch.schedule (deduplication_key)
	WHERE deduplication_key IS NOT NULL;
SELECT pg_catalog.pg_extension_config_dump('taskorch.schedule', '');
SELECT pg_catalog.pg_extension_config_dump('taskorch.schedule_id_seq', '');
ALTER TABLE taskorch.schedule ENABLE ROW LEVEL SECURITY;
CREATE POLICY schedule_visible ON taskorch.schedule FOR SELECT USING (
	pg_catalog.pg_has_role(owner, 'USAGE') OR taskorch.is_admin());
REVOKE ALL ON taskorch.schedule FROM PUBLIC;
GRANT SELECT ON taskorch.schedule TO PUBLIC;
