/*-------------------------------------------------------------------------
 *
 * maintenance.c
 *	  The maintenance pass of a worker: what becomes due on its own.
 *	  DELAYED runs whose time has come are promoted to QUEUED (their ttl
 *	  starts then), QUEUED runs past their ttl expire, WAITING runs whose
 *	  wait is over resume (waits_resume, in the time waits), and the time
 *	  until the next of these events tells an idle worker how long it may
 *	  sleep.
 *
 * Transaction: called in the batch's top-level transaction before the
 * claim, by a worker at most once every MAINTENANCE_MS (sooner when it
 * slept until the next due event), and by run_pending() before its
 * batches (worker.c).  Each statement takes at most 1,000
 * rows FOR UPDATE SKIP LOCKED, so two workers' passes never wait on each
 * other and a backlog is worked off a slice per pass.  Memory: the
 * caller's (the batch context).  Lock: no shared lock; a pass that queued
 * runs (possibly behind a claim mark) returns their number, and the worker
 * then resets its mark and bumps taskorch_shared->requeued at commit.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "catalog/pg_type.h"
#include "utils/timestamp.h"

/* when a worker next has something to do: a retry, a delay, an expiry */
static TaskorchPlan next_due_plan = {
	"SELECT least("
	"  (SELECT min(run_at) FROM taskorch.run WHERE status = " SQL_STATUS(QUEUED) " AND run_at > $1),"
	"  (SELECT min(run_at) FROM taskorch.run WHERE status = " SQL_STATUS(DELAYED) "),"
	"  (SELECT min(expires_at) FROM taskorch.run"
	"    WHERE status = " SQL_STATUS(QUEUED) " AND expires_at IS NOT NULL),"
	"  (SELECT min(resume_at) FROM taskorch.waitpoint"
	"    WHERE completed_at IS NULL AND kind = 'time'))",
	1, {TIMESTAMPTZOID},
	NULL
};

/* DELAYED runs whose time has come join the queue; their ttl starts now */
static TaskorchPlan promote_plan = {
	"WITH due AS (SELECT id FROM taskorch.run WHERE status = " SQL_STATUS(DELAYED) " AND run_at <= $1"
	"              ORDER BY run_at LIMIT 1000 FOR UPDATE SKIP LOCKED)"
	" UPDATE taskorch.run r SET status = " SQL_STATUS(QUEUED) ", updated_at = $1,"
	"        run_at = $1 - r.priority * interval '1 second', expires_at = $1 + r.ttl"
	"   FROM due WHERE r.id = due.id",
	1, {TIMESTAMPTZOID},
	NULL
};

/* QUEUED runs that did not start within their ttl */
static TaskorchPlan expire_plan = {
	"WITH due AS (SELECT id FROM taskorch.run WHERE status = " SQL_STATUS(QUEUED) " AND expires_at <= $1"
	"              ORDER BY expires_at LIMIT 1000 FOR UPDATE SKIP LOCKED)"
	" UPDATE taskorch.run r SET status = " SQL_STATUS(EXPIRED) ", finished_at = $1, updated_at = $1,"
	"        error = jsonb_build_object('message',"
	"                'run expired: it did not start within its ttl of ' || r.ttl)"
	"   FROM due WHERE r.id = due.id",
	1, {TIMESTAMPTZOID},
	NULL
};

/*
 * Promote due DELAYED runs, resume WAITING runs whose wait is over, and
 * expire QUEUED runs past their ttl.  Returns the number queued (they are
 * now claimable, possibly behind the mark).
 */
int
promote_and_expire(void)
{
	Datum		values[1] = {TimestampTzGetDatum(GetCurrentTimestamp())};
	int			promoted;

	SPI_connect();
	(void) run_transition(RUN_DELAYED, RUN_QUEUED, BY_MAINTENANCE);
	promoted = taskorch_execute_as_owner(&promote_plan, values, NULL, false, 0);
	(void) run_transition(RUN_QUEUED, RUN_EXPIRED, BY_MAINTENANCE);
	taskorch_execute_as_owner(&expire_plan, values, NULL, false, 0);
	SPI_finish();
	return promoted + waits_resume();
}

/* Milliseconds until a worker next has work (a retry, delay or expiry); -1 if none. */
int64
next_due_ms(void)
{
	TimestampTz now = GetCurrentTimestamp();
	Datum		values[1] = {TimestampTzGetDatum(now)};
	int64		result = -1;
	bool		isnull;
	Datum		d;

	SPI_connect();
	taskorch_execute_as_owner(&next_due_plan, values, NULL, true, 1);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
		result = TimestampDifferenceMilliseconds(now, DatumGetTimestampTz(d)) + 1;
	SPI_finish();
	return result;
}
