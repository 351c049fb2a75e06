/*-------------------------------------------------------------------------
 *
 * execute.c
 *	  Running user code in a worker: one attempt of one run (its task
 *	  function, then its output schema check), and what a run sets off
 *	  once its attempt is over (the items query and children of a wait,
 *	  its hooks).
 *
 * Every piece of user code the engine runs goes through call_as_owner(),
 * the one place that sets up and tears down its environment:
 *
 *	- a subtransaction of the batch: an error rolls back the code's
 *	  effects, never the batch's bookkeeping;
 *	- the owner's role, as a security-restricted operation with a local
 *	  user id change (SetUserIdAndSecContext): SET ROLE, RESET ROLE and
 *	  SET SESSION AUTHORIZATION are refused, so the code cannot climb back
 *	  to the worker's superuser; and PostgreSQL refuses what would outlive
 *	  it in the worker's session: temporary tables, LISTEN, PREPARE,
 *	  cursors WITH HOLD;
 *	- its own GUC nest level, rolled back when it returns, so nothing it
 *	  sets (search_path above all) reaches the next run;
 *	- no temporary objects: besides what a security-restricted operation
 *	  refuses, a temporary function (or any object in pg_temp) fails the
 *	  call;
 *	- session-level advisory locks it took released when its batch ends
 *	  (worker.c);
 *	- bounded by the run's max_duration and by statement_timeout, and
 *	  interruptible by taskorch.cancel() (query cancels are held off
 *	  everywhere else in a worker, so that they never hit the batch's
 *	  bookkeeping: worker_hold_cancels);
 *	- noted in the worker's crash note (crash.c), so that a run whose code
 *	  kills the worker is charged an attempt.
 *
 * docs/security.md lists these places and the rule.
 *
 * Invariants:
 *	- The run row is locked and later updated by the top-level transaction;
 *	  only user code runs inside the subtransaction.
 *	- Errors are copied into the run's (batch) context before the error
 *	  state is flushed.
 *	- The task function is called in call_cxt, reset after every run: a SQL
 *	  function called through fmgr plans itself anew in each
 *	  subtransaction, and those plans must not pile up until the batch
 *	  commits (a plain one keeps its plans: sql_task.c).  The output is
 *	  copied into the batch context first.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "access/detoast.h"
#include "access/genam.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

static ClaimedRun *running = NULL;
static MemoryContext call_cxt = NULL;	/* the task call's memory, reset per run */
static volatile sig_atomic_t max_duration_fired = false;
static TimeoutId max_duration_timeout = MAX_TIMEOUTS;

static void
max_duration_handler(void)
{
	max_duration_fired = true;
	QueryCancelPending = true;
	InterruptPending = true;
	SetLatch(MyLatch);
}

/* The run this backend is executing, or NULL. */
ClaimedRun *
current_run(void)
{
	return running;
}

/* The top of the run's tree of runs: a run its own tree's top, or its root. */
const char *
run_root(const ClaimedRun *run)
{
	return run->root_run_id ? run->root_run_id : run->id;
}

/*
 * The run whose task calls `function` (a SQL function that only makes
 * sense inside a task: a wait, the run's metadata, its logs); outside a
 * task, an error that says so, with `hint` saying what to use instead.
 */
ClaimedRun *
run_in_task(const char *function, const char *hint)
{
	if (running == NULL)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("%s can only be called inside a task", function),
				errhint("%s", hint));
	return running;
}

/*
 * Query cancels in a worker (SIGINT: taskorch.cancel(), an operator's
 * pg_cancel_backend, statement_timeout) interrupt user code only, never the
 * batch's bookkeeping.  The worker holds them off from its start
 * (worker_hold_cancels); call_as_owner() lifts the hold around user code
 * (allow_cancels) and takes it again after, with PostgreSQL's own
 * HOLD_/RESUME_CANCEL_INTERRUPTS.  They balance on every path, with one
 * rule PostgreSQL sets: an ERROR resets the holdoff count to zero
 * (errfinish), so after catching one (call_as_owner's PG_CATCH, a failed
 * batch in worker.c) the hold is taken afresh.  The count is therefore 1
 * in a worker except while user code runs, where it is 0.  In a session
 * (run_pending) cancels are the session's own and left alone.
 */
void
worker_hold_cancels(void)
{
	if (MySlot < 0)
		return;
	Assert(QueryCancelHoldoffCount == 0);
	HOLD_CANCEL_INTERRUPTS();
}

