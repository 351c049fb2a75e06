/*-------------------------------------------------------------------------
 *
 * maintenance.c
 *	  The maintenance pass of a worker: what becomes due on its own.
 *	  DELAYED runs whose time has come are promoted to QUEUED (their ttl
 *	  starts then), QUEUED runs past their ttl expire, WAITING runs whose
 *	  wait is over resume (waits_resume, in the time waits), and the time
 *	  until the next of these events (and of schedules' ticks, fired by
 *	  schedules_fire in a transaction of their own, and of the leases and
 *	  due runs of external tasks, external.c) tells an idle worker how long
 *	  it may sleep.
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
#include "utils/builtins.h"
#include "utils/timestamp.h"

/* every statement here is given the time it treats as now */
typedef struct NowArgs
{
	PlanValue	now;
} NowArgs;

typedef struct DueRow
{
	PlanValue	due;			/* NULL: nothing to do on its own */
} DueRow;

static const PlanField now_params[] = {
	PLAN_PARAM(NowArgs, now, TIMESTAMPTZOID),
};
static const PlanField due_columns[] = {
	PLAN_COLUMN(DueRow, due),
};

/* when a worker next has something to do: a delay, an expiry, a lease, a tick */
static NamedPlan next_due_plan = {
	.sql = "SELECT least("
	/* (a queued run not due yet, a retry's, is claim.c's to find) */
	/* an external run's lease or max_duration runs out (external.c) */
	"  (SELECT min(lease_expires_at) FROM taskorch.run WHERE status = " SQL_STATUS(EXECUTING) "),"
	"  (SELECT min(r.claimed_at + coalesce(r.max_duration, t.max_duration))"
	"     FROM taskorch.run r JOIN taskorch.task t ON t.id = r.task_id"
	"    WHERE r.status = " SQL_STATUS(EXECUTING) "),"
	/* an external task's run becomes due: its workers are told */
	"  (SELECT min(d.run_at) FROM taskorch.task t CROSS JOIN LATERAL"
	"     (SELECT r.run_at FROM taskorch.run r WHERE r.task_id = t.id"
	"       AND r.status = " SQL_STATUS(QUEUED) " AND r.external AND r.run_at > :now"
	"      ORDER BY r.run_at LIMIT 1) d WHERE t.external),"
	"  (SELECT min(run_at) FROM taskorch.run WHERE status = " SQL_STATUS(DELAYED) "),"
	"  (SELECT min(expires_at) FROM taskorch.run"
	"    WHERE status = " SQL_STATUS(QUEUED) " AND expires_at IS NOT NULL),"
	"  (SELECT min(resume_at) FROM taskorch.waitpoint"
	"    WHERE completed_at IS NULL AND kind = 'time'),"
	"  (SELECT min(next_tick) FROM taskorch.schedule WHERE active)) AS due",
	PLAN_PARAMS(now_params), PLAN_COLUMNS(due_columns), .shape = PLAN_INDEX_ORDER
};

/* a run that ended, for taskorch.stats (stats.c) */
typedef struct EndedRow
{
	PlanValue	task_id;
	PlanValue	queue;
} EndedRow;

static const PlanField ended_columns[] = {
	PLAN_COLUMN(EndedRow, task_id),
	PLAN_COLUMN(EndedRow, queue),
};

/* DELAYED runs whose time has come join the queue; their ttl starts now */
static NamedPlan promote_plan = {
	.sql = "WITH due AS (SELECT id FROM taskorch.run WHERE status = " SQL_STATUS(DELAYED) " AND run_at <= :now"
	"              ORDER BY run_at LIMIT 1000 FOR UPDATE SKIP LOCKED)"
	" UPDATE taskorch.run r SET status = " SQL_STATUS(QUEUED) ", updated_at = :now,"
	"        run_at = :now - r.priority * interval '1 second', expires_at = :now + r.ttl"
	"   FROM due WHERE r.id = due.id",
	PLAN_PARAMS(now_params), .shape = PLAN_INDEX_ORDER
};

/* QUEUED runs that did not start within their ttl */
static NamedPlan expire_plan = {
	.sql = "WITH due AS (SELECT id FROM taskorch.run WHERE status = " SQL_STATUS(QUEUED) " AND expires_at <= :now"
	"              ORDER BY expires_at LIMIT 1000 FOR UPDATE SKIP LOCKED)"
	" UPDATE taskorch.run r SET status = " SQL_STATUS(EXPIRED) ", finished_at = :now, updated_at = :now,"
	"        error = jsonb_build_object('message',"
	"                'run expired: it did not start within its ttl of ' || r.ttl)"
	"   FROM due WHERE r.id = due.id"
	" RETURNING r.task_id, r.queue",
	PLAN_PARAMS(now_params), PLAN_COLUMNS(ended_columns), .shape = PLAN_INDEX_ORDER
};

/*
 * Promote due DELAYED runs, resume WAITING runs whose wait is over, and
 * expire QUEUED runs past their ttl.  Returns the number queued (they are
 * now claimable, possibly behind the mark).
 */
int
promote_and_expire(void)
{
	NowArgs		args = {pv_timestamptz(GetCurrentTimestamp())};
	int			promoted;
	int			expired;

	SPI_connect();
	(void) run_transition(RUN_DELAYED, RUN_QUEUED, BY_MAINTENANCE);
	promoted = taskorch_execute_args(&promote_plan, &args, false, 0);
	(void) run_transition(RUN_QUEUED, RUN_EXPIRED, BY_MAINTENANCE);
	expired = taskorch_execute_args(&expire_plan, &args, false, 0);
	for (int i = 0; i < expired; i++)
	{
		EndedRow	row;

		taskorch_read_row(&expire_plan, i, &row);
		stats_note_end(TextDatumGetCString(row.task_id.datum), TextDatumGetCString(row.queue.datum),
					   RUN_EXPIRED);
	}
	SPI_finish();
	return promoted + waits_resume();
}

/* Milliseconds until a worker next has work (a delay, an expiry, ...); -1 if none. */
int64
next_due_ms(void)
{
	TimestampTz now = GetCurrentTimestamp();
	NowArgs		args = {pv_timestamptz(now)};
	DueRow		row;
	int64		result = -1;

	SPI_connect();
	taskorch_execute_args(&next_due_plan, &args, true, 1);
	taskorch_read_row(&next_due_plan, 0, &row);
	if (row.due.present)
		result = TimestampDifferenceMilliseconds(now, DatumGetTimestampTz(row.due.datum)) + 1;
	SPI_finish();
	return result;
}
