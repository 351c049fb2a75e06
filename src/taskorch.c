/*-------------------------------------------------------------------------
 *
 * taskorch.c
 *	  Module initialisation: GUCs, shared memory hooks, the launcher's
 *	  registration, and the utility hook that stops a database's workers
 *	  before commands that need the database, or the extension's objects,
 *	  to themselves.  And whom the current role acts for (taskorch_admin,
 *	  an owner, a run's roles): the C functions the tables' policies call
 *	  for each row a role reads, so that the policies and the C code that
 *	  shows runs (shmem.c) decide alike.
 *
 * taskorch only works when preloaded: the launcher must be registered by
 * the postmaster, and every backend needs the commit-time wake-up and the
 * utility hook.  _PG_init therefore does nothing useful outside
 * shared_preload_libraries, and the install script refuses to run there.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "common/hashfn.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

int			taskorch_workers_per_database = 2;
int			taskorch_max_workers_per_database = 8;
int			taskorch_max_workers = 32;
int			taskorch_batch_size = 256;
int			taskorch_batch_time_budget_ms = 50;
int			taskorch_retention_s = 7 * 24 * 3600;
int			taskorch_max_payload_bytes = 10 * 1024 * 1024;
int			taskorch_idle_poll_ms = 1000;
int			taskorch_max_databases = 64;
int			taskorch_default_ttl_ms = 0;
char	   *taskorch_test_clock = NULL;

static bool preloaded = false;
static bool paused_until_xact_end = false;	/* this database, for extension DDL */
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ProcessUtility_hook_type prev_process_utility_hook = NULL;

void		_PG_init(void);
PG_FUNCTION_INFO_V1(taskorch_require_preload);
PG_FUNCTION_INFO_V1(taskorch_run_visible);
PG_FUNCTION_INFO_V1(taskorch_is_admin);

