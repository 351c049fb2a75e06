/*-------------------------------------------------------------------------
 *
 * complete.c
 *	  The completion of a batch: the outcome of every run it executed
 *	  written with one UPDATE of taskorch.run, its failed attempts with one
 *	  INSERT into taskorch.attempt, then what follows from them (wait tokens
 *	  and waits recorded, waited children reported to their parents, run
 *	  logs flushed), and one notification of the outcomes to LISTENers.
 *
 * Transaction: the batch's top-level transaction, the one that claimed
 * the rows (claim.c), so a run's outcome commits with its task's effects,
 * under the same XID that locked it.  Runs skipped for their concurrency
 * limit are left as they were.  Memory: the batch context (worker.c),
 * reset after the commit.  Lock: no shared lock; the notification is sent
 * at commit.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "catalog/pg_type.h"
#include "commands/async.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

static TaskorchPlan complete_plan = {
	"UPDATE taskorch.run r"
	"   SET status = u.status::taskorch.run_status, output = u.output,"
	"       error = u.error,"
	"       attempts = r.attempts + CASE WHEN u.status = " SQL_STATUS(WAITING) " THEN 0 ELSE 1 END,"
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
		v[2][k] = CStringGetTextDatum(run_status_name(runs[i].timed_out ? RUN_TIMED_OUT : RUN_FAILED));
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
		appendStringInfo(&buf, ", \"status\": \"%s\"}", run_status_name(runs[i].status));
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
		bool		terminal = run_status_finished(r->status);

		v[0][i] = CStringGetTextDatum(r->id);
		v[1][i] = CStringGetTextDatum(run_status_name(r->status));
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
