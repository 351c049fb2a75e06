/*-------------------------------------------------------------------------
 *
 * claim.c
 *	  The claim of due runs (FOR UPDATE SKIP LOCKED through the partial
 *	  index run_queue_idx) and the claim mark that keeps a worker's claims
 *	  off the dead head of that index.  The columns a claimed run is read
 *	  from (CLAIMED_RUN_SELECT, claim_read_run()) are shared with the
 *	  claims and completions of external runs (external.c).  What becomes due is maintenance.c's;
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

typedef struct ClaimArgs
{
	PlanValue	now;
	PlanValue	mark_run_at;	/* claim after (mark_run_at, mark_id) */
	PlanValue	mark_id;
	PlanValue	limit;
	PlanValue	full_keys;		/* "queue\x1fkey"s at their concurrency limit */
} ClaimArgs;

/* a claimed run, as the claim returns it: the columns claim_read_run() reads */
typedef struct ClaimRow
{
	PlanValue	id;
	PlanValue	task_id;
	PlanValue	payload;
	PlanValue	attempts;
	PlanValue	max_attempts;
	PlanValue	run_at;
	PlanValue	task_found;
	PlanValue	fn;
	PlanValue	owner;
	PlanValue	retry_factor;
	PlanValue	retry_min_ms;
	PlanValue	retry_max_ms;
	PlanValue	retry_randomize;
	PlanValue	max_duration_ms;
	PlanValue	expires_at;
	PlanValue	metadata;
	PlanValue	concurrency_limit;
	PlanValue	queue;
	PlanValue	concurrency_key;
	PlanValue	parent_run_id;
	PlanValue	parent_wait_seq;
	PlanValue	root_run_id;
	PlanValue	output_schema;
	PlanValue	on_success;
	PlanValue	on_failure;
	PlanValue	on_start;
	PlanValue	unstarted;
	PlanValue	triggered_by;
	PlanValue	task_reowned;
	PlanValue	external;
	PlanValue	claimed_at;
	PlanValue	holds_slot;
	PlanValue	status;
	PlanValue	lease_expires_at;
	PlanValue	lease_ms;
} ClaimRow;

static const PlanField claim_params[] = {
	PLAN_PARAM(ClaimArgs, now, TIMESTAMPTZOID),
	PLAN_PARAM(ClaimArgs, mark_run_at, TIMESTAMPTZOID),
	PLAN_PARAM(ClaimArgs, mark_id, TEXTOID),
	PLAN_PARAM(ClaimArgs, limit, INT4OID),
	PLAN_PARAM(ClaimArgs, full_keys, TEXTARRAYOID),
};
const PlanField claimed_run_columns[CLAIMED_RUN_NCOLUMNS] = {
	PLAN_COLUMN(ClaimRow, id),
	PLAN_COLUMN(ClaimRow, task_id),
	PLAN_COLUMN(ClaimRow, payload),
	PLAN_COLUMN(ClaimRow, attempts),
	PLAN_COLUMN(ClaimRow, max_attempts),
	PLAN_COLUMN(ClaimRow, run_at),
	PLAN_COLUMN(ClaimRow, task_found),
	PLAN_COLUMN(ClaimRow, fn),
	PLAN_COLUMN(ClaimRow, owner),
	PLAN_COLUMN(ClaimRow, retry_factor),
	PLAN_COLUMN(ClaimRow, retry_min_ms),
	PLAN_COLUMN(ClaimRow, retry_max_ms),
	PLAN_COLUMN(ClaimRow, retry_randomize),
	PLAN_COLUMN(ClaimRow, max_duration_ms),
	PLAN_COLUMN(ClaimRow, expires_at),
	PLAN_COLUMN(ClaimRow, metadata),
	PLAN_COLUMN(ClaimRow, concurrency_limit),
	PLAN_COLUMN(ClaimRow, queue),
	PLAN_COLUMN(ClaimRow, concurrency_key),
	PLAN_COLUMN(ClaimRow, parent_run_id),
	PLAN_COLUMN(ClaimRow, parent_wait_seq),
	PLAN_COLUMN(ClaimRow, root_run_id),
	PLAN_COLUMN(ClaimRow, output_schema),
	PLAN_COLUMN(ClaimRow, on_success),
	PLAN_COLUMN(ClaimRow, on_failure),
	PLAN_COLUMN(ClaimRow, on_start),
	PLAN_COLUMN(ClaimRow, unstarted),
	PLAN_COLUMN(ClaimRow, triggered_by),
	PLAN_COLUMN(ClaimRow, task_reowned),
	PLAN_COLUMN(ClaimRow, external),
	PLAN_COLUMN(ClaimRow, claimed_at),
	PLAN_COLUMN(ClaimRow, holds_slot),
	PLAN_COLUMN(ClaimRow, status),
	PLAN_COLUMN(ClaimRow, lease_expires_at),
	PLAN_COLUMN(ClaimRow, lease_ms),
};
StaticAssertDecl(sizeof(ClaimRow) == CLAIMED_RUN_NCOLUMNS * sizeof(PlanValue),
				 "claimed_run_columns lists every field of ClaimRow");

