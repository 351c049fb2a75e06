/*-------------------------------------------------------------------------
 *
 * manage.c
 *	  Run management: cancel(), reschedule() and replay().
 *
 * Who may manage a run: whoever may see it (the task's owner, the role
 * that triggered it, taskorch_admin).  A run the caller may not see is
 * reported as not existing, as retrieve() does.
 *
 * Cancel of a run a worker is executing interrupts the task (SIGINT to the
 * worker, which records CANCELED); that interruption takes effect even if
 * the canceling transaction rolls back.  A run not yet started, or
 * WAITING, is canceled in the caller's transaction, like any update.  The
 * children a canceled run's waits triggered and that have not finished are
 * canceled with it (and theirs, recursively); a parent waiting for a
 * canceled child gets its Result with ok false.
 *
 * Inside a task, the runs the worker's batch has claimed (the task's own
 * run among them) are not canceled: the batch writes their outcome when it
 * commits, over any status given them meanwhile, so cancel() returns false
 * for them and unregister_task() leaves them out of its count
 * (run_held_by_batch).
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "lib/stringinfo.h"
#include "utils/json.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(taskorch_cancel);
PG_FUNCTION_INFO_V1(taskorch_reschedule);
PG_FUNCTION_INFO_V1(taskorch_replay);

static TaskorchPlan run_plan = {
	"SELECT owner::oid, triggered_by::oid, status::text, task_id, payload,"
	"       queue, concurrency_key, priority, max_attempts,"
	"       (extract(epoch FROM max_duration) * 1000)::int8,"
	"       (extract(epoch FROM ttl) * 1000)::int8, tags, metadata, xmax"
	"  FROM taskorch.run WHERE id = $1",
	1, {TEXTOID},
	NULL
};

static TaskorchPlan cancel_unstarted_plan = {
	"WITH r AS (SELECT id FROM taskorch.run"
	"            WHERE id = $1 AND status IN " SQL_CANCELABLE
	"            FOR UPDATE SKIP LOCKED)"
	" UPDATE taskorch.run SET status = " SQL_STATUS(CANCELED) ", finished_at = now(),"
	"        updated_at = now(), error = '{\"message\": \"run was canceled\"}'"
	"   FROM r WHERE run.id = r.id",
	1, {TEXTOID},
	NULL
};

/* the same, waiting for the worker that holds the run to finish its batch */
static TaskorchPlan cancel_wait_plan = {
	"UPDATE taskorch.run SET status = " SQL_STATUS(CANCELED) ", finished_at = now(),"
	"       updated_at = now(), error = '{\"message\": \"run was canceled\"}'"
	" WHERE id = $1 AND status IN " SQL_CANCELABLE,
	1, {TEXTOID},
	NULL
};

/* the unfinished children the waits of some runs made */
static TaskorchPlan children_plan = {
	"SELECT id, task_id, status::text, xmax FROM taskorch.run"
	" WHERE parent_run_id = ANY ($1) AND status IN " SQL_CANCELABLE,
	1, {TEXTARRAYOID},
	NULL
};

static TaskorchPlan status_plan = {
	"SELECT status::text FROM taskorch.run WHERE id = $1",
	1, {TEXTOID},
	NULL
};

static TaskorchPlan reschedule_plan = {
	"UPDATE taskorch.run SET run_at = $2, delayed_until = $2, updated_at = now()"
	" WHERE id = $1 AND status = " SQL_STATUS(DELAYED),
	2, {TEXTOID, TIMESTAMPTZOID},
	NULL
};

/*
 * Inside a task: does the worker's batch hold the run whose row has this
 * xmax (column xmax of taskorch.run)?  The batch claims its runs FOR UPDATE
 * and writes them at commit, so a run it holds is locked by this very
 * transaction; no one else locks runs but to change them.
 */
bool
run_held_by_batch(TransactionId xmax)
{
	return current_run() != NULL && TransactionIdIsValid(xmax) &&
		TransactionIdIsCurrentTransactionId(xmax);
}

static char *
run_arg(FunctionCallInfo fcinfo)
{
	require_arg(fcinfo, 0, "run", "Pass a run id such as run_123.");
	return text_to_cstring(PG_GETARG_TEXT_PP(0));
}

/*
 * Read the run into SPI_tuptable (inside SPI), checking the caller may see
 * it.  Returns its status.
 */
