/*-------------------------------------------------------------------------
 *
 * runs.c
 *	  What an attempt means for its run: the status it moves to, when a
 *	  retry is due (Trigger.dev's exponential backoff), and the error JSON
 *	  recorded for the attempt.  Also the SQL functions a task calls about
 *	  its own run: current_run() and abort().
 *
 * Status transitions decided here (from QUEUED, by one attempt; the rows of
 * status.c's transition table made by the batch completion):
 *
 *	  returned normally ............................. COMPLETED
 *	  returned {"success": false, ...} (FP Result) .. QUEUED (retry) | FAILED
 *	  raised an error ............................... QUEUED (retry) | FAILED
 *	  raised via taskorch.abort() ................... FAILED (no retry)
 *	  exceeded max_duration ......................... TIMED_OUT (no retry)
 *	  interrupted by taskorch.cancel() .............. CANCELED
 *	  claimed after its ttl ran out (not executed) .. EXPIRED
 *	  task unregistered meanwhile, or registered
 *	  again by another role ......................... FAILED (no retry)
 *	  stopped at a wait (waits.c) ................... WAITING (no attempt spent)
 *	  replayed other wait calls than recorded ....... FAILED (no retry)
 *
 * An external run (external.c) ends its attempt from EXECUTING: completed
 * or failed by its worker as above (fail_run(retry => false) as abort()),
 * or lost (its lease expired, its claimer's connection ended): retried,
 * CRASHED when no attempt is left.
 *
 * A retry is due min(max, r * min * factor^(attempt - 1)) ms after the
 * attempt ended, r uniform in [1, 2) when randomize is on, else 1.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(taskorch_current_run);
PG_FUNCTION_INFO_V1(taskorch_result_error);
PG_FUNCTION_INFO_V1(taskorch_abort);
PG_FUNCTION_INFO_V1(taskorch_metadata);
PG_FUNCTION_INFO_V1(taskorch_metadata_replace);

/* {"message", "sqlstate", "detail", "hint", "context"}, nulls left out */
Jsonb *
error_to_jsonb(ErrorData *edata, const char *override_message)
{
	JsonObject	o;

	json_begin(&o);
	json_string(&o, "message", override_message ? override_message : edata->message);
	json_string(&o, "sqlstate", unpack_sql_state(edata->sqlerrcode));
	json_string(&o, "detail", edata->detail);
	json_string(&o, "hint", edata->hint);
	json_string(&o, "context", edata->context);
	return json_end(&o);
}

static Jsonb *
simple_error(const char *message, const char *sqlstate)
{
	JsonObject	o;

	json_begin(&o);
	json_string(&o, "message", message);
	json_string(&o, "sqlstate", sqlstate);
	return json_end(&o);
}

/* The value of `key` in a jsonb object, or NULL. */
static JsonbValue *
object_field(Jsonb *jb, const char *key)
{
	if (jb == NULL || !JB_ROOT_IS_OBJECT(jb))
		return NULL;
	return getKeyJsonValueFromContainer(&jb->root, key, strlen(key), NULL);
}

/*
 * The FP Result rule (seed 004; docs/runs.md), the one place it is decided:
 * an output is an FP Result when it is a JSON object whose "success" is a
 * boolean.  "success": false is a failure, whatever else the object holds;
 * anything else completes the run with the output as returned.  (Where a
 * completed run's output is handed on, to a track's next step say, an FP
 * Result gives its "data": taskorch_internal.unwrap().)
 */
bool
is_failed_result(Jsonb *output)
{
	JsonbValue *success = object_field(output, "success");

	return success != NULL && success->type == jbvBool && !success->val.boolean;
}

/*
 * The error of an FP Result that failed, or NULL when `output` is not one:
 * {"message": its "error" (a string, or an object's "message"), "name":
 * "ResultError", "result": the whole object} -- its data, meta and error
 * are kept there.
 */
