/*-------------------------------------------------------------------------
 *
 * role_ref.c
 *	  taskorch.role_ref, the type of every column that names a role (the
 *	  owners of tasks, runs, queues, schemas and wait tokens, who triggered
 *	  a run or a batch, a task's triggerers), and the message for a task
 *	  whose owner does not exist.
 *
 * Why not regrole: a regrole is an OID, which means nothing in another
 * cluster.  pg_dump writes it as the role's name, and restoring into a
 * cluster without that role fails the COPY of the whole table (every task
 * and run lost, not only that role's); a role dropped before the dump is
 * written as a bare number, which the restore takes for an OID that may
 * name some unrelated role of the new cluster.  Roles cross clusters by
 * name (pg_dumpall --roles-only), so a role_ref keeps both.
 *
 * Value: a varlena of the role's OID and its name (no terminator), stored
 * with a short header: the OID may be unaligned and is read with memcpy.
 *
 * Invariants:
 *	- Text input takes a role name, quoted like an identifier where it
 *	  needs to be (as regrole prints it), and never an OID: "16384" is the
 *	  name of a role.  A name no role has gives OID 0 and keeps the name:
 *	  input never fails for a missing role, so a restore keeps its rows.
 *	  The input "" is the unknown role (OID 0, empty name, which no role
 *	  can have): what the 0.1 -> 0.2 upgrade makes of a regrole whose
 *	  role had been dropped, its name being lost.
 *	- From an OID (the casts from oid and regrole, for the C code's
 *	  inserts) the role must exist; its current name is kept.
 *	- The role a value names (the cast to oid, on the claim's hot path: no
 *	  catalog look-up for a value made while its role existed): its OID,
 *	  so renames are followed; a value whose role did not exist when it
 *	  was made (OID 0) names the role that now has its name, or none (0),
 *	  so creating a missing role after a restore makes its rows whole.  A
 *	  role dropped after the value was made stays dropped: its OID names
 *	  no role (execute.c and trigger.c refuse it), and a role created
 *	  later under the same name does not inherit its tasks in this
 *	  cluster (as with regrole, an OID is trusted while it names a role:
 *	  only an OID wraparound could give a dropped role's OID to another).
 *	  Across clusters roles are their names (as for pg_dumpall): the dump
 *	  holds the name, and only the name is read.
 *	- Output prints the role's current name while its OID names one, else
 *	  the kept name: a dump never holds a bare OID.
 *	- There is no ordering or equality of role_refs: compare their oids.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "catalog/pg_type.h"
#include "libpq/pqformat.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

PG_FUNCTION_INFO_V1(taskorch_role_ref_in);
PG_FUNCTION_INFO_V1(taskorch_role_ref_out);
PG_FUNCTION_INFO_V1(taskorch_role_ref_recv);
PG_FUNCTION_INFO_V1(taskorch_role_ref_send);
PG_FUNCTION_INFO_V1(taskorch_role_ref_oid);
PG_FUNCTION_INFO_V1(taskorch_role_ref_from_oid);

#define REF_OID_SIZE sizeof(Oid)

static Datum
make_ref(Oid oid, const char *name, int len)
{
	struct varlena *v = palloc(VARHDRSZ + REF_OID_SIZE + len);

	SET_VARSIZE(v, VARHDRSZ + REF_OID_SIZE + len);
	memcpy(VARDATA(v), &oid, REF_OID_SIZE);
	memcpy(VARDATA(v) + REF_OID_SIZE, name, len);
	return PointerGetDatum(v);
}

/* The kept OID and name of a value (its name not terminated: *len bytes). */
static Oid
ref_parts(Datum d, const char **name, int *len)
{
	struct varlena *v = PG_DETOAST_DATUM_PACKED(d);
	Oid			oid;

	if (VARSIZE_ANY_EXHDR(v) < REF_OID_SIZE)
		elog(ERROR, "taskorch: corrupt role_ref of %d bytes", (int) VARSIZE_ANY_EXHDR(v));
	memcpy(&oid, VARDATA_ANY(v), REF_OID_SIZE);
	*name = VARDATA_ANY(v) + REF_OID_SIZE;
	*len = VARSIZE_ANY_EXHDR(v) - REF_OID_SIZE;
	return oid;
}

/* A value for a role name (cut to NAMEDATALEN - 1 bytes), existing or not. */
static Datum
ref_of_name(const char *name)
{
	char		buf[NAMEDATALEN];
	int			len = strlen(name);

	if (len >= NAMEDATALEN)
		len = pg_mbcliplen(name, len, NAMEDATALEN - 1);
	memcpy(buf, name, len);
	buf[len] = '\0';
	return make_ref(len > 0 ? get_role_oid(buf, true) : InvalidOid, buf, len);
}

/*
 * The role a role_ref names (see the header); InvalidOid: none.  The cast
 * to oid, for C code that reads role_ref columns without it.
 */
Oid
role_ref_oid(Datum d)
{
	const char *name;
	int			len;
	Oid			oid = ref_parts(d, &name, &len);
	char		buf[NAMEDATALEN];

	if (OidIsValid(oid))
		return oid;
	if (len == 0 || len >= NAMEDATALEN)
		return InvalidOid;
	memcpy(buf, name, len);
	buf[len] = '\0';
	return get_role_oid(buf, true);
}

