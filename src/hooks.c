/*-------------------------------------------------------------------------
 *
 * hooks.c
 *	  Lifecycle hooks: a task's on_success and on_failure tasks.
 *
 * When a run of a task ends in a worker's batch, COMPLETED or failed for
 * good (FAILED, TIMED_OUT: no attempt left), the task's hook for that end
 * is triggered with the run's Result object as its payload:
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
 * Runs that end outside a batch (canceled, expired) have no hooks.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
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
/* its Result object, as taskorch._result() makes it */
static NamedPlan result_plan = {
	.sql = "SELECT taskorch._result(:status::taskorch.run_status, :id, :task_id,"
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
	const char *kind;			/* "on_success" or "on_failure" */
	const char *task;
} Hook;

static void
trigger_hook(ClaimedRun *run, void *arg)
{
	Hook	   *hook = (Hook *) arg;
	TriggerOptions o;
	StringInfoData meta;

	initStringInfo(&meta);
	appendStringInfoString(&meta, "{\"hookOf\": ");
	escape_json(&meta, run->id);
	appendStringInfo(&meta, ", \"hook\": \"%s\"}", hook->kind);
	trigger_options_init(&o);
	o.now = GetCurrentTimestamp();
	o.metadata = jsonb_from_cstring(meta.data);
	trigger_options_finish(&o);
	(void) create_run(hook->task, run_result(run), &o, NULL);
}

/* The run's attempt is decided: trigger its task's hook for how it ended. */
void
hooks_fire(ClaimedRun *run)
{
	Hook		hook = {NULL, NULL};
	ErrorData  *edata = NULL;

	if (run->status == RUN_COMPLETED)
		hook = (Hook) {"on_success", run->on_success};
	else if (run->status == RUN_FAILED || run->status == RUN_TIMED_OUT)
		hook = (Hook) {"on_failure", run->on_failure};
	if (hook.task == NULL)
		return;
	if (!execute_as_owner(run, trigger_hook, &hook, &edata))
	{
		char	   *msg = psprintf("%s hook \"%s\" of run %s could not be triggered: %s",
								   hook.kind, hook.task, run->id, edata->message);

		logs_note(run, "warn", msg);
		ereport(WARNING,
				errcode(edata->sqlerrcode),
				errmsg("taskorch: %s", msg));
	}
}
