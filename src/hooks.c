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

#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/timestamp.h"

static void
append_field(StringInfo buf, const char *key, Jsonb *value)
{
	appendStringInfo(buf, ", \"%s\": ", key);
	if (value)
		appendStringInfoString(buf, JsonbToCString(NULL, &value->root, VARSIZE(value)));
	else
		appendStringInfoString(buf, "null");
}

/* The Result object of a run that has just ended. */
static Jsonb *
run_result(ClaimedRun *run, bool ok)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"ok\": %s, \"id\": ", ok ? "true" : "false");
	escape_json(&buf, run->id);
	appendStringInfoString(&buf, ", \"taskIdentifier\": ");
	escape_json(&buf, run->task_id);
	append_field(&buf, ok ? "output" : "error", ok ? run->output : run->error);
	appendStringInfoChar(&buf, '}');
	return jsonb_from_cstring(buf.data);
}

typedef struct Hook
{
	const char *kind;			/* "on_success" or "on_failure" */
	const char *task;
	bool		ok;
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
	(void) create_run(hook->task, run_result(run, hook->ok), &o, NULL);
}

/* The run's attempt is decided: trigger its task's hook for how it ended. */
void
hooks_fire(ClaimedRun *run)
{
	Hook		hook = {NULL, NULL, false};
	ErrorData  *edata = NULL;

	if (strcmp(run->status, "COMPLETED") == 0)
		hook = (Hook) {"on_success", run->on_success, true};
	else if (strcmp(run->status, "FAILED") == 0 || strcmp(run->status, "TIMED_OUT") == 0)
		hook = (Hook) {"on_failure", run->on_failure, false};
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