/*
 * User code of `run` is about to run: let cancels through.  A cancel that
 * arrived meanwhile for a run no longer executing is dropped.
 */
static void
allow_cancels(const ClaimedRun *run)
{
	if (MySlot < 0)
		return;
	if (QueryCancelPending && !max_duration_fired &&
		!taskorch_cancel_requested(run->id))
		QueryCancelPending = false;
	Assert(QueryCancelHoldoffCount == 1);
	RESUME_CANCEL_INTERRUPTS();
}

/*
 * The bounds of user code: the run's max_duration (TIMED_OUT, no retry)
 * and, in a worker, the statement_timeout in effect there (an ordinary
 * error, SQLSTATE 57014, as for any statement; run_pending() is bounded by
 * its caller's own statement timeout instead).
 */
static bool statement_timer = false;	/* armed by bounds_start() */

static void
bounds_start(const ClaimedRun *run)
{
	if (max_duration_timeout == MAX_TIMEOUTS)
		max_duration_timeout = RegisterTimeout(USER_TIMEOUT, max_duration_handler);
	max_duration_fired = false;
	if (run->max_duration_ms > 0)
		enable_timeout_after(max_duration_timeout, run->max_duration_ms);
	statement_timer = MySlot >= 0 && StatementTimeout > 0;
	if (statement_timer)
		enable_timeout_after(STATEMENT_TIMEOUT, StatementTimeout);
}

/* Stop the timers; one that fired after the code returned is forgotten. */
static void
bounds_end(const ClaimedRun *run, bool returned)
{
	bool		statement_fired = false;

	if (run->max_duration_ms > 0)
		disable_timeout(max_duration_timeout, false);
	if (statement_timer)
	{
		statement_fired = get_timeout_indicator(STATEMENT_TIMEOUT, true);
		disable_timeout(STATEMENT_TIMEOUT, false);
		statement_timer = false;
	}
	if (returned && (max_duration_fired || statement_fired))
		QueryCancelPending = false;
	if (returned)
		max_duration_fired = false;
}

/* ---------------------------------------------------------------------
 * The owner's environment
 * ---------------------------------------------------------------------
 */

typedef struct OwnerScope
{
	bool		active;
	Oid			save_uid;
	int			save_sec;
	int			nestlevel;
	Oid			temp_nsp;		/* the session's temporary schema, if any */
	int64		temp_objects;	/* objects in it before the code ran */
} OwnerScope;

/* One at a time: user code never calls back into call_as_owner(). */
static OwnerScope scope;

/* How many objects schema nsp holds (each depends on its schema). */
static int64
objects_in_schema(Oid nsp)
{
	Relation	rel = table_open(DependRelationId, AccessShareLock);
	ScanKeyData key[2];
	SysScanDesc scan;
	int64		n = 0;

	ScanKeyInit(&key[0], Anum_pg_depend_refclassid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(NamespaceRelationId));
	ScanKeyInit(&key[1], Anum_pg_depend_refobjid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(nsp));
	scan = systable_beginscan(rel, DependReferenceIndexId, true, NULL, 2, key);
	while (HeapTupleIsValid(systable_getnext(scan)))
		n++;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return n;
}

