-- taskorch.role_ref, the type of the columns that name roles (role_ref.c):
-- a role's OID and its name, so that a dump restores by name.
CREATE ROLE regress_rr;
CREATE ROLE "Regress RR";
\set VERBOSITY default
-- names in, names out, quoted like identifiers where they need to be
SELECT 'regress_rr'::taskorch.role_ref AS plain, '"Regress RR"'::taskorch.role_ref AS quoted;
-- a name no role has is kept, and names no role: input never fails for it
SELECT r, r::oid AS oid FROM (SELECT 'regress_nobody'::taskorch.role_ref AS r) x;
-- a number is a role name, never an OID
SELECT r::oid = 0 AS names_no_role, r::text = format('"%s"', o) AS printed_as_a_name
  FROM (SELECT oid AS o, oid::text::taskorch.role_ref AS r FROM pg_roles WHERE rolname = 'regress_rr') x;
-- the unknown role (an owner whose role was dropped under 0.1)
SELECT r, r::oid AS oid FROM (SELECT '""'::taskorch.role_ref AS r) x;
-- not role names
SELECT ''::taskorch.role_ref;
SELECT 'a.b'::taskorch.role_ref;
-- from an OID (what the C code writes): the role must exist
CREATE TEMP TABLE refs (what text, r taskorch.role_ref);
INSERT INTO refs VALUES ('by regrole', 'regress_rr'::regrole);
INSERT INTO refs VALUES ('by oid', (SELECT oid FROM pg_roles WHERE rolname = 'regress_rr'));
SELECT 0::oid::taskorch.role_ref;
-- a rename is followed
ALTER ROLE regress_rr RENAME TO regress_rr2;
SELECT what, r, r::oid = 'regress_rr2'::regrole AS same_role FROM refs ORDER BY what;
-- a value loaded before its role existed (a restore) names the role once it is created
INSERT INTO refs VALUES ('restored', 'regress_later');
SELECT r, r::oid = 0 AS names_no_role FROM refs WHERE what = 'restored';
CREATE ROLE regress_later;
SELECT r, r::oid = 'regress_later'::regrole AS names_the_new_role FROM refs WHERE what = 'restored';
-- a dropped role stays dropped: a new role of the same name is another role
DELETE FROM refs;
CREATE ROLE regress_gone;
INSERT INTO refs VALUES ('dropped', 'regress_gone'::regrole);
DROP ROLE regress_gone;
CREATE ROLE regress_gone;
SELECT r, r::oid = 'regress_gone'::regrole AS names_the_new_role,
	   EXISTS (SELECT FROM pg_roles WHERE oid = r::oid) AS names_a_role
  FROM refs;
-- binary output sends the name, not the OID
SELECT convert_from(taskorch_internal.role_ref_send('"Regress RR"'), 'UTF8') AS sent;
-- trigger grants: one entry per role, in the order granted, revoked by role
CREATE FUNCTION rr_noop(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT payload $$;
SELECT taskorch.register_task('rr-noop', 'rr_noop(jsonb)');
SELECT taskorch.grant_trigger('rr-noop', 'regress_rr2');
SELECT taskorch.grant_trigger('rr-noop', 'regress_later');
SELECT taskorch.grant_trigger('rr-noop', 'regress_rr2');
SELECT triggerers FROM taskorch.tasks WHERE id = 'rr-noop';
SELECT taskorch.revoke_trigger('rr-noop', 'regress_rr2');
SELECT triggerers FROM taskorch.tasks WHERE id = 'rr-noop';
-- a grant to an OID that names no role is refused
SELECT try($$SELECT taskorch.grant_trigger('rr-noop', 4000000000::oid::regrole)$$);
SELECT taskorch.unregister_task('rr-noop');
DROP TABLE refs;
DROP FUNCTION rr_noop(jsonb);
DROP ROLE regress_rr2, "Regress RR", regress_later, regress_gone;
