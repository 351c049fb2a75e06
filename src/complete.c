/*-------------------------------------------------------------------------
 *
 * complete.c
 *	  The completion of a batch: the outcome of every run it executed
 *	  written with one UPDATE of taskorch.run (each row found by the TID
 *	  of the version its claim locked; a second UPDATE, by id, for the rows
 *	  the batch itself changed since), its failed attempts with one
 *	  INSERT into taskorch.attempt, then what follows from them (wait tokens
 *	  and waits recorded, waited children reported to their parents, run
 *	  logs flushed), and one notification of the outcomes to LISTENers
 *	  (notify.c).
 *
 * Transaction: the batch's top-level transaction, the one that claimed
 * the rows (claim.c), so a run's outcome commits with its task's effects,
 * under the same XID that locked it.  Runs skipped for their concurrency
 * limit are left as they were.  Memory: the batch context (worker.c),
 * reset after the commit.  Lock: no shared lock.
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

/* the outcome of each run of the batch: an array per field, a run per index */
typedef struct CompleteArgs
{
	PlanValue	tids;			/* the row versions claimed */
	PlanValue	ids;
	PlanValue	statuses;
	PlanValue	outputs;
	PlanValue	errors;
	PlanValue	next_run_ats;	/* NULL items: a finished run keeps its run_at */
	PlanValue	started_ats;
	PlanValue	finished_ats;	/* NULL items: not finished (retried, waiting) */
	PlanValue	metadatas;		/* NULL items: unchanged */
	PlanValue	now;
} CompleteArgs;

static const PlanField complete_params[] = {
	PLAN_PARAM(CompleteArgs, tids, TIDARRAYOID),
	PLAN_PARAM(CompleteArgs, ids, TEXTARRAYOID),
	PLAN_PARAM(CompleteArgs, statuses, TEXTARRAYOID),
	PLAN_PARAM(CompleteArgs, outputs, JSONBARRAYOID),
	PLAN_PARAM(CompleteArgs, errors, JSONBARRAYOID),
	PLAN_PARAM(CompleteArgs, next_run_ats, TIMESTAMPTZARRAYOID),
	PLAN_PARAM(CompleteArgs, started_ats, TIMESTAMPTZARRAYOID),
	PLAN_PARAM(CompleteArgs, finished_ats, TIMESTAMPTZARRAYOID),
	PLAN_PARAM(CompleteArgs, metadatas, JSONBARRAYOID),
	PLAN_PARAM(CompleteArgs, now, TIMESTAMPTZOID),
};
/*
 * The outcomes, each run's row found by the TID of the version its claim
 * locked (no index descent); a run whose row its batch changed since (a
 * task that updated its own run's row, say) by its id, in a second
 * statement that leaves out the rows the first one updated (updated_at =
 * :now).
 */
#define COMPLETE_SQL(match) \
	"UPDATE taskorch.run r" \
	"   SET status = u.status::taskorch.run_status, output = u.output," \
	"       error = u.error," \
	"       attempts = r.attempts + CASE WHEN u.status = " SQL_STATUS(WAITING) " THEN 0 ELSE 1 END," \
	"       run_at = coalesce(u.next_run_at, r.run_at)," \
	"       started_at = coalesce(r.started_at, u.started_at)," \
	"       finished_at = u.finished_at, updated_at = :now," \
	"       metadata = coalesce(u.metadata, r.metadata)," \
	"       expires_at = NULL,"	/* a run that started no longer expires */ \
	"       holds_slot = false"	/* an external run gives its slot back (concurrency.c) */ \
	"  FROM unnest(:tids, :ids, :statuses, :outputs, :errors," \
	"              :next_run_ats, :started_ats, :finished_ats, :metadatas)" \
	"       AS u(tid, id, status, output, error, next_run_at, started_at, finished_at, metadata)" \
	" WHERE " match
static NamedPlan complete_plan = {
	.sql = COMPLETE_SQL("r.ctid = u.tid AND r.id = u.id"),
	PLAN_PARAMS(complete_params), .shape = PLAN_KEY_LOOKUPS
};
static NamedPlan complete_by_id_plan = {
	.sql = COMPLETE_SQL("r.id = u.id AND r.updated_at IS DISTINCT FROM :now"),
	PLAN_PARAMS(complete_params), .shape = PLAN_KEY_LOOKUPS
};

/* the failed attempts of the batch, an array per field */
typedef struct AttemptArgs
{
	PlanValue	run_ids;
	PlanValue	numbers;
	PlanValue	statuses;
	PlanValue	errors;
	PlanValue	started_ats;
	PlanValue	finished_ats;
} AttemptArgs;

static const PlanField attempt_params[] = {
	PLAN_PARAM(AttemptArgs, run_ids, TEXTARRAYOID),
	PLAN_PARAM(AttemptArgs, numbers, INT4ARRAYOID),
	PLAN_PARAM(AttemptArgs, statuses, TEXTARRAYOID),
	PLAN_PARAM(AttemptArgs, errors, JSONBARRAYOID),
	PLAN_PARAM(AttemptArgs, started_ats, TIMESTAMPTZARRAYOID),
	PLAN_PARAM(AttemptArgs, finished_ats, TIMESTAMPTZARRAYOID),
};
static NamedPlan attempt_plan = {
	.sql = "INSERT INTO taskorch.attempt (run_id, number, status, error, started_at, finished_at)"
	" SELECT u.run_id, u.number, u.status::taskorch.run_status,"
	"        u.error, u.started_at, u.finished_at"
	"   FROM unnest(:run_ids, :numbers, :statuses, :errors, :started_ats, :finished_ats)"
	"        AS u(run_id, number, status, error, started_at, finished_at)",
	PLAN_PARAMS(attempt_params)
};

