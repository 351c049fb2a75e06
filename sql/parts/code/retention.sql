------------------------------------------------------------------------------
-- Retention (retention.c): finished runs older than their task's retention
-- (register_task(retention => ...)) or taskorch.retention are removed in
-- the background; purge() removes them now.
------------------------------------------------------------------------------
-- The finished runs you may see, older than older_than (NULL: their
-- retention), of task (NULL: any), with their attempts and logs; returns
-- how many.  A run a waiting parent still needs, or one holding a live
-- idempotency key, stays.
CREATE OR REPLACE FUNCTION taskorch.purge(older_than taskorch.duration DEFAULT NULL, task text DEFAULT NULL)
	RETURNS bigint
	LANGUAGE c CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'taskorch_purge';
