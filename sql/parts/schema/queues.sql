------------------------------------------------------------------------------
-- Queues: concurrency limits (per concurrency key), pause and resume
------------------------------------------------------------------------------
CREATE TABLE taskorch.queue (
	name				text PRIMARY KEY,
	concurrency_limit	int CHECK (concurrency_limit >= 1),	-- NULL: no limit
	paused				bool NOT NULL DEFAULT false,
	owner				taskorch.role_ref NOT NULL,
	users				taskorch.role_ref[] NOT NULL DEFAULT '{}',	-- grant_queue(): may use it
	created_at			timestamptz NOT NULL DEFAULT now(),
	updated_at			timestamptz NOT NULL DEFAULT now()
);
SELECT pg_catalog.pg_extension_config_dump('taskorch.queue', '');
REVOKE ALL ON taskorch.queue FROM PUBLIC;
GRANT SELECT ON taskorch.queue TO PUBLIC;
