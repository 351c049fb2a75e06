/*-------------------------------------------------------------------------
 *
 * claim.c
 *	  The claim of due runs (FOR UPDATE SKIP LOCKED through the partial
 *	  index run_queue_idx) and the recording of a batch's outcomes.
 *
 * Transaction: both run in the batch's top-level transaction, never in a
 * task's subtransaction.  The claim locks each run row; the completion
 * updates it under the same top-level XID, so no MultiXact is created.
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
#include "commands/async.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/json.h"
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
	" WHERE r.status = 'QUEUED' AND r.run_at <= $1"
	"   AND (r.run_at, r.id) > ($2, $3)"
	"   AND NOT coalesce(q.paused, false)"
	"   AND r.queue || E'\\x1f' || coalesce(r.concurrency_key, '') <> ALL ($5)"
	" ORDER BY r.run_at, r.id"
	" LIMIT $4"
	"   FOR UPDATE OF r SKIP LOCKED",
	5, {TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID, INT4OID, TEXTARRAYOID},
	NULL
};

/* when a worker next has something to do: a retry, a delay, an expiry */
static TaskorchPlan next_due_plan = {
	"SELECT least("
	"  (SELECT min(run_at) FROM taskorch.run WHERE status = 'QUEUED' AND run_at > $1),"
	"  (SELECT min(run_at) FROM taskorch.run WHERE status = 'DELAYED'),"
	"  (SELECT min(expires_at) FROM taskorch.run"
	"    WHERE status = 'QUEUED' AND expires_at IS NOT NULL),"
	"  (SELECT min(resume_at) FROM taskorch.waitpoint"
	"    WHERE completed_at IS NULL AND kind = 'time'))",
	1, {TIMESTAMPTZOID},
	NULL
};

/* DELAYED runs whose time has come join the queue; their ttl starts now */
static TaskorchPlan promote_plan = {
	"WITH due AS (SELECT id FROM taskorch.run WHERE status = 'DELAYED' AND run_at <= $1"
	"              ORDER BY run_at LIMIT 1000 FOR UPDATE SKIP LOCKED)"
	" UPDATE taskorch.run r SET status = 'QUEUED', updated_at = $1,"
	"        run_at = $1 - r.priority * interval '1 second', expires_at = $1 + r.ttl"
	"   FROM due WHERE r.id = due.id",
	1, {TIMESTAMPTZOID},
	NULL
};

/* QUEUED runs that did not start within their ttl */
static TaskorchPlan expire_plan = {
	"WITH due AS (SELECT id FROM taskorch.run WHERE status = 'QUEUED' AND expires_at <= $1"
	"              ORDER BY expires_at LIMIT 1000 FOR UPDATE SKIP LOCKED)"
	" UPDATE taskorch.run r SET status = 'EXPIRED', finished_at = $1, updated_at = $1,"
	"        error = jsonb_build_object('message',"
	"                'run expired: it did not start within its ttl of ' || r.ttl)"
	"   FROM due WHERE r.id = due.id",
	1, {TIMESTAMPTZOID},
	NULL
};

static TaskorchPlan complete_plan = {
	"UPDATE taskorch.run r"
	"   SET status = u.status::taskorch.run_status, output = u.output,"
	"       error = u.error,"
	"       attempts = r.attempts + CASE WHEN u.status = 'WAITING' THEN 0 ELSE 1 END,"
	"       run_at = coalesce(u.next_run_at, r.run_at),"
	"       started_at = coalesce(r.started_at, u.started_at),"
	"       finished_at = u.finished_at, updated_at = $8,"
	"       metadata = coalesce(u.metadata, r.metadata),"
	"       expires_at = NULL"	/* a run that started no longer expires */
	"  FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::jsonb[],"
	"              $5::timestamptz[], $6::timestamptz[], $7::timestamptz[], $9::jsonb[])"
	"       AS u(id, status, output, error, next_run_at, started_at, finished_at, metadata)"
	" WHERE r.id = u.id",
	9, {TEXTARRAYOID, TEXTARRAYOID, JSONBARRAYOID, JSONBARRAYOID,
		TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID,
	TIMESTAMPTZOID, JSONBARRAYOID},
	NULL
};

static TaskorchPlan attempt_plan = {
	"INSERT INTO taskorch.attempt (run_id, number, status, error, started_at, finished_at)"
	" SELECT u.id, u.number, u.status::taskorch.run_status,"
	"        u.error, u.started_at, u.finished_at"
	"   FROM unnest($1::text[], $2::int4[], $3::text[], $4::jsonb[],"
	"               $5::timestamptz[], $6::timestamptz[])"
	"        AS u(id, number, status, error, started_at, finished_at)",
	6, {TEXTARRAYOID, INT4ARRAYOID, TEXTARRAYOID, JSONBARRAYOID,
	TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID},
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
	promoted = taskorch_execute_as_owner(&promote_plan, values, NULL, false, 0);
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

static Datum
array_of(Datum *values, bool *nulls, int n, Oid elemtype)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			dims[1] = {n};
	int			lbs[1] = {1};

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs,
											  elemtype, typlen, typbyval,
											  typalign));
}

