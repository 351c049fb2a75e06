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

/* The Result object of a run that has just ended, as taskorch._result() makes it. */
static TaskorchPlan result_plan = {
	"SELECT taskorch._result($1::taskorch.run_status, $2, $3, $4, $5)",
	5, {TEXTOID, TEXTOID, TEXTOID, JSONBOID, JSONBOID},
	NULL
};

static Jsonb *
run_result(ClaimedRun *run)
{
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	bool		isnull;
	Datum		d;

	values[0] = CStringGetTextDatum(run_status_name(run->status));
	values[1] = CStringGetTextDatum(run->id);
	values[2] = CStringGetTextDatum(run->task_id);
	values[3] = run->output ? JsonbPGetDatum(run->output) : (Datum) 0;
	nulls[3] = run->output ? ' ' : 'n';
	values[4] = run->error ? JsonbPGetDatum(run->error) : (Datum) 0;
	nulls[4] = run->error ? ' ' : 'n';
	SPI_connect();
	taskorch_execute_as_owner(&result_plan, values, nulls, true, 1);
	d = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
						  false, -1);
	SPI_finish();
	return DatumGetJsonbP(d);
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