Jsonb *
result_failure(Jsonb *output)
{
	JsonbValue *error;
	char	   *message = NULL;
	JsonObject	o;

	if (!is_failed_result(output))
		return NULL;
	error = object_field(output, "error");
	if (error && error->type == jbvString)
		message = pnstrdup(error->val.string.val, error->val.string.len);
	else if (error && error->type == jbvBinary && JsonContainerIsObject(error->val.binary.data))
	{
		JsonbValue *m = getKeyJsonValueFromContainer(error->val.binary.data,
													 "message", 7, NULL);

		if (m && m->type == jbvString)
			message = pnstrdup(m->val.string.val, m->val.string.len);
	}
	json_begin(&o);
	json_string(&o, "message", message ? message : "task returned success: false");
	json_string(&o, "name", "ResultError");
	json_jsonb(&o, "result", output);
	return json_end(&o);
}

/* SQL: taskorch_internal.result_error(output) -> result_failure(output), NULL if none */
Datum
taskorch_result_error(PG_FUNCTION_ARGS)
{
	Jsonb	   *error = result_failure(PG_GETARG_JSONB_P(0));

	if (error == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(error);
}

/* Milliseconds to wait before the next attempt, after attempt `attempt`. */
static int64
retry_delay_ms(const ClaimedRun *run, int attempt)
{
	double		r = run->retry_randomize ? 1.0 + pg_prng_double(&pg_global_prng_state) : 1.0;
	double		delay = r * run->retry_min_ms * pow(run->retry_factor, attempt - 1);

	return (int64) Min(delay, (double) run->retry_max_ms);
}

/*
 * A claimed run ends its attempt in `to` (status.c's table): from QUEUED,
 * or from EXECUTING for an external run its worker claimed.
 */
static void
set_status(ClaimedRun *run, RunStatus to)
{
	run->status = run_transition(run->row_status, to, BY_COMPLETION);
}

void
decide_outcome(ClaimedRun *run)
{
	int			attempt = run->attempts + 1;

	run->error = NULL;
	if (run->replay_error)
	{
		/* the code no longer matches the run's waits: retrying cannot help */
		run->error = error_to_jsonb(run->replay_error, NULL);
		run->output = NULL;
		set_status(run, RUN_FAILED);
		return;
	}
	if (run->suspended)
	{
		/* not an attempt: the run waits, and runs from the top when resumed */
		set_status(run, RUN_WAITING);
		run->next_run_at = run->wait_resume_at;
		return;
	}
	if (run->expired)
	{
		run->error = simple_error("run expired: it did not start within its ttl", NULL);
		set_status(run, RUN_EXPIRED);
		return;
	}
	if (run->canceled)
	{
		run->error = error_to_jsonb(run->edata, "run was canceled while executing");
		set_status(run, RUN_CANCELED);
		return;
	}
	if (!run->task_found)
	{
		char	   *msg = run->task_reowned ?
			psprintf("task \"%s\" was registered again by another role: this run, made for the former task, is not run", run->task_id) :
			psprintf("task \"%s\" is not registered", run->task_id);

		run->error = simple_error(msg, run->task_reowned ? "42501" : "42704");
		set_status(run, RUN_FAILED);
		return;
	}
	if (run->succeeded)
	{
		run->error = result_failure(run->output);
		if (run->error == NULL)
		{
			set_status(run, RUN_COMPLETED);
			return;
		}
		run->output = NULL;
	}
	else if (run->timed_out)
	{
		char	   *msg = psprintf("run exceeded its max_duration of %d ms",
								   run->max_duration_ms);

		run->error = run->edata ? error_to_jsonb(run->edata, msg) : simple_error(msg, "57014");
		run->output = NULL;		/* what code that caught the interruption returned: rolled back */
		set_status(run, RUN_TIMED_OUT);
		return;
	}
	else if (run->edata == NULL)
	{
		/* an external run: the error its worker reported, or its loss */
		run->error = run->reported_error;
		if (run->no_retry)
		{
			set_status(run, RUN_FAILED);
			return;
		}
	}
	else
	{
		run->error = error_to_jsonb(run->edata, NULL);
		if (run->edata->sqlerrcode == TASKORCH_SQLSTATE_ABORT)
		{
			set_status(run, RUN_FAILED);
			return;
		}
	}

	if (attempt >= run->max_attempts)
		set_status(run, run->lost ? RUN_CRASHED : RUN_FAILED);
	else
	{
		set_status(run, RUN_QUEUED);
		run->next_run_at = TimestampTzPlusMilliseconds(run->finished_at,
													   retry_delay_ms(run, attempt));
	}
}

/*
 * SQL: taskorch.current_run() -> {id, taskIdentifier, attempt,
 * maxAttempts, startedAt} of the run this session is executing, or NULL.
 */
Datum
taskorch_current_run(PG_FUNCTION_ARGS)
{
	const ClaimedRun *run = current_run();
	JsonObject	o;

	if (run == NULL)
		PG_RETURN_NULL();
	json_begin(&o);
	json_string(&o, "id", run->id);
	json_string(&o, "taskIdentifier", run->task_id);
	json_int(&o, "attempt", run->attempts + 1);
	json_int(&o, "maxAttempts", run->max_attempts);
	json_string(&o, "startedAt", JsonEncodeDateTime(NULL, TimestampTzGetDatum(run->started_at),
													 TIMESTAMPTZOID, NULL));
	PG_RETURN_JSONB_P(json_end(&o));
}

#define METADATA_HINT "Read a run's metadata from outside with taskorch.retrieve() or taskorch.runs."

/* SQL: taskorch.metadata() -> the current run's metadata */
Datum
taskorch_metadata(PG_FUNCTION_ARGS)
{
	PG_RETURN_JSONB_P(run_in_task("taskorch.metadata()", METADATA_HINT)->metadata);
}

/* An error unless `metadata` may be a run's: an object, not too large */
void
metadata_check(Jsonb *metadata)
{
	if (!JB_ROOT_IS_OBJECT(metadata))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("metadata must be a JSON object"),
				errhint("Metadata is an object of keys; use metadata_set(key, value)."));
	if (VARSIZE(metadata) > MAX_METADATA_BYTES)
		ereport(ERROR,
				errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("metadata of %zu bytes exceeds the limit of %d bytes",
					   (Size) VARSIZE(metadata), MAX_METADATA_BYTES),
				errhint("Keep large data in a table and put its key in the metadata."));
}

