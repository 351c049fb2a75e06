/*-------------------------------------------------------------------------
 *
 * spi_util.c
 *	  How taskorch's C code runs its own SQL: plans prepared once per
 *	  backend and kept, parsed and executed under a search path of
 *	  pg_catalog alone, and executed as the extension owner.
 *
 * Pinning: a saved plan remembers the search path it was analysed under
 * and is re-analysed whenever the current one differs.  Pushing the same
 * override path around both preparation and execution keeps the plan
 * valid whatever the caller's search_path, and keeps a caller's objects
 * (an operator in a schema of theirs, say) out of our statements.
 *
 * Elevation: the caller's privileges were checked by the C function that
 * calls in here; the statement itself runs with the user id switched to
 * the owner of the extension's tables (SECURITY_LOCAL_USERID_CHANGE, so
 * nothing inside can SET ROLE back).  An error restores the user id with
 * the (sub)transaction abort.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

static OverrideSearchPath *
pinned_path(void)
{
	static OverrideSearchPath path = {NIL, true, false, 0};	/* pg_catalog only */

	return &path;
}

/* The plans this backend prepared, so that they can be made again. */
static List *prepared = NIL;

/* Prepare (once per backend, until taskorch_plans_forget) and return the plan. */
SPIPlanPtr
taskorch_plan(TaskorchPlan *p)
{
	if (p->plan == NULL)
	{
		MemoryContext old;

		SPIPlanPtr	plan;

		PushOverrideSearchPath(pinned_path());
		/* generic plans: replanning per call would cost more than it gains */
		plan = SPI_prepare_cursor(p->sql, p->nargs, p->argtypes,
								  CURSOR_OPT_GENERIC_PLAN);
		PopOverrideSearchPath();
		if (plan == NULL)
			elog(ERROR, "taskorch: SPI_prepare failed (%s) for: %s",
				 SPI_result_code_string(SPI_result), p->sql);
		SPI_keepplan(plan);
		p->plan = plan;
		old = MemoryContextSwitchTo(TopMemoryContext);
		prepared = lappend(prepared, p);
		MemoryContextSwitchTo(old);
	}
	return p->plan;
}

/*
 * Drop every prepared plan: each is prepared again when next used.  A
 * generic plan is costed for the tables as they were when it was made; a
 * worker calls this when the runs table has grown or shrunk a lot since,
 * so that a plan made for an empty table (a sequential scan, say) does not
 * outlive it.
 */
void
taskorch_plans_forget(void)
{
	ListCell   *lc;

	foreach(lc, prepared)
	{
		TaskorchPlan *p = lfirst(lc);

		SPI_freeplan(p->plan);
		p->plan = NULL;
	}
	list_free(prepared);
	prepared = NIL;
}

/* The role that owns taskorch.run, as whom our statements run. */
Oid
taskorch_extension_owner(void)
{
	Oid			nsp = get_namespace_oid("taskorch", false);
	Oid			relid = get_relname_relid("run", nsp);
	HeapTuple	tup;
	Oid			owner;

	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "taskorch: cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

static int
execute(TaskorchPlan *p, Datum *values, const char *nulls, bool read_only,
		bool latest, long count)
{
	SPIPlanPtr	plan = taskorch_plan(p);
	Oid			save_uid;
	int			save_sec;
	int			rc;

	GetUserIdAndSecContext(&save_uid, &save_sec);
	SetUserIdAndSecContext(taskorch_extension_owner(),
						   save_sec | SECURITY_LOCAL_USERID_CHANGE);
	PushOverrideSearchPath(pinned_path());
	if (latest)
		rc = SPI_execute_snapshot(plan, values, nulls, GetLatestSnapshot(),
								  InvalidSnapshot, false, false, count);
	else
		rc = SPI_execute_plan(plan, values, nulls, read_only, count);
	PopOverrideSearchPath();
	SetUserIdAndSecContext(save_uid, save_sec);
	if (rc < 0)
		elog(ERROR, "taskorch: SPI_execute_plan failed (%s) for: %s",
			 SPI_result_code_string(rc), p->sql);
	return (int) SPI_processed;
}

/*
 * Execute a kept plan as the extension owner under the pinned search path.
 * Must be called inside SPI_connect.  Returns SPI_processed.
 */
int
taskorch_execute_as_owner(TaskorchPlan *p, Datum *values, const char *nulls,
						  bool read_only, long count)
{
	return execute(p, values, nulls, read_only, false, count);
}

/*
 * The same, reading with a snapshot taken now: it sees what committed
 * after the caller's transaction began (in any isolation level), for
 * checks made under a lock, such as an idempotency key's.
 */
int
taskorch_execute_latest(TaskorchPlan *p, Datum *values, const char *nulls, long count)
{
	return execute(p, values, nulls, false, true, count);
}

Jsonb *
jsonb_from_cstring(const char *s)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s)));
}
