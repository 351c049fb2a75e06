/*-------------------------------------------------------------------------
 *
 * execute.c
 *	  One attempt of one run: switch to the task owner's role, call the
 *	  task function in a subtransaction, bound it by max_duration, and
 *	  capture what it returned or raised.
 *
 * Invariants:
 *	- The run row is locked and later updated by the top-level transaction;
 *	  only the task function runs inside the subtransaction.
 *	- The function runs as the task owner with SECURITY_LOCAL_USERID_CHANGE
 *	  (SET ROLE / SET SESSION AUTHORIZATION are refused, so task code cannot
 *	  climb back to the worker's superuser) and SECURITY_RESTRICTED_OPERATION
 *	  (no temporary objects that would outlive the run in a shared session).
 *	- Whatever GUCs the task sets are rolled back when it returns, so one
 *	  task cannot change search_path (or anything else) under the next.
 *	- On error the subtransaction is rolled back: the task's effects are
 *	  gone, the batch's bookkeeping stays.  The error is copied into the
 *	  batch context before the error state is flushed.
 *	- The function is called in call_cxt, reset after every run: a SQL
 *	  function plans itself anew in each subtransaction, and those plans
 *	  must not pile up until the batch commits.  The output is copied into
 *	  the batch context first.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/acl.h"
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

/*
 * In a worker, query cancels (SIGINT: taskorch.cancel(), or an operator's
 * pg_cancel_backend) are held off except while a task function runs, so
 * they interrupt the task and never the batch's bookkeeping.  A cancel
 * that arrived meanwhile for a run no longer executing is dropped.  The
 * hold count is set, not counted: an ERROR resets it to zero anyway.
 */
static void
allow_cancel(const ClaimedRun *run, bool allow)
{
	if (MySlot < 0)
		return;
	if (allow && QueryCancelPending && !max_duration_fired &&
		!taskorch_cancel_requested(run->id))
		QueryCancelPending = false;
	QueryCancelHoldoffCount = allow ? 0 : 1;
}

/* Errors that make an attempt impossible before the function is called. */
static void
check_runnable(ClaimedRun *run)
{
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(run->owner)))
		task_owner_missing(run->task_id);	/* names the role, says how to fix it */
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

/* Call the task function; returns its jsonb result, or NULL. */
static Jsonb *
call_task(ClaimedRun *run, MemoryContext cxt)
{
	FmgrInfo	flinfo;
	Datum		result;
	Oid			rettype = get_func_rettype(run->fn);

	LOCAL_FCINFO(fcinfo, 1);

	fmgr_info(run->fn, &flinfo);
	InitFunctionCallInfoData(*fcinfo, &flinfo, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = JsonbPGetDatum(run->payload);
	fcinfo->args[0].isnull = false;
	result = FunctionCallInvoke(fcinfo);
	if (fcinfo->isnull || rettype != JSONBOID)
		return NULL;
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);
		Jsonb	   *copy = DatumGetJsonbPCopy(result);

		MemoryContextSwitchTo(old);
		return copy;
	}
}

void
execute_run(ClaimedRun *run, MemoryContext cxt)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	Oid			save_uid;
	int			save_sec;

	if (max_duration_timeout == MAX_TIMEOUTS)
		max_duration_timeout = RegisterTimeout(USER_TIMEOUT, max_duration_handler);
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
	run->wait_kind = NULL;
	run->wait_token = NULL;
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
	taskorch_set_executing(run);
	crash_note_run(run);
	SetCurrentStatementStartTimestamp();
	GetUserIdAndSecContext(&save_uid, &save_sec);
	BeginInternalSubTransaction(NULL);
	/* what the call allocates (a SQL function's plans, say) dies with the run */
	MemoryContextSwitchTo(call_cxt);
	PG_TRY();
	{
		int			save_nestlevel;

		check_runnable(run);
		SetUserIdAndSecContext(run->owner, save_sec |
							   SECURITY_LOCAL_USERID_CHANGE |
							   SECURITY_RESTRICTED_OPERATION);
		save_nestlevel = NewGUCNestLevel();
		logs_run(run, cxt);
		max_duration_fired = false;
		if (run->max_duration_ms > 0)
			enable_timeout_after(max_duration_timeout, run->max_duration_ms);
		PushActiveSnapshot(GetTransactionSnapshot());

		allow_cancel(run, true);
		run->output = call_task(run, cxt);
		allow_cancel(run, false);
		if (run->output_schema && !is_failed_result(run->output))
			schema_validate(run->output_schema,
							run->output ? run->output : jsonb_from_cstring("null"),
							"output", run->task_id);

		PopActiveSnapshot();
		if (run->max_duration_ms > 0)
			disable_timeout(max_duration_timeout, false);
		if (max_duration_fired)
		{
			/* it fired after the function returned: the run made it */
			QueryCancelPending = false;
			max_duration_fired = false;
		}
		logs_run(NULL, NULL);
		AtEOXact_GUC(false, save_nestlevel);
		SetUserIdAndSecContext(save_uid, save_sec);
		ReleaseCurrentSubTransaction();
		run->succeeded = true;
	}
	PG_CATCH();
	{
		if (run->max_duration_ms > 0)
			disable_timeout(max_duration_timeout, false);
		allow_cancel(run, false);
		logs_run(NULL, NULL);
		run->canceled = taskorch_cancel_requested(run->id);
		run->timed_out = max_duration_fired && !run->canceled;
		max_duration_fired = false;
		MemoryContextSwitchTo(cxt);
		run->edata = CopyErrorData();
		FlushErrorState();
		run->suspended = run->edata->sqlerrcode == TASKORCH_SQLSTATE_WAIT &&
			run->wait_kind != NULL && !run->canceled && !run->timed_out;
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(call_cxt);
	CurrentResourceOwner = oldowner;
	running = NULL;
	crash_note_run(NULL);
	taskorch_set_executing(NULL);
	run->finished_at = GetCurrentTimestamp();
}

/*
 * Call fn(run, arg) in a subtransaction of the batch, as the run's task
 * owner: for what a run sets off once its attempt is over (the children of
 * its wait, its hooks).  On an error the subtransaction is rolled back and
 * false returned, the error kept in *edata (in the run's context).
 */
bool
execute_as_owner(ClaimedRun *run, void (*fn) (ClaimedRun *run, void *arg), void *arg,
				 ErrorData **edata)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	Oid			save_uid;
	int			save_sec;
	volatile bool ok = true;

	GetUserIdAndSecContext(&save_uid, &save_sec);
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(run->cxt);
	PG_TRY();
	{
		SetUserIdAndSecContext(run->owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
		fn(run, arg);
		SetUserIdAndSecContext(save_uid, save_sec);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(run->cxt);
		*edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	CurrentResourceOwner = oldowner;
	return ok;
}
