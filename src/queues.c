/*-------------------------------------------------------------------------
 *
 * queues.c
 *	  Queues: create_queue(), alter_queue(), pause_queue(), resume_queue(),
 *	  drop_queue().
 *
 * A run belongs to a queue: its task's (the task id, unless registered
 * with another), or the one trigger() named.  A queue without a row in
 * taskorch.queue has no limit and is never paused.  A queue's
 * concurrency_limit caps the runs executing at once, per concurrency key
 * when runs carry one (concurrency.c enforces it); a paused queue's runs
 * stay QUEUED until it is resumed.
 *
 * Any role may create a queue; its owner (or a member, or taskorch_admin)
 * may change or drop it.  Checks run as the caller, writes as the
 * extension owner.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(taskorch_create_queue);
PG_FUNCTION_INFO_V1(taskorch_alter_queue);
PG_FUNCTION_INFO_V1(taskorch_pause_queue);
PG_FUNCTION_INFO_V1(taskorch_drop_queue);

static TaskorchPlan create_plan = {
	"INSERT INTO taskorch.queue (name, concurrency_limit, owner)"
	" VALUES ($1, $2, $3::regrole) ON CONFLICT (name) DO NOTHING",
	3, {TEXTOID, INT4OID, OIDOID},
	NULL
};

static TaskorchPlan owner_plan = {
	"SELECT owner::oid FROM taskorch.queue WHERE name = $1 FOR UPDATE",
	1, {TEXTOID},
	NULL
};

static TaskorchPlan alter_plan = {
	"UPDATE taskorch.queue SET concurrency_limit = $2, updated_at = now() WHERE name = $1",
	2, {TEXTOID, INT4OID},
	NULL
};

static TaskorchPlan pause_plan = {
	"UPDATE taskorch.queue SET paused = $2, updated_at = now() WHERE name = $1",
	2, {TEXTOID, BOOLOID},
	NULL
};

static TaskorchPlan drop_plan = {
	"DELETE FROM taskorch.queue WHERE name = $1",
	1, {TEXTOID},
	NULL
};

static char *
queue_arg(FunctionCallInfo fcinfo)
{
	char	   *name;

	require_arg(fcinfo, 0, "queue name", "Pass a queue name such as 'paid-users'.");
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	check_name("queue", name);
	return name;
}

/* NULL (unlimited) or a positive limit from argument argno. */
static Datum
limit_arg(FunctionCallInfo fcinfo, int argno, char *null)
{
	int32		limit;

	*null = PG_ARGISNULL(argno) ? 'n' : ' ';
	if (PG_ARGISNULL(argno))
		return (Datum) 0;
	limit = PG_GETARG_INT32(argno);
	if (limit < 1)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("concurrency_limit must be at least 1, not %d", limit),
				errhint("Pass NULL for a queue without a limit, or pause_queue() to stop it."));
	return Int32GetDatum(limit);
}

/* Lock the queue's row and check the caller may change it (inside SPI). */
static void
lock_own_queue(const char *name)
{
	Datum		values[1] = {CStringGetTextDatum(name)};
	Oid			owner;
	bool		isnull;

	if (taskorch_execute_as_owner(&owner_plan, values, NULL, false, 1) == 0)
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("queue \"%s\" does not exist", name),
				errhint("Create it with taskorch.create_queue(); taskorch.queues lists the queues."));
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (!acts_for(owner))
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("permission denied for queue \"%s\"", name),
				errdetail("The queue is owned by role %s.", GetUserNameFromId(owner, false)),
				errhint("Only its owner, a member of its role, or taskorch_admin may change it."));
}

/* SQL: taskorch.create_queue(name, concurrency_limit) -> name */
Datum
taskorch_create_queue(PG_FUNCTION_ARGS)
{
	char	   *name = queue_arg(fcinfo);
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};

	values[0] = CStringGetTextDatum(name);
	values[1] = limit_arg(fcinfo, 1, &nulls[1]);
	values[2] = ObjectIdGetDatum(GetUserId());
	SPI_connect();
	if (taskorch_execute_as_owner(&create_plan, values, nulls, false, 0) == 0)
		ereport(ERROR,
				errcode(ERRCODE_DUPLICATE_OBJECT),
				errmsg("queue \"%s\" already exists", name),
				errhint("Change its limit with taskorch.alter_queue()."));
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(name));
}

/* SQL: taskorch.alter_queue(name, concurrency_limit) */
Datum
taskorch_alter_queue(PG_FUNCTION_ARGS)
{
	char	   *name = queue_arg(fcinfo);
	Datum		values[2];
	char		nulls[2] = {' ', ' '};

	values[0] = CStringGetTextDatum(name);
	values[1] = limit_arg(fcinfo, 1, &nulls[1]);
	SPI_connect();
	lock_own_queue(name);
	taskorch_execute_as_owner(&alter_plan, values, nulls, false, 0);
	SPI_finish();
	taskorch_wake_at_commit();	/* a higher limit may let runs start */
	PG_RETURN_VOID();
}

/* SQL: taskorch.pause_queue(name, paused): pause_queue() and resume_queue() */
Datum
taskorch_pause_queue(PG_FUNCTION_ARGS)
{
	char	   *name = queue_arg(fcinfo);
	Datum		values[2];

	values[0] = CStringGetTextDatum(name);
	values[1] = BoolGetDatum(PG_GETARG_BOOL(1));
	SPI_connect();
	lock_own_queue(name);
	taskorch_execute_as_owner(&pause_plan, values, NULL, false, 0);
	SPI_finish();
	if (!PG_GETARG_BOOL(1))
		taskorch_requeued_at_commit();	/* its runs may lie behind the workers' marks */
	PG_RETURN_VOID();
}

/* SQL: taskorch.drop_queue(name): its runs go on, without limit */
Datum
taskorch_drop_queue(PG_FUNCTION_ARGS)
{
	char	   *name = queue_arg(fcinfo);
	Datum		values[1];

	values[0] = CStringGetTextDatum(name);
	SPI_connect();
	lock_own_queue(name);
	taskorch_execute_as_owner(&drop_plan, values, NULL, false, 0);
	SPI_finish();
	taskorch_requeued_at_commit();
	PG_RETURN_VOID();
}