/* Record the failed attempts among runs[0..n) (attempt table). */
static void
record_failed_attempts(ClaimedRun *runs, int n)
{
	PlanItems	run_ids = plan_items_new(n),
				numbers = plan_items_new(n),
				statuses = plan_items_new(n),
				errors = plan_items_new(n),
				started_ats = plan_items_new(n),
				finished_ats = plan_items_new(n);
	AttemptArgs args;
	int			k = 0;

	for (int i = 0; i < n; i++)
	{
		if (runs[i].error == NULL)
			continue;
		run_ids.values[k] = CStringGetTextDatum(runs[i].id);
		numbers.values[k] = Int32GetDatum(runs[i].attempts + 1);
		statuses.values[k] = CStringGetTextDatum(run_status_name(runs[i].timed_out ? RUN_TIMED_OUT :
																 runs[i].lost ? RUN_CRASHED :
																 RUN_FAILED));
		errors.values[k] = JsonbPGetDatum(runs[i].error);
		started_ats.values[k] = TimestampTzGetDatum(runs[i].started_at);
		finished_ats.values[k] = TimestampTzGetDatum(runs[i].finished_at);
		k++;
	}
	if (k == 0)
		return;
	args.run_ids = plan_items_array(run_ids, k, TEXTOID);
	args.numbers = plan_items_array(numbers, k, INT4OID);
	args.statuses = plan_items_array(statuses, k, TEXTOID);
	args.errors = plan_items_array(errors, k, JSONBOID);
	args.started_ats = plan_items_array(started_ats, k, TIMESTAMPTZOID);
	args.finished_ats = plan_items_array(finished_ats, k, TIMESTAMPTZOID);
	taskorch_execute_args(&attempt_plan, &args, false, 0);
}

/* Announce the outcomes of a batch's runs. */
static void
notify_outcomes(ClaimedRun *runs, int n)
{
	const char **ids = palloc(sizeof(char *) * Max(n, 1));
	const char **tasks = palloc(sizeof(char *) * Max(n, 1));
	RunStatus  *statuses = palloc(sizeof(RunStatus) * Max(n, 1));

	for (int i = 0; i < n; i++)
	{
		ids[i] = runs[i].id;
		tasks[i] = runs[i].task_id;
		statuses[i] = runs[i].status;
	}
	notify_runs(n, ids, tasks, statuses);
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
	PlanItems	tids,
				ids,
				statuses,
				outputs,
				errors,
				next_run_ats,
				started_ats,
				finished_ats,
				metadatas;
	CompleteArgs args;
	int			done;

	/* runs skipped for their concurrency limit stay as they were */
	for (int i = 0; i < nall; i++)
		if (!all[i].skipped)
			runs[n++] = all[i];
	if (n == 0)
		return;
	tids = plan_items_new(n);
	ids = plan_items_new(n);
	statuses = plan_items_new(n);
	outputs = plan_items_new(n);
	errors = plan_items_new(n);
	next_run_ats = plan_items_new(n);
	started_ats = plan_items_new(n);
	finished_ats = plan_items_new(n);
	metadatas = plan_items_new(n);
	for (int i = 0; i < n; i++)
	{
		ClaimedRun *r = &runs[i];
		bool		terminal = run_status_finished(r->status);

		tids.values[i] = PointerGetDatum(&r->tid);
		ids.values[i] = CStringGetTextDatum(r->id);
		statuses.values[i] = CStringGetTextDatum(run_status_name(r->status));
		outputs.values[i] = r->output ? JsonbPGetDatum(r->output) : (Datum) 0;
		outputs.nulls[i] = r->output == NULL;
		errors.values[i] = r->error ? JsonbPGetDatum(r->error) : (Datum) 0;
		errors.nulls[i] = r->error == NULL;
		next_run_ats.values[i] = TimestampTzGetDatum(r->next_run_at);
		next_run_ats.nulls[i] = terminal;
		started_ats.values[i] = TimestampTzGetDatum(r->started_at);
		finished_ats.values[i] = TimestampTzGetDatum(r->finished_at);
		finished_ats.nulls[i] = !terminal;
		metadatas.values[i] = r->metadata_changed ? JsonbPGetDatum(r->metadata) : (Datum) 0;
		metadatas.nulls[i] = !r->metadata_changed;
	}
	args.tids = plan_items_array(tids, n, TIDOID);
	args.ids = plan_items_array(ids, n, TEXTOID);
	args.statuses = plan_items_array(statuses, n, TEXTOID);
	args.outputs = plan_items_array(outputs, n, JSONBOID);
	args.errors = plan_items_array(errors, n, JSONBOID);
	args.next_run_ats = plan_items_array(next_run_ats, n, TIMESTAMPTZOID);
	args.started_ats = plan_items_array(started_ats, n, TIMESTAMPTZOID);
	args.finished_ats = plan_items_array(finished_ats, n, TIMESTAMPTZOID);
	args.metadatas = plan_items_array(metadatas, n, JSONBOID);
	args.now = pv_timestamptz(GetCurrentTimestamp());

	SPI_connect();
	done = taskorch_execute_args(&complete_plan, &args, false, 0);
	if (done < n)
		done += taskorch_execute_args(&complete_by_id_plan, &args, false, 0);
	if (done != n)
		elog(ERROR, "taskorch: completed %d runs but updated %d", n, done);
	record_failed_attempts(runs, n);
	waits_record_tokens(runs, n);
	waits_record(runs, n);
	waits_children_done(runs, n);
	logs_flush();
	SPI_finish();
	notify_outcomes(runs, n);
	stats_note(runs, n);
}
