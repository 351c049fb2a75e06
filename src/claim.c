/*-------------------------------------------------------------------------
 *
 * claim.c
 *	  The claim of due runs (FOR UPDATE SKIP LOCKED through the partial
 *	  index run_queue_idx) and the claim mark that keeps a worker's claims
 *	  off the dead head of that index.  What becomes due is maintenance.c's;
 *	  recording the batch's outcomes is complete.c's.
 *
 * Transaction: the claim runs in the batch's top-level transaction, never
 * in a task's subtransaction, and locks each run row there; complete.c
 * updates the rows under the same top-level XID, so no MultiXact is
 * created.  Memory: the claimed runs are read into the batch context the
 * caller passes (worker.c's batch_cxt, reset after each commit).  Lock:
 * none of taskorch's shared locks; the mark reads taskorch_shared->requeued
 * atomically.
 *
 * The claim mark: every completed run leaves a dead entry at the head of
 * run_queue_idx until vacuum removes it, and a claim that always starts at
 * the head walks all of them.  A worker therefore remembers where its last
 * batch ended, (run_at, id), and the next claim starts after it.  Runs
 * behind the mark (skipped because another worker held them, or triggered
 * by a transaction that committed late) are picked up when the mark is
 * reset: whenever a claim comes back empty, at least once a second, and
 * when a run was queued ahead of the present (a priority, a promoted
 * delayed run: taskorch_shared->requeued counts those commits).
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#define MARK_RESET_MS 1000

static TaskorchPlan claim_plan = {
	"SELECT r.id, r.task_id, r.payload, r.attempts, r.max_attempts,"
	"       r.run_at, t.id IS NOT NULL, t.fn::oid, t.owner::oid,"
	"       t.retry_factor, t.retry_min_ms, t.retry_max_ms, t.retry_randomize,"
	"       (extract(epoch FROM coalesce(r.max_duration, t.max_duration)) * 1000)::int4,"
	"       r.expires_at, r.metadata, q.concurrency_limit, r.queue, r.concurrency_key,"
	"       r.parent_run_id, r.parent_wait_seq, t.output_schema, t.on_success, t.on_failure,"
	"       r.triggered_by::oid,"
	"       t.id IS NULL AND EXISTS (SELECT FROM taskorch.task o WHERE o.id = r.task_id)"
	"  FROM taskorch.run r LEFT JOIN taskorch.task t ON t.id = r.task_id AND t.owner::oid = r.owner::oid"
	"  LEFT JOIN taskorch.queue q ON q.name = r.queue"
	" WHERE r.status = " SQL_STATUS(QUEUED) " AND r.run_at <= $1"
	"   AND (r.run_at, r.id) > ($2, $3)"
	"   AND NOT coalesce(q.paused, false)"
	"   AND r.queue || E'\\x1f' || coalesce(r.concurrency_key, '') <> ALL ($5)"
	" ORDER BY r.run_at, r.id"
	" LIMIT $4"
	"   FOR UPDATE OF r SKIP LOCKED",
	5, {TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID, INT4OID, TEXTARRAYOID},
	NULL
};

static Datum
col(HeapTuple tup, TupleDesc desc, int attno, bool *isnull)
{
	return SPI_getbinval(tup, desc, attno, isnull);
}

/* Copy one claimed row into `run` (in the batch context). */
static void
read_claimed(ClaimedRun *run, HeapTuple tup, TupleDesc desc)
{
	bool		isnull;
	Datum		d;

	run->id = TextDatumGetCString(col(tup, desc, 1, &isnull));
	run->task_id = TextDatumGetCString(col(tup, desc, 2, &isnull));
	run->payload = DatumGetJsonbPCopy(col(tup, desc, 3, &isnull));
	run->attempts = DatumGetInt32(col(tup, desc, 4, &isnull));
	run->max_attempts = DatumGetInt32(col(tup, desc, 5, &isnull));
	run->run_at = DatumGetTimestampTz(col(tup, desc, 6, &isnull));
	run->task_found = DatumGetBool(col(tup, desc, 7, &isnull));
	d = col(tup, desc, 15, &isnull);
	run->expires_at = isnull ? 0 : DatumGetTimestampTz(d);
	run->metadata = DatumGetJsonbPCopy(col(tup, desc, 16, &isnull));
	run->metadata_changed = false;
	d = col(tup, desc, 17, &isnull);
	run->concurrency_limit = isnull ? 0 : DatumGetInt32(d);
	run->queue = TextDatumGetCString(col(tup, desc, 18, &isnull));
	d = col(tup, desc, 19, &isnull);
	run->concurrency_key = isnull ? NULL : TextDatumGetCString(d);
	run->skipped = false;
	d = col(tup, desc, 20, &isnull);
	run->parent_run_id = isnull ? NULL : TextDatumGetCString(d);
	d = col(tup, desc, 21, &isnull);
	run->parent_wait_seq = isnull ? 0 : DatumGetInt32(d);
	d = col(tup, desc, 22, &isnull);
	run->output_schema = isnull ? NULL : DatumGetJsonbPCopy(d);
	d = col(tup, desc, 23, &isnull);
	run->on_success = isnull ? NULL : TextDatumGetCString(d);
	d = col(tup, desc, 24, &isnull);
	run->on_failure = isnull ? NULL : TextDatumGetCString(d);
	run->triggered_by = DatumGetObjectId(col(tup, desc, 25, &isnull));
	run->task_reowned = DatumGetBool(col(tup, desc, 26, &isnull));
	if (!run->task_found)
		return;
	run->fn = DatumGetObjectId(col(tup, desc, 8, &isnull));
	run->owner = DatumGetObjectId(col(tup, desc, 9, &isnull));
	run->retry_factor = DatumGetFloat8(col(tup, desc, 10, &isnull));
	run->retry_min_ms = DatumGetInt32(col(tup, desc, 11, &isnull));
	run->retry_max_ms = DatumGetInt32(col(tup, desc, 12, &isnull));
	run->retry_randomize = DatumGetBool(col(tup, desc, 13, &isnull));
	d = col(tup, desc, 14, &isnull);
	run->max_duration_ms = isnull ? 0 : DatumGetInt32(d);
}

