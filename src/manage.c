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
 * the canceling transaction rolls back.  An external run is canceled in
 * the caller's transaction: its worker learns it from its next heartbeat,
 * and its lease is no longer current (external.c).  A run not yet started, or
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

/* a run named by its id */
typedef struct RunIdArgs
{
	PlanValue	id;
} RunIdArgs;

static const PlanField run_id_params[] = {
	PLAN_PARAM(RunIdArgs, id, TEXTOID),
};

/* what cancel(), reschedule() and replay() read of a run */
typedef struct RunRow
{
	PlanValue	owner;
	PlanValue	triggered_by;
	PlanValue	status;
	PlanValue	task_id;
	PlanValue	payload;
	PlanValue	queue;
	PlanValue	concurrency_key;
	PlanValue	priority;
	PlanValue	max_attempts;
	PlanValue	max_duration_ms;
	PlanValue	ttl_ms;
	PlanValue	tags;
	PlanValue	metadata;
	PlanValue	xmax;
} RunRow;

static const PlanField run_columns[] = {
	PLAN_COLUMN(RunRow, owner),
	PLAN_COLUMN(RunRow, triggered_by),
	PLAN_COLUMN(RunRow, status),
	PLAN_COLUMN(RunRow, task_id),
	PLAN_COLUMN(RunRow, payload),
	PLAN_COLUMN(RunRow, queue),
	PLAN_COLUMN(RunRow, concurrency_key),
	PLAN_COLUMN(RunRow, priority),
	PLAN_COLUMN(RunRow, max_attempts),
	PLAN_COLUMN(RunRow, max_duration_ms),
	PLAN_COLUMN(RunRow, ttl_ms),
	PLAN_COLUMN(RunRow, tags),
	PLAN_COLUMN(RunRow, metadata),
	PLAN_COLUMN(RunRow, xmax),
};
static NamedPlan run_plan = {
	.sql = "SELECT owner::oid AS owner, triggered_by::oid AS triggered_by,"
	"       status::text AS status, task_id, payload, queue, concurrency_key,"
	"       priority, max_attempts,"
	"       (extract(epoch FROM max_duration) * 1000)::int8 AS max_duration_ms,"
	"       (extract(epoch FROM ttl) * 1000)::int8 AS ttl_ms, tags, metadata, xmax"
	"  FROM taskorch.run WHERE id = :id",
	PLAN_PARAMS(run_id_params), PLAN_COLUMNS(run_columns)
};

/* a canceled run that held a slot of its queue (an external run, concurrency.c) */
typedef struct CanceledRow
{
	PlanValue	holds_slot;
	PlanValue	queue;
	PlanValue	concurrency_key;
	PlanValue	task_id;
} CanceledRow;

static const PlanField canceled_columns[] = {
	PLAN_COLUMN(CanceledRow, holds_slot),
	PLAN_COLUMN(CanceledRow, queue),
	PLAN_COLUMN(CanceledRow, concurrency_key),
	PLAN_COLUMN(CanceledRow, task_id),
};

#define CANCEL_SQL(lock) \
	"WITH r AS (SELECT id, holds_slot FROM taskorch.run" \
	"            WHERE id = :id AND status IN " SQL_CANCELABLE \
	"            FOR UPDATE " lock ")" \
	" UPDATE taskorch.run SET status = " SQL_STATUS(CANCELED) ", finished_at = now()," \
	"        updated_at = now(), error = '{\"message\": \"run was canceled\"}'," \
	"        holds_slot = false" \
	"   FROM r WHERE run.id = r.id" \
	" RETURNING r.holds_slot, run.queue, run.concurrency_key, run.task_id"

static NamedPlan cancel_unstarted_plan = {
	.sql = CANCEL_SQL("SKIP LOCKED"),
	PLAN_PARAMS(run_id_params), PLAN_COLUMNS(canceled_columns)
};

/* the same, waiting for the worker that holds the run to finish its batch */
static NamedPlan cancel_wait_plan = {
	.sql = CANCEL_SQL(""),
	PLAN_PARAMS(run_id_params), PLAN_COLUMNS(canceled_columns)
};

/*
 * Did plan p cancel the run?  An external run's slot is given back at
 * commit; taskorch.stats counts it then.
 */