/*
 * SQL: taskorch.metadata_replace(metadata) -> it.  The run's metadata is
 * written when its batch commits, whatever the attempt's outcome, and is
 * readable from other sessions while the run executes (shmem.c).  The
 * metadata_set/append/increment/remove helpers build on this.
 */
Datum
taskorch_metadata_replace(PG_FUNCTION_ARGS)
{
	ClaimedRun *run = run_in_task("taskorch.metadata_replace()", METADATA_HINT);
	Jsonb	   *metadata;
	MemoryContext old;

	require_arg(fcinfo, 0, "metadata", "Pass '{}' to clear it.");
	metadata = PG_GETARG_JSONB_P(0);
	metadata_check(metadata);
	old = MemoryContextSwitchTo(run->cxt);
	run->metadata = DatumGetJsonbPCopy(PointerGetDatum(metadata));
	run->metadata_changed = true;
	MemoryContextSwitchTo(old);
	taskorch_set_live_metadata(JsonbToCString(NULL, &metadata->root, VARSIZE(metadata)));
	PG_RETURN_JSONB_P(metadata);
}

/* SQL: taskorch.abort(message, detail) fails the run without a retry. */
Datum
taskorch_abort(PG_FUNCTION_ARGS)
{
	char	   *message = PG_ARGISNULL(0) ? "run aborted" : text_to_cstring(PG_GETARG_TEXT_PP(0));

	ereport(ERROR,
			errcode(TASKORCH_SQLSTATE_ABORT),
			errmsg_internal("%s", message),
			PG_ARGISNULL(1) ? 0 : errdetail_internal("%s", text_to_cstring(PG_GETARG_TEXT_PP(1))));
	PG_RETURN_VOID();
}
