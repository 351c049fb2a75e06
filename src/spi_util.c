/*-------------------------------------------------------------------------
 *
 * spi_util.c
 *	  How taskorch's C code runs its own SQL: plans prepared once per
 *	  backend and kept, parsed and executed under a search path of
 *	  pg_catalog alone, and executed as the extension owner.
 *
 * Pinning: a saved plan remembers the search path it was analysed under
 * and is re-analysed whenever the current one differs.  Pinning the path
 * to pg_catalog around both preparation and execution keeps the plan valid
 * whatever the caller's search_path, and keeps a caller's objects (an
 * operator in a schema of theirs, say) out of our statements.  Before
 * PostgreSQL 17 this is an override search path, pushed and popped at no
 * cost; from 17 on (which removed it), search_path is set to "pg_catalog,
 * pg_temp" (pg_temp last: never searched for functions and operators) in a
 * GUC nest level of its own, rolled back when the statement returns, and
 * by the (sub)transaction abort when it fails.
 *
 * Owner cache: the owner of taskorch.run is looked up once and kept until
 * a catalog invalidation of that relation (ALTER TABLE ... OWNER TO,
 * DROP EXTENSION) or of any schema (the extension's schema renamed or
 * dropped) says it may have changed.  Invalidations are processed when a
 * transaction starts and whenever a lock is taken, as for the catalog
 * caches the lookups went through before.
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
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#define PINNED_SEARCH_PATH "pg_catalog, pg_temp"

#if PG_VERSION_NUM < 170000
/*
 * Before PostgreSQL 17: an override search path (pg_catalog, then nothing:
 * pg_temp is not searched at all) is pushed and popped around each
 * statement, which costs no catalog lookup.  PostgreSQL 17 removed it.
 */
static int
pin_search_path(void)
{
	static OverrideSearchPath path = {NIL, true, false, 0};

	PushOverrideSearchPath(&path);
	return 0;
}

static void
unpin_search_path(int nestlevel)
{
	PopOverrideSearchPath();
}
#else
/*
 * Pin search_path for one of our statements: returns the GUC nest level to
 * give to unpin_search_path(), or -1 when it was already pinned.
 */
static int
pin_search_path(void)
{
	int			nestlevel;

	if (namespace_search_path != NULL &&
		strcmp(namespace_search_path, PINNED_SEARCH_PATH) == 0)
		return -1;
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", PINNED_SEARCH_PATH,
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
}

static void
unpin_search_path(int nestlevel)
{
	if (nestlevel >= 0)
		AtEOXact_GUC(true, nestlevel);
}
#endif

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

		int			nestlevel = pin_search_path();

		/* generic plans: replanning per call would cost more than it gains */
		plan = SPI_prepare_cursor(p->sql, p->nargs, p->argtypes,
								  CURSOR_OPT_GENERIC_PLAN);
		unpin_search_path(nestlevel);
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

/* The owner of taskorch.run, while no invalidation has said otherwise */
static Oid	owner_cached = InvalidOid;
static uint32 owner_rel_hash;	/* RELOID hash value of taskorch.run */

static void
owner_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	if (cacheid != RELOID || hashvalue == 0 || hashvalue == owner_rel_hash)
		owner_cached = InvalidOid;
}

/* The role that owns taskorch.run, as whom our statements run. */
Oid
taskorch_extension_owner(void)
{
	static bool callbacks = false;
	Oid			nsp;
	Oid			relid;
	HeapTuple	tup;
	Oid			owner;

	if (OidIsValid(owner_cached))
		return owner_cached;
	if (!callbacks)
	{
		CacheRegisterSyscacheCallback(RELOID, owner_invalidate, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, owner_invalidate, (Datum) 0);
		callbacks = true;
	}
	nsp = get_namespace_oid("taskorch", false);
	relid = get_relname_relid("run", nsp);
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "taskorch: cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	owner_rel_hash = GetSysCacheHashValue1(RELOID, ObjectIdGetDatum(relid));
	owner_cached = owner;
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
	int			nestlevel;

	GetUserIdAndSecContext(&save_uid, &save_sec);
	SetUserIdAndSecContext(taskorch_extension_owner(),
						   save_sec | SECURITY_LOCAL_USERID_CHANGE);
	nestlevel = pin_search_path();
	if (latest)
		rc = SPI_execute_snapshot(plan, values, nulls, GetLatestSnapshot(),
								  InvalidSnapshot, false, false, count);
	else
		rc = SPI_execute_plan(plan, values, nulls, read_only, count);
	unpin_search_path(nestlevel);
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