static bool
canceled_by(NamedPlan *p, RunIdArgs *args)
{
	CanceledRow row;

	if (taskorch_execute_args(p, args, false, 0) != 1)
		return false;
	taskorch_read_row(p, 0, &row);
	if (DatumGetBool(row.holds_slot.datum))
		concurrency_release_at_commit(concurrency_key_hash(pv_cstring(row.queue),
														   pv_cstring(row.concurrency_key)));
	stats_note_end(pv_cstring(row.task_id), pv_cstring(row.queue), RUN_CANCELED);
	return true;
}

typedef struct ChildrenArgs
{
	PlanValue	parents;		/* text[] of run ids */
} ChildrenArgs;

typedef struct ChildRow
{
	PlanValue	id;
	PlanValue	task_id;
	PlanValue	status;
	PlanValue	xmax;
} ChildRow;

static const PlanField children_params[] = {
	PLAN_PARAM(ChildrenArgs, parents, TEXTARRAYOID),
};
static const PlanField children_columns[] = {
	PLAN_COLUMN(ChildRow, id),
	PLAN_COLUMN(ChildRow, task_id),
	PLAN_COLUMN(ChildRow, status),
	PLAN_COLUMN(ChildRow, xmax),
};
/* the unfinished children the waits of some runs made */
static NamedPlan children_plan = {
	.sql = "SELECT id, task_id, status::text AS status, xmax FROM taskorch.run"
	" WHERE parent_run_id = ANY (:parents) AND status IN " SQL_CANCELABLE,
	PLAN_PARAMS(children_params), PLAN_COLUMNS(children_columns)
};

typedef struct StatusRow
{
	PlanValue	status;
} StatusRow;

static const PlanField status_columns[] = {
	PLAN_COLUMN(StatusRow, status),
};
static NamedPlan status_plan = {
	.sql = "SELECT status::text AS status FROM taskorch.run WHERE id = :id",
	PLAN_PARAMS(run_id_params), PLAN_COLUMNS(status_columns)
};

typedef struct RescheduleArgs
{
	PlanValue	id;
	PlanValue	due;
} RescheduleArgs;

static const PlanField reschedule_params[] = {
	PLAN_PARAM(RescheduleArgs, id, TEXTOID),
	PLAN_PARAM(RescheduleArgs, due, TIMESTAMPTZOID),
};
static NamedPlan reschedule_plan = {
	.sql = "UPDATE taskorch.run SET run_at = :due, delayed_until = :due, updated_at = now()"
	" WHERE id = :id AND status = " SQL_STATUS(DELAYED),
	PLAN_PARAMS(reschedule_params)
};

/* The status of run `id` as it is now (inside SPI), or NULL: it is gone. */
static char *
status_now(const char *id)
{
	RunIdArgs	args = {pv_text(id)};
	StatusRow	row;

	if (taskorch_execute_args_latest(&status_plan, &args, 1) != 1)
		return NULL;
	taskorch_read_row(&status_plan, 0, &row);
	return pv_cstring(row.status);
}

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
 * Read the run into *row (inside SPI: its Datums are SPI's), checking the
 * caller may see it.  Returns its status.
 */
static char *
lookup_run(const char *run_id, RunRow *row)
{
	RunIdArgs	args = {pv_text(run_id)};
	bool		visible = false;

	if (taskorch_execute_args_latest(&run_plan, &args, 1) == 1)
	{
		taskorch_read_row(&run_plan, 0, row);
		visible = acts_for(DatumGetObjectId(row->owner.datum)) ||
			acts_for(DatumGetObjectId(row->triggered_by.datum));
	}
	if (!visible)
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("run \"%s\" does not exist", run_id),
				errhint("The run may belong to a role whose runs you cannot see; check taskorch.runs."));
	return pv_cstring(row->status);
}

/* Tell LISTENers on NOTIFY_CHANNEL that the run was canceled. */
static void
notify_canceled(const char *run_id, const char *task)
{
	RunStatus	canceled = RUN_CANCELED;

	notify_runs(1, &run_id, &task, &canceled);
}

/*
 * Cancel a run in `status` whose row has `xmax` (inside SPI): true when it
 * is now CANCELED.
 */
