-- taskorch install script, built by the Makefile from sql/parts/ (see
-- sql/parts/README.md): the schema parts, then the code parts.
--
-- Objects:
--   taskorch.task           the task registry        (view: taskorch.tasks)
--   taskorch.run            one row per run          (view: taskorch.runs)
--   taskorch.attempt        one row per failed attempt (view: taskorch.attempts)
--
-- Users never write these tables directly: the C functions below check the
-- caller's privileges and then write as the extension owner.  Reading goes
-- through views with security_invoker, so row-level security decides which
-- rows a role sees.

\echo Use "CREATE EXTENSION taskorch" to load this file. \quit

DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'taskorch_admin') THEN
		CREATE ROLE taskorch_admin NOLOGIN;
	END IF;
END
$$;

-- taskorch_internal: what the API's functions and views use and users do
-- not call (type support, status constants, the steps of tracks), kept out
-- of \df taskorch.*.  Its functions are executable as the API needs them
-- (views run them as their invoker); nothing in it is an interface.
CREATE SCHEMA taskorch_internal;
GRANT USAGE ON SCHEMA taskorch_internal TO PUBLIC;

-- Fails with a hint when the library is not in shared_preload_libraries.
CREATE FUNCTION taskorch_internal.require_preload() RETURNS void
	LANGUAGE c AS 'MODULE_PATHNAME', 'taskorch_require_preload';
SELECT taskorch_internal.require_preload();
REVOKE ALL ON FUNCTION taskorch_internal.require_preload() FROM PUBLIC;

------------------------------------------------------------------------------
-- Visibility: a role sees the runs of tasks it owns and the runs it
-- triggered; members of taskorch_admin see everything.  The tables'
-- policies call is_admin(), so it is made here, before them: in C, as
-- evaluated for each row a role reads (taskorch.c).
------------------------------------------------------------------------------
CREATE FUNCTION taskorch.is_admin() RETURNS bool
	LANGUAGE c STABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'taskorch_is_admin';

GRANT USAGE ON SCHEMA taskorch TO PUBLIC;