static void
define_gucs(void)
{
	DefineCustomIntVariable("taskorch.workers_per_database",
							"Background workers that execute runs, per database with the extension.",
							"0 stops execution; runs stay queued.",
							&taskorch_workers_per_database,
							2, 0, TASKORCH_MAX_WORKERS_PER_DATABASE,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("taskorch.max_workers_per_database",
							"Most workers a database's pool grows to while runs are due and every worker is busy.",
							"The pool keeps taskorch.workers_per_database workers, grows up to this by a worker for each busy one that asks, and an extra worker idle for 10 s exits.",
							&taskorch_max_workers_per_database,
							8, 0, TASKORCH_MAX_WORKERS_PER_DATABASE,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("taskorch.max_workers",
							"Most workers of all databases together.",
							"Every database gets its first worker before any gets more; background worker slots (max_worker_processes) bound them too.",
							&taskorch_max_workers,
							32, 0, 4096,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("taskorch.max_databases",
							"Databases the launcher can track.",
							NULL,
							&taskorch_max_databases,
							64, 1, 4096,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("taskorch.batch_size",
							"Most runs a worker executes in one transaction.",
							"Only a backlog fills a batch; a lone run commits at once.",
							&taskorch_batch_size,
							256, 1, TASKORCH_MAX_BATCH,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("taskorch.batch_time_budget",
							"Time after which a worker commits a batch even if runs remain.",
							NULL,
							&taskorch_batch_time_budget_ms,
							50, 1, 60000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("taskorch.max_payload_size",
							"Largest payload trigger() accepts, and largest output a task may return (jsonb binary size).",
							NULL,
							&taskorch_max_payload_bytes,
							10 * 1024 * 1024, 1024, 256 * 1024 * 1024,
							PGC_SUSET, GUC_UNIT_BYTE, NULL, NULL, NULL);
	DefineCustomIntVariable("taskorch.idle_poll_interval",
							"Longest an idle worker sleeps before looking for due runs.",
							"Workers are woken at trigger commit; this only bounds the sleep.",
							&taskorch_idle_poll_ms,
							1000, 10, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("taskorch.retention",
							"How long finished runs are kept (0: for ever), unless their task sets its own.",
							"The workers remove older finished runs, with their attempts and logs (docs/operations.md).",
							&taskorch_retention_s,
							7 * 24 * 3600, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("taskorch.default_ttl",
							"Time to live of runs triggered without a ttl (0: none).",
							"Counts from when the run is queued; an unstarted run past it is EXPIRED.",
							&taskorch_default_ttl_ms,
							0, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomStringVariable("taskorch.test_clock",
							   "For tests only: the time trigger() counts delays and debounces from.",
							   "Empty: the real clock.",
							   &taskorch_test_clock,
							   "",
							   PGC_SUSET, GUC_NOT_IN_SAMPLE, NULL, NULL, NULL);
	MarkGUCPrefixReserved("taskorch");
}

/*
 * Commands that need a database without other sessions (DROP DATABASE,
 * renaming it, moving it, or copying it as a template) would fail while
 * our workers are connected.  Stop them first and let the launcher bring
 * them back once the command is over.  Only for a role that owns the
 * database: anyone may send the command, and it is refused later to those
 * who do not.
 */
static Oid
utility_target_database(Node *stmt)
{
	const char *name = NULL;
	Oid			dboid;

	if (IsA(stmt, DropdbStmt))
		name = ((DropdbStmt *) stmt)->dbname;
	else if (IsA(stmt, RenameStmt) &&
			 ((RenameStmt *) stmt)->renameType == OBJECT_DATABASE)
		name = ((RenameStmt *) stmt)->subname;
	else if (IsA(stmt, AlterDatabaseStmt))
		name = ((AlterDatabaseStmt *) stmt)->dbname;
	else if (IsA(stmt, CreatedbStmt))
	{
		ListCell   *lc;

		foreach(lc, ((CreatedbStmt *) stmt)->options)
		{
			DefElem    *def = lfirst_node(DefElem, lc);

			if (strcmp(def->defname, "template") == 0)
				name = defGetString(def);
		}
		if (name == NULL)
			name = "template1";
	}
	dboid = name ? get_database_oid(name, true) : InvalidOid;
	/* a role the command will refuse stops nothing */
	if (OidIsValid(dboid) && !pg_database_ownercheck(dboid, GetUserId()))
		return InvalidOid;
	return dboid;
}

/*
 * DROP EXTENSION taskorch and ALTER EXTENSION taskorch: the workers read
 * and lock the extension's tables in another order than the command does
 * (which could deadlock), and must not find them gone mid-batch.  The
 * database's workers are stopped before the command and stay stopped
 * until its transaction ends.
 */
static bool
is_extension_ddl(Node *stmt)
{
	if (IsA(stmt, DropStmt) && ((DropStmt *) stmt)->removeType == OBJECT_EXTENSION)
	{
		ListCell   *lc;

		foreach(lc, ((DropStmt *) stmt)->objects)
			if (strcmp(strVal(lfirst(lc)), "taskorch") == 0)
				return true;
		return false;
	}
	if (IsA(stmt, AlterExtensionStmt))
		return strcmp(((AlterExtensionStmt *) stmt)->extname, "taskorch") == 0;
	return false;
}

/* Would the command be allowed to change the extension (its owner)? */
static bool
owns_extension(void)
{
	Oid			ext = get_extension_oid("taskorch", true);

	return OidIsValid(ext) && pg_extension_ownercheck(ext, GetUserId());
}

static void
extension_ddl_xact_callback(XactEvent event, void *arg)
{
	if (!paused_until_xact_end)
		return;
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
	{
		paused_until_xact_end = false;
		/* its external runs are gone or counted anew (concurrency.c) */
		if (event == XACT_EVENT_COMMIT)
		{
			concurrency_forget_database(MyDatabaseId);
			stats_forget_database(MyDatabaseId);
		}
		taskorch_database_pause(MyDatabaseId, false);
	}
}

static void
pause_for_extension_ddl(void)
{
	if (MySlot >= 0 || taskorch_in_task())
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("cannot drop or alter extension taskorch from inside a task"),
				errhint("Run the command in a session of its own."));
	if (paused_until_xact_end)
		return;
	paused_until_xact_end = true;
	taskorch_database_pause(MyDatabaseId, true);
	taskorch_database_wait_stopped(MyDatabaseId);
}

static void
taskorch_process_utility(PlannedStmt *pstmt, const char *queryString,
						 bool readOnlyTree, ProcessUtilityContext context,
						 ParamListInfo params, QueryEnvironment *queryEnv,
						 DestReceiver *dest, QueryCompletion *qc)
{
	Oid			dboid = utility_target_database(pstmt->utilityStmt);

	if (is_extension_ddl(pstmt->utilityStmt) && owns_extension())
		pause_for_extension_ddl();
	if (OidIsValid(dboid))
		taskorch_database_pause(dboid, true);
	PG_TRY();
	{
		if (prev_process_utility_hook)
			prev_process_utility_hook(pstmt, queryString, readOnlyTree, context,
									  params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		if (OidIsValid(dboid))
			taskorch_database_pause(dboid, false);
	}
	PG_END_TRY();
}

static void
shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	taskorch_shmem_request();
}

static void
shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	taskorch_shmem_startup();
}

void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;

	preloaded = true;
	define_gucs();

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shmem_startup;
	prev_process_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = taskorch_process_utility;

	taskorch_xact_callback_init();
	RegisterXactCallback(extension_ddl_xact_callback, NULL);
	logs_init();

	if (!IsBinaryUpgrade)
		taskorch_register_launcher();
}

/*
 * Called by the install script: refuses CREATE EXTENSION when the library
 * was not preloaded, since no worker would ever run a run.
 */
Datum
taskorch_require_preload(PG_FUNCTION_ARGS)
{
	if (!preloaded)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("taskorch must be loaded via \"%s\"", "shared_preload_libraries"),
				errhint("Add taskorch to shared_preload_libraries in postgresql.conf and restart the server."));
	PG_RETURN_VOID();
}

/* Argument argno of a SQL function must not be null: `what` names it. */
void
require_arg(FunctionCallInfo fcinfo, int argno, const char *what, const char *hint)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("%s must not be null", what),
				errhint("%s", hint));
}

/* The first n arguments must not be null: `what` names them together. */
void
require_args(FunctionCallInfo fcinfo, int n, const char *what, const char *hint)
{
	for (int i = 0; i < n; i++)
		require_arg(fcinfo, i, what, hint);
}

/* Has the current user the privileges of taskorch_admin (a superuser has)? */
bool
is_taskorch_admin(void)
{
	Oid			admin = get_role_oid("taskorch_admin", true);

	return superuser() || (OidIsValid(admin) && has_privs_of_role(GetUserId(), admin));
}

/* taskorch.is_admin(), which the policies of the other tables call */
Datum
taskorch_is_admin(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(is_taskorch_admin());
}

/* Has the current user the privileges of `owner`, or of taskorch_admin? */
bool
acts_for(Oid owner)
{
	return has_privs_of_role(GetUserId(), owner) || is_taskorch_admin();
}

/*
 * May the current user see a run of these roles: its owner's or its
 * triggerer's privileges, or taskorch_admin's?  Looks up catalogs: call
 * with no lock held.
 */
bool
run_visible(Oid owner, Oid triggerer)
{
	return has_privs_of_role(GetUserId(), owner) ||
		has_privs_of_role(GetUserId(), triggerer) || is_taskorch_admin();
}

/* taskorch.run_visible(owner, triggered_by): the policy of taskorch.run */
Datum
taskorch_run_visible(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(run_visible(role_ref_oid(PG_GETARG_DATUM(0)), role_ref_oid(PG_GETARG_DATUM(1))));
}

/*
 * Serialize, until the end of the transaction, with the other
 * transactions that lock the same (kind, name): triggers with one
 * idempotency or debounce key, registrations taking one queue name.  The
 * lock is an object lock whose class id is no catalog's, so that no role
 * can take it to block others (an advisory lock anyone can take).
 * Different names may share a lock, which only makes them wait in turn.
 */
void
lock_name(TaskorchLockKind kind, const char *name, size_t len)
{
	LockDatabaseObject(TASKORCH_LOCK_CLASSID, (Oid) hash_bytes((const unsigned char *) name, len),
					   (uint16) kind, ExclusiveLock);
}

/* For the C entry points of SQL definitions an older version had. */
void
schema_older_than_library(void)
{
	ereport(ERROR,
			errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			errmsg("the taskorch extension in this database is older than its library"),
			errhint("Run ALTER EXTENSION taskorch UPDATE."));
}
