/*-------------------------------------------------------------------------
 *
 * retention.c
 *	  Retention: finished runs leave the runs table, with their attempts,
 *	  logs and waitpoints, once older than their task's retention (or
 *	  taskorch.retention); purge() does it on demand.
 *
 * A run may be removed when it has finished (COMPLETED, FAILED, CANCELED,
 * EXPIRED, TIMED_OUT, CRASHED, SYSTEM_FAILURE) before now - retention,
 * and
 *	- no unfinished run is its parent (a waiting parent reads its child's
 *	  outcome when it resumes), and
 *	- it holds no idempotency key still alive (the key would otherwise name
 *	  no run before its time: a run is kept as long as its key).
 * Runs that did not finish are never removed.  Batches with no run left
 * and finished wait tokens go after the retention too.
 *
 * The background purge runs in a worker's maintenance, every
 * second, in transactions of their own: at most PURGE_STEP runs per
 * statement, oldest first per task through the index of runs by task and
 * creation time (a run finishes after it is created, so the runs finished
 * before a moment were all created before it: no index of its own to keep
 * up at every completion), locked SKIP LOCKED, so it never waits on a
 * batch and a backlog is worked off in small steps between batches.
 * Batches and finished wait tokens go by their own creation time's index.
 * The plans keep those index walks whatever the statistics say (a pass
 * that finds nothing reads a few index pages, never the table).
 * purge() removes what its caller may see (the runs' row-level security
 * picks them) and returns how many.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(taskorch_purge);

#define PURGE_STEP 1000

/* what makes a finished run removable, `r` being the run, NOW the time */
#define REMOVABLE(NOW) \
	" taskorch.finished(r.status)" \
	" AND NOT (r.idempotency_key IS NOT NULL AND r.idempotency_key_expires_at > " NOW ")" \
	" AND NOT EXISTS (SELECT FROM taskorch.run p" \
	"                  WHERE p.id = r.parent_run_id AND NOT taskorch.finished(p.status))"

typedef struct PurgeArgs
{
	PlanValue	now;
	PlanValue	retention;		/* taskorch.retention */
	PlanValue	step;
} PurgeArgs;

static const PlanField purge_params[] = {
	PLAN_PARAM(PurgeArgs, now, TIMESTAMPTZOID),
	PLAN_PARAM(PurgeArgs, retention, INTERVALOID),
	PLAN_PARAM(PurgeArgs, step, INT4OID),
};

/* one step of the background purge: every task's oldest removable runs */
static NamedPlan purge_step_plan = {
	.sql = "WITH doomed AS ("
	"  SELECT d.id FROM taskorch.task_name n"
	"  LEFT JOIN taskorch.task t ON t.id = n.id"
	"  CROSS JOIN LATERAL (SELECT r.id FROM taskorch.run r"
	"      WHERE r.task_id = n.id AND r.created_at < :now - coalesce(t.retention, :retention)"
	"        AND r.finished_at < :now - coalesce(t.retention, :retention) AND" REMOVABLE(":now")
	"      ORDER BY r.created_at LIMIT :step FOR UPDATE OF r SKIP LOCKED) d"
	"  LIMIT :step)"
	" DELETE FROM taskorch.run r USING doomed WHERE r.id = doomed.id",
	PLAN_PARAMS(purge_params), .shape = PLAN_INDEX_ORDER
};

/* batches none of whose runs is left, and finished wait tokens, past the retention */
static NamedPlan leftovers_plan = {
	.sql = "WITH b AS (DELETE FROM taskorch.batch b"
	"           WHERE b.id IN (SELECT b2.id FROM taskorch.batch b2"
	"                           WHERE b2.created_at < :now - :retention"
	"                             AND NOT EXISTS (SELECT FROM taskorch.run r WHERE r.batch_id = b2.id)"
	"                           LIMIT :step FOR UPDATE SKIP LOCKED))"
	" DELETE FROM taskorch.wait_token w"
	"  WHERE w.id IN (SELECT w2.id FROM taskorch.wait_token w2"
	"                  WHERE (w2.completed_at IS NOT NULL OR w2.timed_out)"
	"                    AND w2.created_at < :now - :retention"
	"                  LIMIT :step FOR UPDATE SKIP LOCKED)",
	PLAN_PARAMS(purge_params), .shape = PLAN_INDEX_ORDER
};