static void
owner_scope_enter(Oid owner)
{
	Oid			temp_toast_nsp;

	Assert(!scope.active);
	GetUserIdAndSecContext(&scope.save_uid, &scope.save_sec);
	/* a worker never has one; run_pending() may run in a session that has */
	GetTempNamespaceState(&scope.temp_nsp, &temp_toast_nsp);
	if (OidIsValid(scope.temp_nsp))
		scope.temp_objects = objects_in_schema(scope.temp_nsp);
	scope.active = true;
	SetUserIdAndSecContext(owner, scope.save_sec |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	scope.nestlevel = NewGUCNestLevel();
}

/*
 * The code returned: refuse what it left that would outlive it, while its
 * subtransaction can still undo it.  A security-restricted operation
 * refuses temporary tables, but not every temporary object (a function in
 * pg_temp, say): the code made one if the session now has a temporary
 * schema it did not have, or more objects in the one it had.
 */
static void
owner_scope_check(void)
{
	Oid			temp_nsp;
	Oid			temp_toast_nsp;

	GetTempNamespaceState(&temp_nsp, &temp_toast_nsp);
	if (!OidIsValid(temp_nsp))
		return;
	if (OidIsValid(scope.temp_nsp))
	{
		CommandCounterIncrement();
		if (objects_in_schema(temp_nsp) <= scope.temp_objects)
			return;
	}
	ereport(ERROR,
			errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			errmsg("cannot create temporary objects within a task"),
			errdetail("They would outlive the run in the worker's session, where other roles' runs execute."),
			errhint("Use a regular table, or a common table expression."));
}

/*
 * Back to the worker's environment.  returned: the code returned (its
 * settings are rolled back here); otherwise its subtransaction was rolled
 * back, which already undid its settings and user id.
 */
static void
owner_scope_exit(bool returned)
{
	if (!scope.active)
		return;
	if (returned)
		AtEOXact_GUC(false, scope.nestlevel);
	SetUserIdAndSecContext(scope.save_uid, scope.save_sec);
	scope.active = false;
}

/* Errors that make an attempt impossible before the function is called. */
static void
check_runnable(ClaimedRun *run)
{
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(run->owner)))
		task_owner_missing(run->task_id);	/* names the role, says how to fix it */
	if (!OidIsValid(run->fn))
		return;					/* an external task's hook: no function of its own */
	if (!SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(run->fn)))
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_FUNCTION),
				errmsg("the function of task \"%s\" no longer exists", run->task_id),
				errhint("Register the task again with an existing function."));
	if (pg_proc_aclcheck(run->fn, run->owner, ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("permission denied for function %s of task \"%s\"",
					   format_procedure(run->fn), run->task_id),
				errdetail("The task owner %s may no longer execute it.",
						  GetUserNameFromId(run->owner, false)),
				errhint("Grant EXECUTE on the function to the task owner."));
}

/*
 * Call the task function; returns its jsonb result (copied into cxt), or
 * NULL.  A result larger than taskorch.max_payload_size is refused: the
 * batch keeps every output until it commits.
 */
static Jsonb *
call_task(ClaimedRun *run, MemoryContext cxt)
{
	FmgrInfo	flinfo;
	Datum		result;
	bool		isnull;
	Oid			rettype = get_func_rettype(run->fn);

	LOCAL_FCINFO(fcinfo, 1);

	if (!sql_task_call(run->fn, run->payload, &result, &isnull))
	{
		fmgr_info(run->fn, &flinfo);
		InitFunctionCallInfoData(*fcinfo, &flinfo, 1, InvalidOid, NULL, NULL);
		fcinfo->args[0].value = JsonbPGetDatum(run->payload);
		fcinfo->args[0].isnull = false;
		result = FunctionCallInvoke(fcinfo);
		isnull = fcinfo->isnull;
	}
	if (isnull || rettype != JSONBOID)
		return NULL;
	if (toast_raw_datum_size(result) > (Size) taskorch_max_payload_bytes)
		ereport(ERROR,
				errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("output of task \"%s\" is %zu bytes, more than taskorch.max_payload_size (%d bytes)",
					   run->task_id, toast_raw_datum_size(result), taskorch_max_payload_bytes),
				errhint("Keep large results in a table and return their key."));
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);
		Jsonb	   *copy = DatumGetJsonbPCopy(result);

		MemoryContextSwitchTo(old);
		return copy;
	}
}

/* What became of a call_as_owner(). */
typedef struct OwnerCall
{
	bool		returned;		/* fn returned; else edata holds its error */
	bool		canceled;		/* interrupted by taskorch.cancel() */
	bool		timed_out;		/* interrupted by max_duration */
	ErrorData  *edata;
} OwnerCall;

/*
 * Call fn(run, arg) as user code of the run (see the file header), in a
 * subtransaction of the batch.  Allocations outside fn's own contexts go
 * to `cxt`; the error, if any, is copied to the run's context.
 */
