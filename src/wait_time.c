/*-------------------------------------------------------------------------
 *
 * wait_time.c
 *	  Time waits: wait_for(duration) and wait_until(time) suspend a run
 *	  until a moment, and the maintenance pass resumes it once that moment
 *	  has come (waits.c has the replay mechanism they share).
 *
 * Transactions: a wait call runs in the task's subtransaction and only
 * notes its resume time on the run (wait_suspend); the waitpoint is
 * written by the batch (waits_record).  wait_time_resume() runs in a
 * worker's maintenance pass, inside its SPI connection, in the batch's
 * top-level transaction.  Memory: the run's (batch) context.  Lock: none
 * shared; the waitpoints it completes are row-locked by its UPDATE.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(taskorch_wait_for);
PG_FUNCTION_INFO_V1(taskorch_wait_until);

typedef struct ResumeArgs
{
	PlanValue	now;
} ResumeArgs;

static const PlanField resume_params[] = {
	PLAN_PARAM(ResumeArgs, now, TIMESTAMPTZOID),
};
/* time waits that are over: complete them and queue their runs again */
static NamedPlan resume_plan = {
	.sql = "WITH due AS (UPDATE taskorch.waitpoint SET completed_at = :now"
	"              WHERE completed_at IS NULL AND kind = 'time' AND resume_at <= :now"
	"              RETURNING run_id)"
	" UPDATE taskorch.run r SET status = " SQL_STATUS(QUEUED) ", run_at = :now, updated_at = :now"
	"   FROM (SELECT DISTINCT run_id FROM due) d"
	"  WHERE r.id = d.run_id AND r.status = " SQL_STATUS(WAITING),
	PLAN_PARAMS(resume_params), .shape = PLAN_KEY_LOOKUPS
};

/*
 * A time wait's target is its kind alone: its time may be computed from
 * the clock (wait_until(now() + ...)), and differ on replay.
 */
static void
wait_until(const char *function, TimestampTz resume_at)
{
	ClaimedRun *run = run_in_task(function,
								  "Outside a task, use pg_sleep(), or trigger the work with a delay.");
	int32		seq;

	seq = run->wait_calls++;
	if (wait_completed(run, seq, "time", NULL, NULL) || resume_at <= GetCurrentTimestamp())
		return;
	{
		WaitCall	call = {.seq = seq, .kind = "time", .resume_at = resume_at};

		wait_suspend(run, &call, timestamptz_to_str(resume_at));
	}
}

/* SQL: taskorch.wait_for(duration) */
Datum
taskorch_wait_for(PG_FUNCTION_ARGS)
{
	int64		ms;

	require_arg(fcinfo, 0, "duration", "Pass a duration such as '5m' or an interval.");
	ms = duration_ms_from_text("wait duration", TextDatumGetCString(PG_GETARG_DATUM(0)), true);
	/* counted from the first time the wait is reached: on replay it returns at once */
	wait_until("taskorch.wait_for()", TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms));
	PG_RETURN_VOID();
}

/* SQL: taskorch.wait_until(date) */
Datum
taskorch_wait_until(PG_FUNCTION_ARGS)
{
	require_arg(fcinfo, 0, "date", "Pass a timestamptz.");
	wait_until("taskorch.wait_until()", PG_GETARG_TIMESTAMPTZ(0));
	PG_RETURN_VOID();
}

/* Time waits that are over: complete them and queue their runs (inside SPI). */
int
wait_time_resume(TimestampTz now)
{
	ResumeArgs	args = {pv_timestamptz(now)};

	(void) run_transition(RUN_WAITING, RUN_QUEUED, BY_WAITS);
	return taskorch_execute_args(&resume_plan, &args, false, 0);
}