/* Record the failed attempts among runs[0..n) (attempt table). */
static void
record_failed_attempts(ClaimedRun *runs, int n)
{
	Datum	   *v[6];
	bool	   *nulls = palloc0(sizeof(bool) * n);
	Datum		values[6];
	int			k = 0;

	for (int c = 0; c < 6; c++)
		v[c] = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
	{
		if (runs[i].error == NULL)
			continue;
		v[0][k] = CStringGetTextDatum(runs[i].id);
		v[1][k] = Int32GetDatum(runs[i].attempts + 1);
		v[2][k] = CStringGetTextDatum(runs[i].timed_out ? "TIMED_OUT" : "FAILED");
		v[3][k] = JsonbPGetDatum(runs[i].error);
		v[4][k] = TimestampTzGetDatum(runs[i].started_at);
		v[5][k] = TimestampTzGetDatum(runs[i].finished_at);
		k++;
	}
	if (k == 0)
		return;
	values[0] = array_of(v[0], nulls, k, TEXTOID);
	values[1] = array_of(v[1], nulls, k, INT4OID);
	values[2] = array_of(v[2], nulls, k, TEXTOID);
	values[3] = array_of(v[3], nulls, k, JSONBOID);
	values[4] = array_of(v[4], nulls, k, TIMESTAMPTZOID);
	values[5] = array_of(v[5], nulls, k, TIMESTAMPTZOID);
	taskorch_execute_as_owner(&attempt_plan, values, NULL, false, 0);
}

/*
 * Tell LISTENers on NOTIFY_CHANNEL what the batch did, in one notification
 * sent at commit: {"runs": [{"id", "task", "status"}, ...]}, cut short
 * (with "more": count) to fit the notification size limit.  The cut falls
 * between whole entries, never inside a string, so the payload is valid
 * JSON in any encoding; an entry is small (a run id is "run_<n>", a task
 * id at most 128 bytes, check_name()), so the last one added still fits
 * in the 8000 bytes NOTIFY allows, above NOTIFY_PAYLOAD_BUDGET.
 */
static void
notify_outcomes(ClaimedRun *runs, int n)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"runs\": [");
	for (i = 0; i < n && buf.len < NOTIFY_PAYLOAD_BUDGET; i++)
	{
		if (i > 0)
			appendStringInfoString(&buf, ", ");
		appendStringInfoString(&buf, "{\"id\": ");
		escape_json(&buf, runs[i].id);
		appendStringInfoString(&buf, ", \"task\": ");
		escape_json(&buf, runs[i].task_id);
		appendStringInfo(&buf, ", \"status\": \"%s\"}", runs[i].status);
	}
	appendStringInfoChar(&buf, ']');
	if (i < n)
		appendStringInfo(&buf, ", \"more\": %d", n - i);
	appendStringInfoChar(&buf, '}');
	Async_Notify(NOTIFY_CHANNEL, buf.data);
}

/*
 * Write the outcome of runs[0..n) with one UPDATE (and one INSERT for the
 * failed attempts), in the current top-level transaction.
 */
void
complete_runs(ClaimedRun *all, int nall)
{
	ClaimedRun *runs = palloc(sizeof(ClaimedRun) * Max(nall, 1));
	int			n = 0;
	Datum	   *v[8];
	bool	   *nl[8];
	Datum		values[9];
	TimestampTz now = GetCurrentTimestamp();

	/* runs skipped for their concurrency limit stay as they were */
	for (int i = 0; i < nall; i++)
		if (!all[i].skipped)
			runs[n++] = all[i];
	if (n == 0)
		return;
	for (int c = 0; c < 8; c++)
	{
		v[c] = palloc(sizeof(Datum) * n);
		nl[c] = palloc0(sizeof(bool) * n);
	}
	for (int i = 0; i < n; i++)
	{
		ClaimedRun *r = &runs[i];
		bool		terminal = strcmp(r->status, "QUEUED") != 0 &&
			strcmp(r->status, "WAITING") != 0;

		v[0][i] = CStringGetTextDatum(r->id);
		v[1][i] = CStringGetTextDatum(r->status);
		v[2][i] = r->output ? JsonbPGetDatum(r->output) : (Datum) 0;
		nl[2][i] = r->output == NULL;
		v[3][i] = r->error ? JsonbPGetDatum(r->error) : (Datum) 0;
		nl[3][i] = r->error == NULL;
		v[4][i] = TimestampTzGetDatum(r->next_run_at);
		nl[4][i] = terminal;
		v[5][i] = TimestampTzGetDatum(r->started_at);
		v[6][i] = TimestampTzGetDatum(r->finished_at);
		nl[6][i] = !terminal;
		v[7][i] = r->metadata_changed ? JsonbPGetDatum(r->metadata) : (Datum) 0;
		nl[7][i] = !r->metadata_changed;
	}
	values[0] = array_of(v[0], nl[0], n, TEXTOID);
	values[1] = array_of(v[1], nl[1], n, TEXTOID);
	values[2] = array_of(v[2], nl[2], n, JSONBOID);
	values[3] = array_of(v[3], nl[3], n, JSONBOID);
	values[4] = array_of(v[4], nl[4], n, TIMESTAMPTZOID);
	values[5] = array_of(v[5], nl[5], n, TIMESTAMPTZOID);
	values[6] = array_of(v[6], nl[6], n, TIMESTAMPTZOID);
	values[7] = TimestampTzGetDatum(now);
	values[8] = array_of(v[7], nl[7], n, JSONBOID);

	SPI_connect();
	if (taskorch_execute_as_owner(&complete_plan, values, NULL, false, 0) != n)
		elog(ERROR, "taskorch: completed %d runs but updated a different number",
			 n);
	record_failed_attempts(runs, n);
	waits_record_tokens(runs, n);
	waits_record(runs, n);
	waits_children_done(runs, n);
	logs_flush();
	SPI_finish();
	notify_outcomes(runs, n);
}