static void
call_as_owner(ClaimedRun *run, void (*fn) (ClaimedRun *run, void *arg), void *arg,
			  MemoryContext cxt, OwnerCall *call)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;

	memset(call, 0, sizeof(OwnerCall));
	taskorch_set_executing(run);
	crash_note_run(run);
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		check_runnable(run);
		owner_scope_enter(run->owner);
		bounds_start(run);
		PushActiveSnapshot(GetTransactionSnapshot());
		allow_cancels(run);
		fn(run, arg);
		/*
		 * its max_duration interrupted it (the cancel was delivered, not
		 * still pending) and it caught the error and went on: it timed
		 * out all the same, and what it did after is rolled back
		 */
		if (max_duration_fired && !QueryCancelPending)
			ereport(ERROR,
					errcode(ERRCODE_QUERY_CANCELED),
					errmsg("run %s went on past its max_duration of %d ms after catching its interruption",
						   run->id, run->max_duration_ms),
					errhint("Do not catch SQLSTATE 57014 in task code, or give the task a longer max_duration."));
		owner_scope_check();
		worker_hold_cancels();
		PopActiveSnapshot();
		bounds_end(run, true);
		owner_scope_exit(true);
		ReleaseCurrentSubTransaction();
		call->returned = true;
	}
	PG_CATCH();
	{
		bounds_end(run, false);
		worker_hold_cancels();	/* the ERROR reset the count to zero */
		call->canceled = taskorch_cancel_requested(run->id);
		call->timed_out = max_duration_fired && !call->canceled;
		max_duration_fired = false;
		MemoryContextSwitchTo(run->cxt);
		call->edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		owner_scope_exit(false);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	CurrentResourceOwner = oldowner;
	crash_note_run(NULL);
	taskorch_set_executing(NULL);
}

/* The attempt itself: the task function, then its output schema. */
static void
attempt_fn(ClaimedRun *run, void *arg)
{
	logs_run(run, run->cxt);
	run->output = call_task(run, run->cxt);
	logs_run(NULL, NULL);
	if (run->wait_kind != NULL)
		/* it caught the error of a wait and went on: the run waits anyway */
		ereport(ERROR,
				errcode(TASKORCH_SQLSTATE_WAIT),
				errmsg("run %s is waiting (task \"%s\" caught the error of its wait %d)",
					   run->id, run->task_id, run->wait_seq),
				errhint("Do not catch SQLSTATE TOWAI in task code: what the task did after catching it is rolled back."));
	if (run->output_schema && !is_failed_result(run->output))
		schema_validate(run->output_schema,
						run->output ? run->output : jsonb_from_cstring("null"),
						"output", run->task_id);
}

void
execute_run(ClaimedRun *run, MemoryContext cxt)
{
	OwnerCall	call;

	if (call_cxt == NULL)
		call_cxt = AllocSetContextCreate(TopMemoryContext, "taskorch task call",
										 ALLOCSET_DEFAULT_SIZES);

	run->started_at = GetCurrentTimestamp();
	run->succeeded = false;
	run->timed_out = false;
	run->canceled = false;
	run->suspended = false;
	run->wait_calls = 0;
	run->memo_loaded = false;
	run->replay_error = NULL;
	run->wait_kind = NULL;
	run->wait_token = NULL;
	run->wait_target = NULL;
	run->wait_key = NULL;
	run->wait_state = NULL;
	run->new_tokens = NIL;
	run->wait_children = NULL;
	run->wait_children_ids = NULL;
	run->output = NULL;
	run->edata = NULL;
	run->expired = run->expires_at != 0 && run->started_at >= run->expires_at;
	if (!run->task_found || run->expired)
	{
		run->finished_at = run->started_at;
		return;
	}

	run->cxt = cxt;
	running = run;
	SetCurrentStatementStartTimestamp();
	/* what the call allocates (a SQL function's plans, say) dies with the run */
	call_as_owner(run, attempt_fn, NULL, call_cxt, &call);
	logs_run(NULL, NULL);
	MemoryContextReset(call_cxt);
	running = NULL;
	run->succeeded = call.returned;
	run->canceled = call.canceled;
	run->timed_out = call.timed_out;
	run->edata = call.edata;
	run->suspended = call.edata != NULL &&
		call.edata->sqlerrcode == TASKORCH_SQLSTATE_WAIT &&
		run->wait_kind != NULL && !run->canceled && !run->timed_out &&
		run->replay_error == NULL;
	run->finished_at = GetCurrentTimestamp();
}

/*
 * Call fn(run, arg) as user code of the run once its attempt is over:
 * what the run sets off (the items and children of its wait, its hooks).
 * On an error false is returned, the error kept in *edata (in the run's
 * context); a cancel or max_duration interrupting it marks the run so.
 */
bool
execute_as_owner(ClaimedRun *run, void (*fn) (ClaimedRun *run, void *arg), void *arg,
				 ErrorData **edata)
{
	OwnerCall	call;

	call_as_owner(run, fn, arg, run->cxt, &call);
	if (call.returned)
		return true;
	*edata = call.edata;
	run->canceled |= call.canceled;
	run->timed_out |= call.timed_out;
	return false;
}
