------------------------------------------------------------------------------
-- Role references (role_ref.c): every column that names a role keeps its
-- OID and its name.  pg_dump writes the name; a restore into a cluster
-- without that role keeps the row, which names no role (its runs do not
-- execute) until a role of that name is created.  A number is never taken
-- for an OID.  Cast to oid, a role_ref is the role it names: its OID, or
-- (restored before its role existed) the role of its name, 0: none.
------------------------------------------------------------------------------
CREATE TYPE taskorch.role_ref;
CREATE FUNCTION taskorch_internal.role_ref_in(cstring) RETURNS taskorch.role_ref
	LANGUAGE c STRICT STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_role_ref_in';
CREATE FUNCTION taskorch_internal.role_ref_out(taskorch.role_ref) RETURNS cstring
	LANGUAGE c STRICT STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_role_ref_out';
CREATE FUNCTION taskorch_internal.role_ref_recv(internal) RETURNS taskorch.role_ref
	LANGUAGE c STRICT STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_role_ref_recv';
CREATE FUNCTION taskorch_internal.role_ref_send(taskorch.role_ref) RETURNS bytea
	LANGUAGE c STRICT STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_role_ref_send';
CREATE TYPE taskorch.role_ref (
	INPUT = taskorch_internal.role_ref_in, OUTPUT = taskorch_internal.role_ref_out,
	RECEIVE = taskorch_internal.role_ref_recv, SEND = taskorch_internal.role_ref_send,
	INTERNALLENGTH = VARIABLE, STORAGE = main);
CREATE FUNCTION taskorch_internal.role_ref_oid(taskorch.role_ref) RETURNS oid
	LANGUAGE c STRICT STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_role_ref_oid';
CREATE FUNCTION taskorch_internal.role_ref(oid) RETURNS taskorch.role_ref
	LANGUAGE c STRICT STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_role_ref_from_oid';
-- implicit: pg_has_role(owner, 'USAGE') and owner::oid read the role
CREATE CAST (taskorch.role_ref AS oid) WITH FUNCTION taskorch_internal.role_ref_oid(taskorch.role_ref)
	AS IMPLICIT;
CREATE CAST (oid AS taskorch.role_ref) WITH FUNCTION taskorch_internal.role_ref(oid) AS ASSIGNMENT;
CREATE CAST (regrole AS taskorch.role_ref) WITH FUNCTION taskorch_internal.role_ref(oid) AS ASSIGNMENT;