/*
 * Start of a batch: forget a mark that is due for a reset, so that runs
 * left behind it are found again.
 */
void
claim_mark_start(ClaimMark *mark)
{
	TimestampTz now = GetCurrentTimestamp();
	uint32		requeued = pg_atomic_read_u32(&taskorch_shared->requeued);

	if (mark->valid && TimestampDifferenceExceeds(mark->set_at, now, MARK_RESET_MS))
		mark->valid = false;
	/* runs were queued ahead of "now" (priority, promotion): look from the head */
	if (requeued != mark->requeued)
	{
		mark->valid = false;
		mark->requeued = requeued;
	}
	if (!mark->valid)
		mark->set_at = now;
}

/*
 * End of a batch: the next one starts after the last run executed (runs
 * claimed after it were released unexecuted).  A batch that executed
 * nothing found the queue drained: start at the head again.
 */
void
claim_mark_advance(ClaimMark *mark, const ClaimedRun *last)
{
	if (last == NULL)
	{
		mark->valid = false;
		return;
	}
	mark->valid = true;
	mark->run_at = last->run_at;
	strlcpy(mark->id, last->id, sizeof(mark->id));
}

/*
 * Claim up to `limit` due runs after position *pos (from the head when
 * pos->valid is false), locking them, and move *pos to the last one.
 * Runs of paused queues, and of the "queue\x1fkey"s in full_keys (found
 * at their concurrency limit), are passed over.  Returns the number claimed.
 */
int
claim_runs(ClaimedRun *runs, int limit, ClaimMark *pos, List *full_keys,
		   MemoryContext cxt)
{
	Datum		values[5];
	int			n;
	Datum	   *keys = palloc(sizeof(Datum) * Max(list_length(full_keys), 1));
	ListCell   *lc;
	int			nkeys = 0;

	values[0] = TimestampTzGetDatum(GetCurrentTimestamp());
	values[1] = TimestampTzGetDatum(pos->valid ? pos->run_at : DT_NOBEGIN);
	values[2] = CStringGetTextDatum(pos->valid ? pos->id : "");
	values[3] = Int32GetDatum(limit);
	foreach(lc, full_keys)
		keys[nkeys++] = CStringGetTextDatum(lfirst(lc));
	values[4] = PointerGetDatum(construct_array(keys, nkeys, TEXTOID, -1, false, TYPALIGN_INT));

	SPI_connect();
	n = taskorch_execute_as_owner(&claim_plan, values, NULL, false, 0);
	for (int i = 0; i < n; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		read_claimed(&runs[i], SPI_tuptable->vals[i], SPI_tuptable->tupdesc);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	if (n > 0)
	{
		pos->valid = true;
		pos->run_at = runs[n - 1].run_at;
		strlcpy(pos->id, runs[n - 1].id, sizeof(pos->id));
	}
	return n;
}
