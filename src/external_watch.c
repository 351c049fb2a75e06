/*-------------------------------------------------------------------------
 *
 * external_watch.c
 *	  The server's watch over external runs (external.c): the backends that
 *	  claimed runs, the runs their workers lost, and the runs that become
 *	  due for external workers.
 *
 * Lost runs (external_settle_lost, in a worker's maintenance): a run whose
 * lease expired, whose attempt ran past max_duration (TIMED_OUT), or whose
 * claiming backend exited is charged the attempt: retried per its task's
 * policy, CRASHED when none is left.  A backend that claimed runs notes its
 * exit in shared memory (gone_pid) and wakes the database's worker, so its
 * runs are released at once (after CLAIMER_GONE_GRACE_MS) rather than when
 * the lease expires.  A run claimed before the server restarted is left to
 * its lease: its worker may reconnect and heartbeat (which binds the run to
 * its new backend) or complete it.  Through a transaction-mode pooler the
 * backend outlives the client, and only the lease frees the run.
 *
 * Due runs (external_notify_due): a retry's delay over, a delayed run
 * promoted: the workers of its task hear of it on EXTERNAL_CHANNEL.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/procarray.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(taskorch_claimer_alive);

typedef struct NowArgs
{
	PlanValue	now;
} NowArgs;

static const PlanField now_params[] = {
	PLAN_PARAM(NowArgs, now, TIMESTAMPTZOID),
};
/* runs whose lease expired, whose attempt ran too long, or whose claimer left */
static NamedPlan lost_plan = {
	.sql = "SELECT " CLAIMED_RUN_SELECT
	" LEFT JOIN taskorch.task t ON t.id = r.task_id AND t.owner::oid = r.owner::oid"
	" WHERE r.status = " SQL_STATUS(EXECUTING) " AND r.external"
	"   AND (r.lease_expires_at <= :now"
	"        OR r.claimed_at + coalesce(r.max_duration, t.max_duration) <= :now"
	"        OR NOT taskorch_internal.claimer_alive(r.claimed_by_pid, r.claimed_by_start))"
	" ORDER BY r.lease_expires_at LIMIT 1000"
	"   FOR UPDATE OF r SKIP LOCKED",
	PLAN_PARAMS(now_params), .columns = claimed_run_columns,
	.ncolumns = CLAIMED_RUN_NCOLUMNS, .shape = PLAN_INDEX_ORDER
};

typedef struct DueArgs
{
	PlanValue	since;
	PlanValue	now;
} DueArgs;

typedef struct DueRow
{
	PlanValue	id;
} DueRow;

static const PlanField due_params[] = {
	PLAN_PARAM(DueArgs, since, TIMESTAMPTZOID),
	PLAN_PARAM(DueArgs, now, TIMESTAMPTZOID),
};
static const PlanField due_columns[] = {
	PLAN_COLUMN(DueRow, id),
};
/* external tasks with runs that became due in (since, now] */
static NamedPlan due_plan = {
	.sql = "SELECT t.id FROM taskorch.task t WHERE t.external AND EXISTS ("
	"  SELECT FROM taskorch.run r WHERE r.task_id = t.id AND r.status = " SQL_STATUS(QUEUED)
	"     AND r.external AND r.run_at > :since AND r.run_at <= :now)",
	PLAN_PARAMS(due_params), PLAN_COLUMNS(due_columns), .shape = PLAN_INDEX_ORDER
};

/* ---------------------------------------------------------------------
 * Claimers
 * ---------------------------------------------------------------------
 */

/* A backend that claimed runs exits: say so, and have its runs released. */
static void
claimer_exit(int code, Datum arg)
{
	uint32		n;

	if (taskorch_shared == NULL)
		return;
	n = pg_atomic_fetch_add_u32(&taskorch_shared->claimers_gone, 1) % GONE_CLAIMERS;
	taskorch_shared->gone_at[n] = GetCurrentTimestamp();
	pg_write_barrier();
	taskorch_shared->gone_pid[n] = MyProcPid;
	taskorch_wake_database(MyDatabaseId);
}

void
external_claimer_register(void)
{
	static bool registered = false;

	if (!registered)
	{
		before_shmem_exit(claimer_exit, (Datum) 0);
		registered = true;
	}
}