static char *
lookup_run(const char *run_id)
{
	Datum		values[1] = {CStringGetTextDatum(run_id)};
	bool		isnull;
	bool		visible = false;

	if (taskorch_execute_latest(&run_plan, values, NULL, 1) == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		visible = acts_for(DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull))) ||
			acts_for(DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull)));
	}
	if (!visible)
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("run \"%s\" does not exist", run_id),
				errhint("The run may belong to a role whose runs you cannot see; check taskorch.runs."));
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
}

/* Tell LISTENers on NOTIFY_CHANNEL that the run was canceled. */
static void
notify_canceled(const char *run_id, const char *task)
{
	StringInfoData payload;

	initStringInfo(&payload);
	appendStringInfoString(&payload, "{\"runs\": [{\"id\": ");
	escape_json(&payload, run_id);
	appendStringInfoString(&payload, ", \"task\": ");
	escape_json(&payload, task);
	appendStringInfo(&payload, ", \"status\": \"%s\"}]}", run_status_name(RUN_CANCELED));
	Async_Notify(NOTIFY_CHANNEL, payload.data);
}

/*
 * Cancel a run in `status` whose row has `xmax` (inside SPI): true when it
 * is now CANCELED.
 */
static bool
cancel_one(const char *run_id, const char *status, TransactionId xmax)
{
	Datum		values[1] = {CStringGetTextDatum(run_id)};

	if (run_status_finished(run_status_parse(status)) || run_held_by_batch(xmax))
		return false;
	run_transitions(RUN_SET_CANCELABLE, RUN_CANCELED, BY_MANAGE);
	if (taskorch_execute_as_owner(&cancel_unstarted_plan, values, NULL, false, 0) == 1)
		return true;
	/* a worker holds it: interrupt the task if it is running, then wait */
	(void) taskorch_cancel_executing(run_id);
	if (taskorch_execute_as_owner(&cancel_wait_plan, values, NULL, false, 0) == 1)
		return true;
	return taskorch_execute_latest(&status_plan, values, NULL, 1) == 1 &&
		run_status_parse(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1)) == RUN_CANCELED;
}

/*
 * A canceled run's unfinished children (the runs its waits made) are of no
 * use to anyone: cancel them too, and theirs, a generation at a time, so
 * that a chain of any depth costs no stack (inside SPI).
 */
static void
cancel_descendants(const char *run_id)
{
	Datum		first = CStringGetTextDatum(run_id);
	Datum		parents = PointerGetDatum(construct_array(&first, 1, TEXTOID, -1, false,
														  TYPALIGN_INT));

	for (;;)
	{
		int			n = taskorch_execute_as_owner(&children_plan, &parents, NULL, false, 0);
		char	  **ids = palloc(sizeof(char *) * Max(n, 1));
		char	  **tasks = palloc(sizeof(char *) * Max(n, 1));
		char	  **statuses = palloc(sizeof(char *) * Max(n, 1));
		TransactionId *xmaxes = palloc(sizeof(TransactionId) * Max(n, 1));
		Datum	   *canceled = palloc(sizeof(Datum) * Max(n, 1));
		int			k = 0;

		for (int i = 0; i < n; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;

			ids[i] = SPI_getvalue(tup, desc, 1);
			tasks[i] = SPI_getvalue(tup, desc, 2);
			statuses[i] = SPI_getvalue(tup, desc, 3);
			xmaxes[i] = DatumGetTransactionId(SPI_getbinval(tup, desc, 4, &isnull));
		}
		for (int i = 0; i < n; i++)
		{
			CHECK_FOR_INTERRUPTS();
			if (!cancel_one(ids[i], statuses[i], xmaxes[i]))
				continue;
			notify_canceled(ids[i], tasks[i]);
			canceled[k++] = CStringGetTextDatum(ids[i]);
		}
		if (k == 0)
			return;
		parents = PointerGetDatum(construct_array(canceled, k, TEXTOID, -1, false, TYPALIGN_INT));
	}
}

/*
 * SQL: taskorch.cancel(run) -> true when the run is now CANCELED, false
 * when it had already finished (or, inside a task, when the worker's batch
 * holds it).  Its unfinished descendants are canceled with it.
 */
