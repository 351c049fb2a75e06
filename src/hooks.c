/*-------------------------------------------------------------------------
 *
 * hooks.c
 *	  Lifecycle hooks: a task's on_start, on_success and on_failure tasks.
 *
 * When a run of a task starts its first execution (not a retry, nor a
 * resume after a durable wait), the task's on_start hook is triggered
 * with {"id", "taskIdentifier", "payload"} (seed 004's start
 * notification), in the transaction that records that execution's end.
 *
 * When a run of a task ends COMPLETED, or failed for good (FAILED,
 * TIMED_OUT, CRASHED, SYSTEM_FAILURE: taskorch.failed()), the task's hook
 * for that end is triggered with the run's Result object as its payload:
 *
 *	  {"ok": true, "id": ..., "taskIdentifier": ..., "output": ...}
 *	  {"ok": false, "id": ..., "taskIdentifier": ..., "error": ...}
 *
 * and with metadata {"hookOf": <run id>, "hook": "on_success"|"on_failure"}.
 * The hook run is made in the same transaction that records the outcome
 * (so it exists exactly when the outcome does), as the task's owner, who
 * must be allowed to trigger the hook task.  A hook that cannot be
 * triggered (its task was unregistered, say) does not undo the outcome:
 * it is reported in the run's logs and the server log.
 *
 * A run ends in its worker's batch (hooks_fire), or, when it crashed its
 * worker or its outcome could not be recorded, where the worker charges it
 * (hooks_fire_ended).  Runs canceled or expired have no hooks.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

/* a run that has just ended */
typedef struct ResultArgs
{
	PlanValue	status;
	PlanValue	id;
	PlanValue	task_id;
	PlanValue	output;
	PlanValue	error;
} ResultArgs;

typedef struct ResultRow
{
	PlanValue	result;
} ResultRow;

static const PlanField result_params[] = {
	PLAN_PARAM(ResultArgs, status, TEXTOID),
	PLAN_PARAM(ResultArgs, id, TEXTOID),
	PLAN_PARAM(ResultArgs, task_id, TEXTOID),
	PLAN_PARAM(ResultArgs, output, JSONBOID),
	PLAN_PARAM(ResultArgs, error, JSONBOID),
};
static const PlanField result_columns[] = {
	PLAN_COLUMN(ResultRow, result),
};
/* its Result object, as taskorch_internal.result() makes it */
static NamedPlan result_plan = {
	.sql = "SELECT taskorch_internal.result(:status::taskorch.run_status, :id, :task_id,"
	"       :output, :error) AS result",
	PLAN_PARAMS(result_params), PLAN_COLUMNS(result_columns)
};

static Jsonb *
run_result(ClaimedRun *run)
{
	ResultArgs	args;
	ResultRow	row;
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext old;
	Jsonb	   *result;

	args.status = pv_text(run_status_name(run->status));
	args.id = pv_text(run->id);
	args.task_id = pv_text(run->task_id);
	args.output = pv_jsonb(run->output);
	args.error = pv_jsonb(run->error);
	SPI_connect();
	taskorch_execute_args(&result_plan, &args, true, 1);
	taskorch_read_row(&result_plan, 0, &row);
	old = MemoryContextSwitchTo(caller);
	result = pv_jsonb_copy(row.result);
	MemoryContextSwitchTo(old);
	SPI_finish();
	return result;
}

typedef struct Hook
{
	const char *kind;			/* "on_start", "on_success" or "on_failure" */
	const char *task;
	Jsonb	   *payload;		/* NULL: the run's Result object */
} Hook;

static void
trigger_hook(ClaimedRun *run, void *arg)
{
	Hook	   *hook = (Hook *) arg;
	TriggerOptions o;
	JsonObject	meta;

	json_begin(&meta);
	json_string(&meta, "hookOf", run->id);
	json_string(&meta, "hook", hook->kind);
	trigger_options_init(&o);
	o.now = GetCurrentTimestamp();
	o.metadata = json_end(&meta);
	o.root_run_id = run_root(run);
	trigger_options_finish(&o);
	(void) create_run(hook->task, hook->payload ? hook->payload : run_result(run), &o, NULL);
}

/* What an on_start hook is given: the run that started, and its payload. */
static Jsonb *
start_payload(ClaimedRun *run)
{
	JsonObject	o;

	json_begin(&o);
	json_string(&o, "id", run->id);
	json_string(&o, "taskIdentifier", run->task_id);
	json_jsonb(&o, "payload", run->payload);
	return json_end(&o);
}