/*
 * SQL: taskorch_internal.claimer_alive(pid, started) -> is the backend
 * that claimed a run still there?  A claim made before shared memory was
 * (the server restarted) is left to its lease: true.  A backend that
 * exited less than CLAIMER_GONE_GRACE_MS ago counts as there: if the
 * server is shutting down, its workers stop before they release what the
 * backends leaving with them held (the runs keep their lease across the
 * restart).
 */
Datum
taskorch_claimer_alive(PG_FUNCTION_ARGS)
{
	int32		pid;
	TimestampTz started;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_BOOL(true);
	pid = PG_GETARG_INT32(0);
	started = PG_GETARG_TIMESTAMPTZ(1);
	if (started < taskorch_shared->started_at)
		PG_RETURN_BOOL(true);
	for (int i = 0; i < GONE_CLAIMERS; i++)
		if (taskorch_shared->gone_pid[i] == pid && taskorch_shared->gone_at[i] >= started)
			PG_RETURN_BOOL(!TimestampDifferenceExceeds(taskorch_shared->gone_at[i],
													   GetCurrentTimestamp(),
													   CLAIMER_GONE_GRACE_MS));
	PG_RETURN_BOOL(BackendPidGetProc(pid) != NULL);
}

/*
 * Charge the attempt of every run whose lease expired, whose attempt ran
 * past max_duration, or whose claiming backend exited (up to 1,000, in the
 * current transaction).  Returns how many.
 */
int
external_settle_lost(void)
{
	NowArgs		args;
	TimestampTz now = GetCurrentTimestamp();
	MemoryContext cxt = CurrentMemoryContext;
	ClaimedRun *runs;
	int			n;
	int			crashed = 0;

	args.now = pv_timestamptz(now);
	concurrency_counts_ready();
	SPI_connect();
	n = taskorch_execute_args(&lost_plan, &args, false, 0);
	runs = MemoryContextAllocZero(cxt, sizeof(ClaimedRun) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);
		ClaimedRun *run = &runs[i];
		const char *why;

		claim_read_run(&lost_plan, i, run);
		run->cxt = cxt;
		run->finished_at = now;
		if (run->max_duration_ms > 0 &&
			now >= TimestampTzPlusMilliseconds(run->started_at, run->max_duration_ms))
			run->timed_out = true;
		else
		{
			JsonObject	o;

			run->lost = true;
			why = now >= run->lease_expires_at ?
				"its lease expired" : "the connection that claimed it ended";
			json_begin(&o);
			json_string(&o, "message", psprintf("the external worker of this run was lost: %s", why));
			json_string(&o, "name", "LostRunError");
			run->reported_error = json_end(&o);
		}
		decide_outcome(run);
		hooks_fire(run);
		MemoryContextSwitchTo(old);
	}
	if (n > 0)
		complete_runs(runs, n);
	for (int i = 0; i < n; i++)
	{
		if (runs[i].holds_slot)
			concurrency_release_at_commit(concurrency_key_hash(runs[i].queue,
															   runs[i].concurrency_key));
		crashed += runs[i].status == RUN_CRASHED;
	}
	if (n > 0)
		ereport(LOG,
				errmsg("taskorch: %d external run%s lost by their workers or past max_duration (the first %s); %d CRASHED with no attempt left",
					   n, n == 1 ? "" : "s", runs[0].id, crashed));
	SPI_finish();
	return n;
}

/*
 * Tell external workers of the tasks whose runs became due since `since`
 * (a retry's delay over, a delayed run promoted), at commit.  Returns the
 * time to pass as `since` next.
 */
TimestampTz
external_notify_due(TimestampTz since)
{
	TimestampTz now = GetCurrentTimestamp();
	DueArgs		args = {pv_timestamptz(since), pv_timestamptz(now)};
	int			n;

	SPI_connect();
	n = taskorch_execute_args(&due_plan, &args, true, 0);
	for (int i = 0; i < n; i++)
	{
		DueRow		row;

		taskorch_read_row(&due_plan, i, &row);
		external_notify_task(TextDatumGetCString(row.id.datum));
	}
	SPI_finish();
	return now;
}