Datum
taskorch_cancel(PG_FUNCTION_ARGS)
{
	char	   *run_id = run_arg(fcinfo);
	bool		canceled;
	bool		isnull;
	char	   *status;
	char	   *task;
	TransactionId xmax;

	SPI_connect();
	status = lookup_run(run_id);
	task = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4);
	xmax = DatumGetTransactionId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
											   14, &isnull));
	canceled = cancel_one(run_id, status, xmax);
	if (canceled)
	{
		notify_canceled(run_id, task);
		cancel_descendants(run_id);
	}
	SPI_finish();
	PG_RETURN_BOOL(canceled);
}

/*
 * SQL: taskorch.reschedule(run, delay) -> when the DELAYED run is now due.
 */
Datum
taskorch_reschedule(PG_FUNCTION_ARGS)
{
	char	   *run_id = run_arg(fcinfo);
	Datum		values[2];
	char	   *status;
	bool		delayed;
	bool		rescheduled = false;
	TimestampTz due;

	require_arg(fcinfo, 1, "delay", "Pass a duration such as '1h' or a timestamptz.");
	due = delay_from_datum(PG_GETARG_DATUM(1), get_fn_expr_argtype(fcinfo->flinfo, 1),
						   GetCurrentTimestamp());
	SPI_connect();
	status = lookup_run(run_id);
	values[0] = CStringGetTextDatum(run_id);
	values[1] = TimestampTzGetDatum(due);
	delayed = run_status_parse(status) == RUN_DELAYED;
	if (delayed)
	{
		(void) run_transition(RUN_DELAYED, RUN_DELAYED, BY_MANAGE);
		rescheduled = taskorch_execute_as_owner(&reschedule_plan, values, NULL, false, 0) == 1;
		/* it changed since we read it (promoted, canceled): say what it is now */
		if (!rescheduled && taskorch_execute_latest(&status_plan, values, NULL, 1) == 1)
		{
			status = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
			delayed = run_status_parse(status) == RUN_DELAYED;
		}
	}
	if (!rescheduled && delayed)
		ereport(ERROR,
				errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				errmsg("run \"%s\" changed while it was being rescheduled", run_id),
				errhint("Call reschedule() again."));
	if (!rescheduled)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("run \"%s\" is %s, not %s", run_id, status, run_status_name(RUN_DELAYED)),
				errhint("Only a delayed run that has not been queued yet can be rescheduled."));
	SPI_finish();
	taskorch_wake_at_commit();
	PG_RETURN_TIMESTAMPTZ(due);
}

/*
 * SQL: taskorch.replay(run) -> a new run of the same task with the same
 * payload and options (not its delay or idempotency key), linked to the
 * original through replayed_from.
 */
Datum
taskorch_replay(PG_FUNCTION_ARGS)
{
	char	   *run_id = run_arg(fcinfo);
	TriggerOptions o;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;
	char	   *task;
	Jsonb	   *payload;
	MemoryContext caller = CurrentMemoryContext;

	trigger_options_init(&o);
	o.now = GetCurrentTimestamp();
	SPI_connect();
	(void) lookup_run(run_id);
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	{
		MemoryContext old = MemoryContextSwitchTo(caller);

		task = SPI_getvalue(tup, desc, 4);
		payload = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 5, &isnull));
		o.queue = SPI_getvalue(tup, desc, 6);
		o.concurrency_key = SPI_getvalue(tup, desc, 7);
		o.priority = DatumGetInt32(SPI_getbinval(tup, desc, 8, &isnull));
		o.max_attempts = DatumGetInt32(SPI_getbinval(tup, desc, 9, &isnull));
		d = SPI_getbinval(tup, desc, 10, &isnull);
		o.max_duration_ms = isnull ? -1 : (int32) DatumGetInt64(d);
		d = SPI_getbinval(tup, desc, 11, &isnull);
		o.ttl_ms = isnull ? -1 : DatumGetInt64(d);
		d = SPI_getbinval(tup, desc, 12, &isnull);
		if (!isnull)
		{
			ArrayType  *tags = DatumGetArrayTypePCopy(d);
			Datum	   *elems;
			int			n;

			deconstruct_array(tags, TEXTOID, -1, false, TYPALIGN_INT, &elems, NULL, &n);
			for (int i = 0; i < n; i++)
				o.tags = lappend(o.tags, TextDatumGetCString(elems[i]));
		}
		o.metadata = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 13, &isnull));
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	PG_RETURN_DATUM(create_run(task, payload, &o, run_id));
}
