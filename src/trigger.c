/*-------------------------------------------------------------------------
 *
 * trigger.c
 *	  taskorch.trigger(): checks a trigger request, inserts the run in the
 *	  caller's transaction, and wakes a worker when that transaction commits.
 *
 * Transactional enqueue: the run row is written by the caller's own
 * transaction, so a rolled-back trigger leaves nothing and a committed one
 * is durable with the caller's other writes.  Workers cannot see the run
 * before the commit, so the wake-up is sent from the commit callback, not
 * at insert time.
 *
 * Privilege: the caller may trigger a task when it has the privileges of
 * the task's owner, of a role the owner granted it to (grant_trigger), or
 * of taskorch_admin.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(taskorch_trigger);
PG_FUNCTION_INFO_V1(taskorch_wake_launcher_sql);

static bool wake_at_commit = false;
static bool installed_at_commit = false;

static TaskorchPlan task_plan = {
	"SELECT owner::oid, queue, max_attempts, triggerers::oid[]"
	"  FROM taskorch.task WHERE id = $1",
	1, {TEXTOID},
	NULL
};

static TaskorchPlan insert_plan = {
	"INSERT INTO taskorch.run (task_id, payload, max_attempts, queue, owner,"
	"                          triggered_by, run_at, created_at)"
	" VALUES ($1, $2, $3, $4, $5::regrole, $6::regrole, $7, $7)"
	" RETURNING id",
	7, {TEXTOID, JSONBOID, INT4OID, TEXTOID, OIDOID, OIDOID, TIMESTAMPTZOID},
	NULL
};

static void
xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wake_at_commit)
				taskorch_wake_database(MyDatabaseId);
			if (installed_at_commit)
				taskorch_database_installed(MyDatabaseId);
			wake_at_commit = installed_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			/* a prepared trigger is found by the workers' idle poll */
			wake_at_commit = installed_at_commit = false;
			break;
		default:
			break;
	}
}

void
taskorch_xact_callback_init(void)
{
	RegisterXactCallback(xact_callback, NULL);
}

/* Does the current user hold `role`'s privileges, or one of `roles`? */
static bool
may_trigger(Oid owner, ArrayType *triggerers)
{
	Oid			me = GetUserId();
	Oid			admin = get_role_oid("taskorch_admin", true);
	Datum	   *roles;
	int			n;

	if (has_privs_of_role(me, owner) ||
		(OidIsValid(admin) && has_privs_of_role(me, admin)))
		return true;
	deconstruct_array(triggerers, OIDOID, sizeof(Oid), true, TYPALIGN_INT,
					  &roles, NULL, &n);
	for (int i = 0; i < n; i++)
		if (has_privs_of_role(me, DatumGetObjectId(roles[i])))
			return true;
	return false;
}

static void
check_payload(Jsonb *payload)
{
	if (!JB_ROOT_IS_OBJECT(payload))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("payload must be a JSON object, not %s",
					   TextDatumGetCString(DirectFunctionCall1(jsonb_typeof,
															   JsonbPGetDatum(payload)))),
				errhint("Wrap the value in an object, e.g. {\"value\": ...}."));
	if (VARSIZE(payload) > (Size) taskorch_max_payload_bytes)
		ereport(ERROR,
				errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("payload of %zu bytes exceeds the limit of %d bytes",
					   (Size) VARSIZE(payload), taskorch_max_payload_bytes),
				errhint("Store large data in a table and pass its key; the limit is taskorch.max_payload_size."));
}

/*
 * SQL: taskorch.trigger(task text, payload jsonb DEFAULT '{}') -> run id
 */
Datum
taskorch_trigger(PG_FUNCTION_ARGS)
{
	char	   *task;
	Jsonb	   *payload;
	Datum		values[7];
	bool		isnull;
	Oid			owner;
	Datum		run_id;
	HeapTuple	tup;
	TupleDesc	desc;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("task must not be null"),
				errhint("Pass the id of a registered task; see taskorch.tasks."));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("payload must not be null"),
				errhint("Pass '{}' for an empty payload."));
	task = text_to_cstring(PG_GETARG_TEXT_PP(0));
	payload = PG_GETARG_JSONB_P(1);
	check_payload(payload);

	SPI_connect();
	values[0] = CStringGetTextDatum(task);
	if (taskorch_execute_as_owner(&task_plan, values, NULL, true, 1) == 0)
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("task \"%s\" is not registered", task),
				errhint("Register it with taskorch.register_task(); taskorch.tasks lists the registered tasks."));
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	owner = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
	if (!may_trigger(owner, DatumGetArrayTypeP(SPI_getbinval(tup, desc, 4, &isnull))))
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("permission denied to trigger task \"%s\"", task),
				errdetail("The task is owned by role %s.", GetUserNameFromId(owner, false)),
				errhint("Its owner can allow you with taskorch.grant_trigger('%s', <role>).", task));

	values[1] = JsonbPGetDatum(payload);
	values[2] = SPI_getbinval(tup, desc, 3, &isnull);
	values[3] = SPI_getbinval(tup, desc, 2, &isnull);
	values[4] = ObjectIdGetDatum(owner);
	values[5] = ObjectIdGetDatum(GetUserId());
	values[6] = TimestampTzGetDatum(GetCurrentTimestamp());
	taskorch_execute_as_owner(&insert_plan, values, NULL, false, 1);
	/* copied into the caller's context; returned as is (it may be short-header) */
	run_id = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 1, &isnull),
							   false, -1);
	SPI_finish();

	wake_at_commit = true;
	PG_RETURN_DATUM(run_id);
}

/*
 * SQL: taskorch._wake_launcher(), run by the install script: once this
 * transaction commits, the launcher starts this database's workers.
 */
Datum
taskorch_wake_launcher_sql(PG_FUNCTION_ARGS)
{
	installed_at_commit = true;
	PG_RETURN_VOID();
}
