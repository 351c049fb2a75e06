------------------------------------------------------------------------------
-- Statuses (Trigger.dev's)
------------------------------------------------------------------------------
CREATE TYPE taskorch.run_status AS ENUM (
	'DELAYED', 'QUEUED', 'EXECUTING', 'WAITING',
	'COMPLETED', 'FAILED', 'CANCELED', 'EXPIRED', 'TIMED_OUT', 'CRASHED',
	'SYSTEM_FAILURE');