static bool
cancel_one(const char *run_id, const char *status, TransactionId xmax)
{
	RunIdArgs	args = {pv_text(run_id)};
	char	   *now;

	if (run_status_finished(run_status_parse(status)) || run_held_by_batch(xmax))
		return false;
	run_transitions(RUN_SET_CANCELABLE, RUN_CANCELED, BY_MANAGE);
	concurrency_counts_ready();
	if (canceled_by(&cancel_unstarted_plan, &args))
		return true;
	/* a worker holds it: interrupt the task if it is running, then wait */
	(void) taskorch_cancel_executing(run_id);
	if (canceled_by(&cancel_wait_plan, &args))
		return true;
	now = status_now(run_id);
	return now != NULL && run_status_parse(now) == RUN_CANCELED;
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
	ChildrenArgs args;

	args.parents = pv_datum(PointerGetDatum(construct_array(&first, 1, TEXTOID, -1, false,
															TYPALIGN_INT)));
	for (;;)
	{
		int			n = taskorch_execute_args(&children_plan, &args, false, 0);
		char	  **ids = palloc(sizeof(char *) * Max(n, 1));
		char	  **tasks = palloc(sizeof(char *) * Max(n, 1));
		char	  **statuses = palloc(sizeof(char *) * Max(n, 1));
		TransactionId *xmaxes = palloc(sizeof(TransactionId) * Max(n, 1));
		Datum	   *canceled = palloc(sizeof(Datum) * Max(n, 1));
		int			k = 0;

		for (int i = 0; i < n; i++)
		{
			ChildRow	row;

			taskorch_read_row(&children_plan, i, &row);
			ids[i] = pv_cstring(row.id);
			tasks[i] = pv_cstring(row.task_id);
			statuses[i] = pv_cstring(row.status);
			xmaxes[i] = DatumGetTransactionId(row.xmax.datum);
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
		args.parents = pv_datum(PointerGetDatum(construct_array(canceled, k, TEXTOID, -1,
																false, TYPALIGN_INT)));
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
	RunRow		row;
	char	   *status;
	char	   *task;

	SPI_connect();
	status = lookup_run(run_id, &row);
	task = pv_cstring(row.task_id);
	canceled = cancel_one(run_id, status, DatumGetTransactionId(row.xmax.datum));
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
	RescheduleArgs args;
	RunRow		row;
	char	   *status;
	bool		delayed;
	bool		rescheduled = false;
	TimestampTz due;

	require_arg(fcinfo, 1, "delay", "Pass a duration such as '1h' or a timestamptz.");
	due = delay_from_text(TextDatumGetCString(PG_GETARG_DATUM(1)), GetCurrentTimestamp());
	SPI_connect();
	status = lookup_run(run_id, &row);
	args.id = pv_text(run_id);
	args.due = pv_timestamptz(due);
	delayed = run_status_parse(status) == RUN_DELAYED;
	if (delayed)
	{
		char	   *now;

		(void) run_transition(RUN_DELAYED, RUN_DELAYED, BY_MANAGE);
		rescheduled = taskorch_execute_args(&reschedule_plan, &args, false, 0) == 1;
		/* it changed since we read it (promoted, canceled): say what it is now */
		if (!rescheduled && (now = status_now(run_id)) != NULL)
		{
			status = now;
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
	RunRow		row;
	char	   *task;
	Jsonb	   *payload;
	MemoryContext caller = CurrentMemoryContext;

	trigger_options_init(&o);
	o.now = GetCurrentTimestamp();
	SPI_connect();
	(void) lookup_run(run_id, &row);
	{
		MemoryContext old = MemoryContextSwitchTo(caller);

		task = pv_cstring(row.task_id);
		payload = pv_jsonb_copy(row.payload);
		o.queue = pv_cstring(row.queue);
		o.concurrency_key = pv_cstring(row.concurrency_key);
		o.priority = DatumGetInt32(row.priority.datum);
		o.max_attempts = DatumGetInt32(row.max_attempts.datum);
		o.max_duration_ms = row.max_duration_ms.present ?
			(int32) DatumGetInt64(row.max_duration_ms.datum) : -1;
		o.ttl_ms = row.ttl_ms.present ? DatumGetInt64(row.ttl_ms.datum) : -1;
		if (row.tags.present)
		{
			ArrayType  *tags = DatumGetArrayTypePCopy(row.tags.datum);
			Datum	   *elems;
			int			n;

			deconstruct_array(tags, TEXTOID, -1, false, TYPALIGN_INT, &elems, NULL, &n);
			for (int i = 0; i < n; i++)
				o.tags = lappend(o.tags, TextDatumGetCString(elems[i]));
		}
		o.metadata = pv_jsonb_copy(row.metadata);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	PG_RETURN_DATUM(create_run(task, payload, &o, run_id));
}