static NamedPlan claim_plan = {
	.sql = "SELECT " CLAIMED_RUN_SELECT
	" WHERE r.status = " SQL_STATUS(QUEUED) " AND NOT r.external AND r.run_at <= :now"
	"   AND (r.run_at, r.id) > (:mark_run_at, :mark_id)"
	"   AND NOT coalesce(q.paused, false)"
	"   AND " CLAIM_KEY_NOT_FULL
	" ORDER BY r.run_at, r.id"
	" LIMIT :limit"
	"   FOR UPDATE OF r SKIP LOCKED",
	PLAN_PARAMS(claim_params), .columns = claimed_run_columns,
	.ncolumns = CLAIMED_RUN_NCOLUMNS, .shape = PLAN_INDEX_ORDER
};

/*
 * Copy row `i` of plan p (whose columns are CLAIMED_RUN_SELECT's) into
 * `run`, in the current context.
 */
void
claim_read_run(NamedPlan *p, int i, ClaimedRun *run)
{
	ClaimRow	r;

	taskorch_read_row(p, i, &r);
	run->id = pv_cstring(r.id);
	run->task_id = pv_cstring(r.task_id);
	run->payload = pv_jsonb_copy(r.payload);
	run->attempts = DatumGetInt32(r.attempts.datum);
	run->max_attempts = DatumGetInt32(r.max_attempts.datum);
	run->run_at = DatumGetTimestampTz(r.run_at.datum);
	run->task_found = DatumGetBool(r.task_found.datum);
	run->expires_at = r.expires_at.present ? DatumGetTimestampTz(r.expires_at.datum) : 0;
	run->metadata = pv_jsonb_copy(r.metadata);
	run->metadata_changed = false;
	run->concurrency_limit = r.concurrency_limit.present ?
		DatumGetInt32(r.concurrency_limit.datum) : 0;
	run->queue = pv_cstring(r.queue);
	run->concurrency_key = pv_cstring(r.concurrency_key);
	run->skipped = false;
	run->parent_run_id = pv_cstring(r.parent_run_id);
	run->parent_wait_seq = r.parent_wait_seq.present ?
		DatumGetInt32(r.parent_wait_seq.datum) : 0;
	run->root_run_id = pv_cstring(r.root_run_id);
	run->output_schema = pv_jsonb_copy(r.output_schema);
	run->on_success = pv_cstring(r.on_success);
	run->on_failure = pv_cstring(r.on_failure);
	run->on_start = pv_cstring(r.on_start);
	run->unstarted = DatumGetBool(r.unstarted.datum);
	run->triggered_by = DatumGetObjectId(r.triggered_by.datum);
	run->task_reowned = DatumGetBool(r.task_reowned.datum);
	run->external = DatumGetBool(r.external.datum);
	run->started_at = r.claimed_at.present ? DatumGetTimestampTz(r.claimed_at.datum) : 0;
	run->holds_slot = DatumGetBool(r.holds_slot.datum);
	run->row_status = run_status_parse(TextDatumGetCString(r.status.datum));
	run->lease_expires_at = r.lease_expires_at.present ?
		DatumGetTimestampTz(r.lease_expires_at.datum) : 0;
	run->lease_ms = r.lease_ms.present ? DatumGetInt32(r.lease_ms.datum) : 0;
	if (!run->task_found)
		return;
	run->fn = r.fn.present ? DatumGetObjectId(r.fn.datum) : InvalidOid;
	run->owner = DatumGetObjectId(r.owner.datum);
	run->retry_factor = DatumGetFloat8(r.retry_factor.datum);
	run->retry_min_ms = DatumGetInt32(r.retry_min_ms.datum);
	run->retry_max_ms = DatumGetInt32(r.retry_max_ms.datum);
	run->retry_randomize = DatumGetBool(r.retry_randomize.datum);
	run->max_duration_ms = r.max_duration_ms.present ?
		DatumGetInt32(r.max_duration_ms.datum) : 0;
}

/* The "queue\x1fkey" a run counts against, as CLAIM_KEY_NOT_FULL spells it */
char *
claim_full_key(const ClaimedRun *run)
{
	return psprintf("%s\x1f%s", run->queue, run->concurrency_key ? run->concurrency_key : "");
}

/* The keys found full (a List of String, claim_full_key()'s) as the claims' :full_keys */
PlanValue
claim_full_keys(List *full_keys)
{
	Datum	   *keys = palloc(sizeof(Datum) * Max(list_length(full_keys), 1));
	ListCell   *lc;
	int			n = 0;

	foreach(lc, full_keys)
		keys[n++] = CStringGetTextDatum(strVal(lfirst(lc)));
	return pv_datum(PointerGetDatum(construct_array(keys, n, TEXTOID, -1, false, TYPALIGN_INT)));
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
	ClaimArgs	args;
	int			n;

	args.now = pv_timestamptz(GetCurrentTimestamp());
	args.mark_run_at = pv_timestamptz(pos->valid ? pos->run_at : DT_NOBEGIN);
	args.mark_id = pv_text(pos->valid ? pos->id : "");
	args.limit = pv_int4(limit);
	args.full_keys = claim_full_keys(full_keys);

	SPI_connect();
	n = taskorch_execute_args(&claim_plan, &args, false, 0);
	for (int i = 0; i < n; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		claim_read_run(&claim_plan, i, &runs[i]);
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