/*
 * The name a value shows (palloc'd): the current name of the role it
 * names, else its kept name ("" for the unknown role).
 */
static char *
role_ref_name(Datum ref)
{
	const char *name;
	int			len;
	Oid			oid = ref_parts(ref, &name, &len);
	char	   *current;

	if (OidIsValid(oid) && (current = GetUserNameFromId(oid, true)) != NULL)
		return current;
	return pnstrdup(name, len);
}

/* SQL: role_ref input: a role name, quoted where needed; never an OID */
Datum
taskorch_role_ref_in(PG_FUNCTION_ARGS)
{
	char	   *str = PG_GETARG_CSTRING(0);
	List	   *names;

	if (strcmp(str, "\"\"") == 0)
		PG_RETURN_DATUM(make_ref(InvalidOid, "", 0));
	/* downcased unless quoted, cut to NAMEDATALEN - 1, as for identifiers */
	if (!SplitIdentifierString(pstrdup(str), '.', &names) || list_length(names) != 1)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_NAME),
				errmsg("invalid role name: \"%s\"", str),
				errhint("Write one role name, in double quotes if it has capitals, spaces or dots."));
	PG_RETURN_DATUM(ref_of_name(linitial(names)));
}

/* SQL: role_ref output: the role's name, quoted where needed */
Datum
taskorch_role_ref_out(PG_FUNCTION_ARGS)
{
	char	   *name = role_ref_name(PG_GETARG_DATUM(0));

	PG_RETURN_CSTRING(pstrdup(quote_identifier(name)));
}

/* SQL: binary input: the role's name, unquoted (no OID crosses the wire) */
Datum
taskorch_role_ref_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int			nbytes;
	char	   *name = pq_getmsgtext(buf, buf->len - buf->cursor, &nbytes);

	PG_RETURN_DATUM(ref_of_name(name));
}

/* SQL: binary output: the name the value shows, unquoted */
Datum
taskorch_role_ref_send(PG_FUNCTION_ARGS)
{
	char	   *name = role_ref_name(PG_GETARG_DATUM(0));
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendtext(&buf, name, strlen(name));
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* SQL: the implicit cast to oid: the role the value names (0: none) */
Datum
taskorch_role_ref_oid(PG_FUNCTION_ARGS)
{
	PG_RETURN_OID(role_ref_oid(PG_GETARG_DATUM(0)));
}

/* SQL: the assignment casts from oid and regrole: an existing role */
Datum
taskorch_role_ref_from_oid(PG_FUNCTION_ARGS)
{
	Oid			oid = PG_GETARG_OID(0);
	char	   *name = GetUserNameFromId(oid, true);

	if (name == NULL)
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("role with OID %u does not exist", oid),
				errhint("Name an existing role."));
	PG_RETURN_DATUM(make_ref(oid, name, strlen(name)));
}

typedef struct TaskOwnerArgs
{
	PlanValue	task_id;
} TaskOwnerArgs;

typedef struct TaskOwnerRow
{
	PlanValue	owner;			/* a role_ref */
} TaskOwnerRow;

static const PlanField task_owner_params[] = {
	PLAN_PARAM(TaskOwnerArgs, task_id, TEXTOID),
};
static const PlanField task_owner_columns[] = {
	PLAN_COLUMN(TaskOwnerRow, owner),
};
static NamedPlan task_owner_plan = {
	.sql = "SELECT owner FROM taskorch.task WHERE id = :task_id",
	PLAN_PARAMS(task_owner_params), PLAN_COLUMNS(task_owner_columns)
};

/*
 * ERROR: the owner of task `task` does not exist: the data was restored
 * into a cluster without the role, or the role was dropped.  The message
 * names the role, read from the task's row, and says what fixes it.
 */
void
task_owner_missing(const char *task)
{
	TaskOwnerArgs args = {pv_text(task)};
	MemoryContext caller = CurrentMemoryContext;
	char	   *role = NULL;
	bool		dropped = false;

	SPI_connect();
	if (taskorch_execute_args(&task_owner_plan, &args, true, 1) == 1)
	{
		TaskOwnerRow row;
		Datum		d;
		const char *name;
		int			len;
		MemoryContext old;

		taskorch_read_row(&task_owner_plan, 0, &row);
		d = row.owner.datum;
		old = MemoryContextSwitchTo(caller);
		dropped = OidIsValid(ref_parts(d, &name, &len));
		role = role_ref_name(d);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	if (role == NULL || role[0] == '\0')
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("the owner of task \"%s\" does not exist", task),
				errdetail("Its role was dropped before taskorch kept the names of roles."),
				errhint("Unregister the task and register it again as an existing role."));
	if (dropped)
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("role \"%s\", the owner of task \"%s\", does not exist", role, task),
				errdetail("The role was dropped; a role created later under its name does not take over its tasks."),
				errhint("Unregister the task and register it again as an existing role."));
	ereport(ERROR,
			errcode(ERRCODE_UNDEFINED_OBJECT),
			errmsg("role \"%s\", the owner of task \"%s\", does not exist", role, task),
			errdetail("The task was restored into a cluster without this role; its runs execute as their owner and as no other role."),
			errhint("Create the role (CREATE ROLE %s; pg_dumpall --roles-only dumps the roles of a cluster), "
					"or unregister the task and register it again as an existing role.",
					quote_identifier(role)));
}