/* Trigger one hook of the run as its task's owner; a refusal is noted, not raised. */
static void
fire(ClaimedRun *run, Hook *hook)
{
	ErrorData  *edata = NULL;

	if (hook->task == NULL)
		return;
	if (!execute_as_owner(run, trigger_hook, hook, &edata))
	{
		char	   *msg = psprintf("%s hook \"%s\" of run %s could not be triggered: %s",
								   hook->kind, hook->task, run->id, edata->message);

		logs_note(run, "warn", msg);
		ereport(WARNING,
				errcode(edata->sqlerrcode),
				errmsg("taskorch: %s", msg));
	}
}

/*
 * The run's attempt is decided: trigger its task's on_start hook if this
 * was the run's first execution, and its hook for how it ended.
 */
void
hooks_fire(ClaimedRun *run)
{
	Hook		hook = {NULL, NULL, NULL};

	if (run->unstarted && run->on_start && run->task_found && !run->expired)
	{
		Hook		start = {"on_start", run->on_start, start_payload(run)};

		fire(run, &start);
	}
	if (run->status == RUN_COMPLETED)
		hook = (Hook) {"on_success", run->on_success, NULL};
	else if (RUN_SET_FAILED & ((uint32) 1 << run->status))
		hook = (Hook) {"on_failure", run->on_failure, NULL};
	fire(run, &hook);
}

typedef struct EndedArgs
{
	PlanValue	id;
} EndedArgs;

/* a run that ended outside a batch's completion, and its task's failure hook */
typedef struct EndedRow
{
	PlanValue	task_id;
	PlanValue	status;
	PlanValue	output;
	PlanValue	error;
	PlanValue	attempts;
	PlanValue	owner;
	PlanValue	fn;
	PlanValue	on_failure;
} EndedRow;

static const PlanField ended_params[] = {
	PLAN_PARAM(EndedArgs, id, TEXTOID),
};
static const PlanField ended_columns[] = {
	PLAN_COLUMN(EndedRow, task_id),
	PLAN_COLUMN(EndedRow, status),
	PLAN_COLUMN(EndedRow, output),
	PLAN_COLUMN(EndedRow, error),
	PLAN_COLUMN(EndedRow, attempts),
	PLAN_COLUMN(EndedRow, owner),
	PLAN_COLUMN(EndedRow, fn),
	PLAN_COLUMN(EndedRow, on_failure),
};
static NamedPlan ended_plan = {
	.sql = "SELECT r.task_id, r.status::text AS status, r.output, r.error, r.attempts,"
	"       t.owner::oid AS owner, t.fn::oid AS fn, t.on_failure"
	"  FROM taskorch.run r"
	"  JOIN taskorch.task t ON t.id = r.task_id AND t.owner::oid = r.owner::oid"
	" WHERE r.id = :id AND t.on_failure IS NOT NULL",
	PLAN_PARAMS(ended_params), PLAN_COLUMNS(ended_columns)
};

/*
 * The run ended outside a batch's completion (its worker died, its outcome
 * could not be recorded): fire its task's hook for how it ended, in the
 * current transaction, as hooks_fire() does for a batch's runs.
 */
void
hooks_fire_ended(const char *run_id)
{
	EndedArgs	args = {pv_text(run_id)};
	EndedRow	row;
	ClaimedRun	run;
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext old;

	SPI_connect();
	/* not read-only: it must see the status the caller has just written */
	if (taskorch_execute_args(&ended_plan, &args, false, 1) == 0)
	{
		SPI_finish();
		return;
	}
	taskorch_read_row(&ended_plan, 0, &row);
	old = MemoryContextSwitchTo(caller);
	memset(&run, 0, sizeof(ClaimedRun));
	run.id = pstrdup(run_id);
	run.task_id = pv_cstring(row.task_id);
	run.task_found = true;
	run.status = run_status_parse(TextDatumGetCString(row.status.datum));
	run.output = pv_jsonb_copy(row.output);
	run.error = pv_jsonb_copy(row.error);
	run.attempts = DatumGetInt32(row.attempts.datum);
	run.owner = DatumGetObjectId(row.owner.datum);
	run.fn = DatumGetObjectId(row.fn.datum);
	run.on_failure = pv_cstring(row.on_failure);
	run.cxt = caller;
	MemoryContextSwitchTo(old);
	SPI_finish();
	if (run_status_finished(run.status))
		hooks_fire(&run);
}
