/*-------------------------------------------------------------------------
 *
 * waits.c
 *	  Durable waits by replay: wait_for(duration) and wait_until(time).
 *
 * A wait never holds a worker.  The first time a task reaches a wait, the
 * call notes what it waits for and raises SQLSTATE TOWAI; the attempt's
 * subtransaction is rolled back like a failed attempt's, but the run is
 * WAITING instead (no attempt is spent), with a waitpoint row saying what
 * it waits for.  When that is over (a worker's maintenance pass sees the
 * time has come) the waitpoint is completed and the run QUEUED again.  Its
 * task then runs from the top: each wait call, identified by its order in
 * the execution (seq), finds its completed waitpoint and returns at once.
 * So task code before a wait runs again on resume; its effects commit once,
 * with the execution that gets past every wait.
 *
 * A waiting run survives restarts: it is rows, not a sleeping process.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(taskorch_wait_for);
PG_FUNCTION_INFO_V1(taskorch_wait_until);

static TaskorchPlan lookup_plan = {
	"SELECT completed_at IS NOT NULL FROM taskorch.waitpoint WHERE run_id = $1 AND seq = $2",
	2, {TEXTOID, INT4OID},
	NULL
};

static TaskorchPlan insert_plan = {
	"INSERT INTO taskorch.waitpoint (run_id, seq, kind, resume_at, created_at)"
	" SELECT u.*, $5 FROM unnest($1::text[], $2::int4[], $3::text[], $4::timestamptz[])"
	"        AS u(run_id, seq, kind, resume_at)"
	" ON CONFLICT (run_id, seq) DO NOTHING",
	5, {TEXTARRAYOID, INT4ARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZOID},
	NULL
};

/* time waits that are over: complete them and queue their runs again */
static TaskorchPlan resume_plan = {
	"WITH due AS (UPDATE taskorch.waitpoint SET completed_at = $1"
	"              WHERE completed_at IS NULL AND kind = 'time' AND resume_at <= $1"
	"              RETURNING run_id)"
	" UPDATE taskorch.run r SET status = 'QUEUED', run_at = $1, updated_at = $1"
	"   FROM (SELECT DISTINCT run_id FROM due) d"
	"  WHERE r.id = d.run_id AND r.status = 'WAITING'",
	1, {TIMESTAMPTZOID},
	NULL
};

/*
 * The wait call number `seq` of the current execution: true when its
 * waitpoint is already completed (return at once), false when the run
 * must suspend.
 */
static bool
wait_completed(ClaimedRun *run, int32 seq)
{
	Datum		values[2] = {CStringGetTextDatum(run->id), Int32GetDatum(seq)};
	bool		done = false;
	bool		isnull;

	SPI_connect();
	if (taskorch_execute_as_owner(&lookup_plan, values, NULL, true, 1) == 1)
		done = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	return done;
}

/* Suspend the run until `resume_at`: note the wait, then unwind the task. */
static void
suspend_until(ClaimedRun *run, int32 seq, TimestampTz resume_at)
{
	run->wait_seq = seq;
	run->wait_kind = "time";
	run->wait_resume_at = resume_at;
	ereport(ERROR,
			errcode(TASKORCH_SQLSTATE_WAIT),
			errmsg("run %s is waiting until %s", run->id, timestamptz_to_str(resume_at)),
			errdetail("This is how a task waits; let the error pass through."),
			errhint("Do not catch SQLSTATE TOWAI in task code."));
}

static void
wait_until(const char *function, TimestampTz resume_at)
{
	ClaimedRun *run = current_run();
	int32		seq;

	if (run == NULL)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("%s can only be called inside a task", function),
				errhint("Outside a task, use pg_sleep(), or trigger the work with a delay."));
	seq = run->wait_calls++;
	if (wait_completed(run, seq) || resume_at <= GetCurrentTimestamp())
		return;
	suspend_until(run, seq, resume_at);
}

/* SQL: taskorch.wait_for(duration) */
Datum
taskorch_wait_for(PG_FUNCTION_ARGS)
{
	int64		ms;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("duration must not be null"),
				errhint("Pass a duration such as '5m' or an interval."));
	ms = duration_ms_from_datum("wait duration", PG_GETARG_DATUM(0),
								get_fn_expr_argtype(fcinfo->flinfo, 0), true);
	/* counted from the first time the wait is reached: on replay it returns at once */
	wait_until("taskorch.wait_for()", TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms));
	PG_RETURN_VOID();
}

/* SQL: taskorch.wait_until(time) */
Datum
taskorch_wait_until(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("time must not be null"),
				errhint("Pass a timestamptz."));
	wait_until("taskorch.wait_until()", PG_GETARG_TIMESTAMPTZ(0));
	PG_RETURN_VOID();
}

/* Record the waitpoints of the runs suspended in this batch (inside SPI). */
void
waits_record(ClaimedRun *runs, int n)
{
	Datum	   *ids = palloc(sizeof(Datum) * n);
	Datum	   *seqs = palloc(sizeof(Datum) * n);
	Datum	   *kinds = palloc(sizeof(Datum) * n);
	Datum	   *times = palloc(sizeof(Datum) * n);
	Datum		values[5];
	int			k = 0;

	for (int i = 0; i < n; i++)
	{
		if (!runs[i].suspended)
			continue;
		ids[k] = CStringGetTextDatum(runs[i].id);
		seqs[k] = Int32GetDatum(runs[i].wait_seq);
		kinds[k] = CStringGetTextDatum(runs[i].wait_kind);
		times[k] = TimestampTzGetDatum(runs[i].wait_resume_at);
		k++;
	}
	if (k == 0)
		return;
	values[0] = PointerGetDatum(construct_array(ids, k, TEXTOID, -1, false, TYPALIGN_INT));
	values[1] = PointerGetDatum(construct_array(seqs, k, INT4OID, 4, true, TYPALIGN_INT));
	values[2] = PointerGetDatum(construct_array(kinds, k, TEXTOID, -1, false, TYPALIGN_INT));
	values[3] = PointerGetDatum(construct_array(times, k, TIMESTAMPTZOID, 8, true, TYPALIGN_DOUBLE));
	values[4] = TimestampTzGetDatum(GetCurrentTimestamp());
	taskorch_execute_as_owner(&insert_plan, values, NULL, false, 0);
}

/* Queue again the WAITING runs whose wait is over (a worker's maintenance). */
int
waits_resume(void)
{
	Datum		values[1] = {TimestampTzGetDatum(GetCurrentTimestamp())};
	int			resumed;

	SPI_connect();
	resumed = taskorch_execute_as_owner(&resume_plan, values, NULL, false, 0);
	SPI_finish();
	return resumed;
}