static PlanValue
retention_interval(void)
{
	Interval   *iv = palloc0(sizeof(Interval));

	iv->time = (int64) taskorch_retention_s * USECS_PER_SEC;
	return pv_datum(IntervalPGetDatum(iv));
}

/*
 * One step of the background purge (worker maintenance; the caller
 * commits); *more: there may be more to remove.  Returns the runs
 * removed: when taskorch.retention is 0 (keep everything), only those of
 * tasks that set a retention.
 */
int
retention_purge(bool *more)
{
	PurgeArgs	args;
	int			n;

	args.now = pv_timestamptz(GetCurrentTimestamp());
	args.retention = taskorch_retention_s > 0 ? retention_interval() : PV_NULL;
	args.step = pv_int4(PURGE_STEP);
	SPI_connect();
	n = taskorch_execute_args(&purge_step_plan, &args, false, 0);
	if (taskorch_retention_s > 0)
		taskorch_execute_args(&leftovers_plan, &args, false, 0);
	SPI_finish();
	*more = n == PURGE_STEP;
	return n;
}

typedef struct IdsArgs
{
	PlanValue	ids;
} IdsArgs;

static const PlanField ids_params[] = {
	PLAN_PARAM(IdsArgs, ids, TEXTARRAYOID),
};

static NamedPlan delete_ids_plan = {
	.sql = "DELETE FROM taskorch.run WHERE id = ANY (:ids)",
	PLAN_PARAMS(ids_params)
};

/*
 * SQL: taskorch.purge(older_than, task) -> the number of runs removed:
 * the removable runs the caller may see, finished before now - older_than
 * (or, NULL, before their task's retention), of `task` (NULL: any).
 */
Datum
taskorch_purge(PG_FUNCTION_ARGS)
{
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	Oid			types[4] = {TIMESTAMPTZOID, INTERVALOID, TEXTOID, INTERVALOID};
	int64		removed = 0;

	values[0] = TimestampTzGetDatum(GetCurrentTimestamp());
	if (taskorch_retention_s > 0)
		values[3] = retention_interval().datum;
	else
		nulls[3] = 'n';			/* keep everything, but what a task says */
	if (PG_ARGISNULL(0))
		nulls[1] = 'n';
	else
	{
		Interval   *iv = palloc0(sizeof(Interval));

		iv->time = duration_ms_from_text("older_than", TextDatumGetCString(PG_GETARG_DATUM(0)), true) * 1000;
		values[1] = IntervalPGetDatum(iv);
	}
	if (PG_ARGISNULL(1))
		nulls[2] = 'n';
	else
		values[2] = PG_GETARG_DATUM(1);
	SPI_connect();
	for (;;)
	{
		IdsArgs		del;
		PlanItems	ids;
		uint64		n;
		int			nestlevel;
		int			rc;

		/*
		 * As the caller: the runs' row-level security says which it may see.
		 * Under a pinned search_path, so that no operator or function of the
		 * caller's stands in for the rule that keeps runs.
		 */
		nestlevel = pin_search_path();
		rc = SPI_execute_with_args("SELECT r.id FROM taskorch.run r"
								  "  LEFT JOIN taskorch.task t ON t.id = r.task_id"
								  " WHERE r.finished_at IS NOT NULL"
								  "   AND ($3 IS NULL OR r.task_id = $3)"
								  "   AND r.finished_at < $1 - coalesce($2, t.retention, $4) AND"
								  REMOVABLE("$1")
								  " LIMIT 10000",
								  4, types, values, nulls, true, 0);
		unpin_search_path(nestlevel);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "taskorch: could not select the runs to purge");
		n = SPI_processed;
		if (n == 0)
			break;
		ids = plan_items_new((int) n);
		for (uint64 i = 0; i < n; i++)
		{
			bool		isnull;

			ids.values[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
			ids.nulls[i] = false;
		}
		del.ids = plan_items_array(ids, (int) n, TEXTOID);
		removed += taskorch_execute_args(&delete_ids_plan, &del, false, 0);
		CommandCounterIncrement();
		if (n < 10000)
			break;
	}
	SPI_finish();
	PG_RETURN_INT64(removed);
}
