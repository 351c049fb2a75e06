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

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(taskorch_wait_for);
PG_FUNCTION_INFO_V1(taskorch_wait_until);
PG_FUNCTION_INFO_V1(taskorch_trigger_and_wait);
PG_FUNCTION_INFO_V1(taskorch_batch_trigger_and_wait);
PG_FUNCTION_INFO_V1(taskorch_batch_trigger_and_wait_query);
PG_FUNCTION_INFO_V1(taskorch_in_transaction_block);

PG_FUNCTION_INFO_V1(taskorch_next_wait_done);
PG_FUNCTION_INFO_V1(taskorch_replaying);

static bool wait_completed(ClaimedRun *run, int32 seq, const char *kind, const char *token,
						   Jsonb **result);
static void load_memo(ClaimedRun *run);

/*
 * SQL: taskorch._next_wait_done(): inside a task, whether its next wait
 * call will return at once (an earlier execution got past it).
 */
Datum
taskorch_next_wait_done(PG_FUNCTION_ARGS)
{
	ClaimedRun *run = current_run();

	PG_RETURN_BOOL(run != NULL && wait_completed(run, run->wait_calls, NULL, NULL, NULL));
}

/*
 * SQL: taskorch._replaying(): inside a task, whether an earlier execution
 * got past this point (a later wait of the run is over), so that code
 * logging a step's start or end does it once, not on every replay.
 */
Datum
taskorch_replaying(PG_FUNCTION_ARGS)
{
	ClaimedRun *run = current_run();

	if (run == NULL)
		PG_RETURN_BOOL(false);
	if (!run->memo_loaded)
		load_memo(run);
	for (int i = 0; i < run->memo_count; i++)
		if (run->memo_seq[i] >= run->wait_calls)
			PG_RETURN_BOOL(true);
	PG_RETURN_BOOL(false);
}

/* SQL: taskorch._in_transaction_block(), for run_and_wait's check */
Datum
taskorch_in_transaction_block(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(IsTransactionBlock());
}

static TaskorchPlan memo_plan = {
	"SELECT seq, kind, token, result FROM taskorch.waitpoint"
	" WHERE run_id = $1 AND completed_at IS NOT NULL",
	1, {TEXTOID},
	NULL
};

static TaskorchPlan insert_plan = {
	"INSERT INTO taskorch.waitpoint (run_id, seq, kind, resume_at, children, token, created_at)"
	" SELECT u.run_id, u.seq, u.kind, u.resume_at,"
	"        string_to_array(nullif(u.children, ''), ' '), nullif(u.token, ''), $7"
	"   FROM unnest($1::text[], $2::int4[], $3::text[], $4::timestamptz[], $5::text[], $6::text[])"
	"        AS u(run_id, seq, kind, resume_at, children, token)"
	" ON CONFLICT (run_id, seq) DO NOTHING",
	7, {TEXTARRAYOID, INT4ARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID, TEXTARRAYOID,
	TEXTARRAYOID, TIMESTAMPTZOID},
	NULL
};

/*
 * Child-run waits whose children have all finished: complete them with the
 * children's Result objects, in call order, and queue their runs again:
 * some waits (the batch that finished their children), or every pending
 * one (the maintenance pass, which also catches children that ended
 * outside a batch: canceled, expired).  Whether a wait is over is first asked of the
 * children linked to it (one probe of run_waited_idx, however many there
 * are; a scalar subquery, so that it is never planned as a hash of every
 * unfinished child), and only then of every child in its list, which may
 * include runs it did not make (a debounced or idempotent trigger's).
 */
#define CHILDREN_DONE_SQL(WAITS) \
	"WITH ready AS (" \
	"  SELECT wp.run_id, wp.seq, wp.kind, wp.children" \
	"    FROM " WAITS \
	"   WHERE wp.completed_at IS NULL AND wp.kind IN ('run', 'batch')" \
	"     AND CASE WHEN (SELECT true FROM taskorch.run c" \
	"                     WHERE c.parent_run_id = wp.run_id COLLATE \"default\"" \
	"                       AND c.parent_wait_seq = wp.seq AND c.parent_run_id IS NOT NULL" \
	"                       AND c.status IN " UNFINISHED_STATUSES " LIMIT 1)" \
	"              THEN false" \
	"              ELSE NOT EXISTS (SELECT FROM taskorch.run c WHERE c.id = ANY (wp.children)" \
	"                                AND c.status IN " UNFINISHED_STATUSES ") END" \
	"   ORDER BY wp.run_id, wp.seq LIMIT 1000" \
	"   FOR UPDATE OF wp SKIP LOCKED)," \
	" done AS (UPDATE taskorch.waitpoint wp SET completed_at = $3," \
	"            result = CASE WHEN ready.kind = 'run' THEN results->0" \
	"                          ELSE jsonb_build_object('runs', results) END" \
	"            FROM ready, LATERAL (SELECT coalesce(jsonb_agg(taskorch._result(c.status, c.id," \
	"                                   c.task_id, c.output, c.error) ORDER BY k.ord), '[]') AS results" \
	"                   FROM unnest(ready.children) WITH ORDINALITY AS k(id, ord)" \
	"                   JOIN taskorch.run c ON c.id = k.id) res" \
	"           WHERE wp.run_id = ready.run_id AND wp.seq = ready.seq" \
	"         RETURNING wp.run_id)" \
	" UPDATE taskorch.run r SET status = 'QUEUED', run_at = $3, updated_at = $3" \
	"   FROM (SELECT DISTINCT run_id FROM done) d" \
	"  WHERE r.id = d.run_id AND r.status = 'WAITING'"

/* the waits ($1 run ids, $2 seqs) a batch finished children of */
static TaskorchPlan children_done_plan = {
	CHILDREN_DONE_SQL("(SELECT DISTINCT * FROM unnest($1::text[], $2::int4[])) AS t(run_id, seq)"
					  " JOIN taskorch.waitpoint wp ON wp.run_id = t.run_id AND wp.seq = t.seq"),
	3, {TEXTARRAYOID, INT4ARRAYOID, TIMESTAMPTZOID},
	NULL
};

/* every pending wait: the maintenance pass ($1, $2 unused) */
static TaskorchPlan all_children_done_plan = {
	CHILDREN_DONE_SQL("taskorch.waitpoint wp"),
	3, {TEXTARRAYOID, INT4ARRAYOID, TIMESTAMPTZOID},
	NULL
};

/*
 * The waits a batch finished children of, locked in a fixed order before
 * children_done_plan asks whether they are over.  Two batches finishing
 * the last children of one wait take turns: the second asks after the
 * first committed, so it sees both and resumes the parent at once.
 */
static TaskorchPlan lock_waits_plan = {
	"SELECT FROM (SELECT DISTINCT * FROM unnest($1::text[], $2::int4[])) AS t(run_id, seq)"
	"  JOIN taskorch.waitpoint wp ON wp.run_id = t.run_id AND wp.seq = t.seq"
	" WHERE wp.completed_at IS NULL"
	" ORDER BY wp.run_id, wp.seq FOR UPDATE OF wp",
	2, {TEXTARRAYOID, INT4ARRAYOID},
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
 * The waits of the run that are over, read once per execution (a replay
 * passes all of them; each would otherwise cost a query).  Kept in the
 * batch's context: seq and result of each, by seq.
 */
static void
load_memo(ClaimedRun *run)
{
	Datum		values[1] = {CStringGetTextDatum(run->id)};
	MemoryContext old = MemoryContextSwitchTo(run->cxt);
	Datum	   *results;
	bool	   *nulls;
	int			n;

	SPI_connect();
	n = taskorch_execute_as_owner(&memo_plan, values, NULL, true, 0);
	run->memo_seq = MemoryContextAlloc(run->cxt, sizeof(int32) * Max(n, 1));
	run->memo_kind = MemoryContextAlloc(run->cxt, sizeof(char *) * Max(n, 1));
	run->memo_token = MemoryContextAlloc(run->cxt, sizeof(char *) * Max(n, 1));
	run->memo_result = MemoryContextAlloc(run->cxt, sizeof(Jsonb *) * Max(n, 1));
	results = MemoryContextAlloc(run->cxt, sizeof(Datum) * Max(n, 1));
	nulls = MemoryContextAlloc(run->cxt, sizeof(bool) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *token = SPI_getvalue(tup, desc, 3);

		run->memo_seq[i] = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		run->memo_kind[i] = MemoryContextStrdup(run->cxt, SPI_getvalue(tup, desc, 2));
		run->memo_token[i] = token ? MemoryContextStrdup(run->cxt, token) : NULL;
		results[i] = SPI_getbinval(tup, desc, 4, &nulls[i]);
		if (!nulls[i])
			results[i] = SPI_datumTransfer(results[i], false, -1);
	}
	SPI_finish();
	/* detoasted only now, in the run's context: not in SPI's, which is gone */
	for (int i = 0; i < n; i++)
		run->memo_result[i] = nulls[i] ? NULL : DatumGetJsonbP(results[i]);
	run->memo_count = n;
	run->memo_loaded = true;
	MemoryContextSwitchTo(old);
}

/* What a wait of `kind` is, for messages. */
static const char *
wait_call_name(const char *kind)
{
	if (strcmp(kind, "time") == 0)
		return "wait_for() or wait_until()";
	if (strcmp(kind, "run") == 0)
		return "trigger_and_wait()";
	if (strcmp(kind, "batch") == 0)
		return "batch_trigger_and_wait()";
	return "wait_for_token()";
}

/*
 * The replay calls something else at a recorded wait: the task's code
 * changed while the run waited.  The error is kept on the run, so that
 * the run fails for good (decide_outcome) even if task code catches it,
 * and raised.
 */
static void
replay_mismatch(ClaimedRun *run, int32 seq, const char *recorded, const char *called)
{
	PG_TRY();
	{
		ereport(ERROR,
				errcode(TASKORCH_SQLSTATE_REPLAY),
				errmsg("run %s does not match its recorded waits: wait %d was %s, the task now calls %s",
					   run->id, seq, recorded, called),
				errdetail("The task's code changed while the run was waiting; a resumed run must make the same wait calls in the same order."),
				errhint("Replay the run with taskorch.replay() to start it afresh with the new code."));
	}
	PG_CATCH();
	{
		MemoryContext old = MemoryContextSwitchTo(run->cxt);

		if (run->replay_error == NULL)
			run->replay_error = CopyErrorData();
		MemoryContextSwitchTo(old);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/*
 * The wait call number `seq` of the current execution, a wait of `kind`
 * (on `token`): true when its waitpoint is already completed (return at
 * once; *result, if given, gets what it returns), false when the run must
 * suspend.  kind NULL: only whether it is completed.  A recorded wait of
 * another kind, on another token, or without the result it should have,
 * is refused (replay_mismatch).
 */
static bool
wait_completed(ClaimedRun *run, int32 seq, const char *kind, const char *token, Jsonb **result)
{
	if (!run->memo_loaded)
		load_memo(run);
	for (int i = 0; i < run->memo_count; i++)
	{
		if (run->memo_seq[i] != seq)
			continue;
		if (kind && strcmp(run->memo_kind[i], kind) != 0)
			replay_mismatch(run, seq, wait_call_name(run->memo_kind[i]), wait_call_name(kind));
		if (kind && token && (run->memo_token[i] == NULL || strcmp(run->memo_token[i], token) != 0))
			replay_mismatch(run, seq,
							psprintf("wait_for_token('%s')", run->memo_token[i] ? run->memo_token[i] : ""),
							psprintf("wait_for_token('%s')", token));
		if (kind && strcmp(kind, "time") != 0 && run->memo_result[i] == NULL)
			replay_mismatch(run, seq, "a wait without a result", wait_call_name(kind));
		if (result)
			*result = run->memo_result[i];
		return true;
	}
	return false;
}

/*
 * Suspend the run at wait call `seq` of `kind` (waiting on `children` or
 * `token`, when given): note the wait (the worker records it once the
 * attempt is rolled back), then unwind the task.  Only the first wait an
 * execution reaches counts: if task code catches the error and goes on,
 * the run still suspends there when the task returns (execute.c).
 */
static void
suspend(ClaimedRun *run, int32 seq, const char *kind, TimestampTz resume_at,
		BatchItems *children, const char *token, const char *what)
{
	if (run->wait_kind == NULL)
	{
		run->wait_seq = seq;
		run->wait_kind = kind;
		run->wait_resume_at = resume_at;
		run->wait_children = children;
		run->wait_token = token ? MemoryContextStrdup(run->cxt, token) : NULL;
	}
	ereport(ERROR,
			errcode(TASKORCH_SQLSTATE_WAIT),
			errmsg("run %s is waiting for %s", run->id, what),
			errdetail("This is how a task waits; let the error pass through."),
			errhint("Do not catch SQLSTATE TOWAI in task code."));
}

static void
wait_until(const char *function, TimestampTz resume_at)
{
	ClaimedRun *run = run_in_task(function,
								  "Outside a task, use pg_sleep(), or trigger the work with a delay.");
	int32		seq;

	seq = run->wait_calls++;
	if (wait_completed(run, seq, "time", NULL, NULL) || resume_at <= GetCurrentTimestamp())
		return;
	suspend(run, seq, "time", resume_at, NULL, NULL, timestamptz_to_str(resume_at));
}

/* SQL: taskorch.wait_for(duration) */
Datum
taskorch_wait_for(PG_FUNCTION_ARGS)
{
	int64		ms;

	require_arg(fcinfo, 0, "duration", "Pass a duration such as '5m' or an interval.");
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
	require_arg(fcinfo, 0, "time", "Pass a timestamptz.");
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
	Datum	   *children = palloc(sizeof(Datum) * n);
	Datum	   *tokens = palloc(sizeof(Datum) * n);
	bool	   *nulls = palloc0(sizeof(bool) * n);
	Datum		values[7];
	int			dims[1];
	int			lbs[1] = {1};
	int			k = 0;

	for (int i = 0; i < n; i++)
	{
		if (!runs[i].suspended)
			continue;
		ids[k] = CStringGetTextDatum(runs[i].id);
		seqs[k] = Int32GetDatum(runs[i].wait_seq);
		kinds[k] = CStringGetTextDatum(runs[i].wait_kind);
		times[k] = TimestampTzGetDatum(runs[i].wait_resume_at);
		children[k] = CStringGetTextDatum(runs[i].wait_children_ids ? runs[i].wait_children_ids : "");
		tokens[k] = CStringGetTextDatum(runs[i].wait_token ? runs[i].wait_token : "");
		k++;
	}
	if (k == 0)
		return;
	dims[0] = k;
	values[0] = PointerGetDatum(construct_array(ids, k, TEXTOID, -1, false, TYPALIGN_INT));
	values[1] = PointerGetDatum(construct_array(seqs, k, INT4OID, 4, true, TYPALIGN_INT));
	values[2] = PointerGetDatum(construct_array(kinds, k, TEXTOID, -1, false, TYPALIGN_INT));
	values[3] = PointerGetDatum(construct_array(times, k, TIMESTAMPTZOID, 8, true, TYPALIGN_DOUBLE));
	values[4] = PointerGetDatum(construct_md_array(children, nulls, 1, dims, lbs, TEXTOID, -1,
												   false, TYPALIGN_INT));
	values[5] = PointerGetDatum(construct_md_array(tokens, nulls, 1, dims, lbs, TEXTOID, -1,
												   false, TYPALIGN_INT));
	values[6] = TimestampTzGetDatum(GetCurrentTimestamp());
	taskorch_execute_as_owner(&insert_plan, values, NULL, false, 0);
}

/* Queue again the WAITING runs whose wait is over (a worker's maintenance). */
int
waits_resume(void)
{
	Datum		values[1] = {TimestampTzGetDatum(GetCurrentTimestamp())};
	int			resumed;

	Datum		done[3] = {(Datum) 0, (Datum) 0, values[0]};
	char		nulls[3] = {'n', 'n', ' '};

	SPI_connect();
	resumed = taskorch_execute_as_owner(&resume_plan, values, NULL, false, 0);
	resumed += taskorch_execute_as_owner(&all_children_done_plan, done, nulls, false, 0);
	SPI_finish();
	return resumed + waits_resume_tokens();
}

/*
 * Runs of this batch that reached an end and are waited for: complete the
 * waits they were the last of (inside SPI, in the batch's transaction).
 */
void
waits_children_done(ClaimedRun *runs, int n)
{
	Datum	   *ids = palloc(sizeof(Datum) * 2 * n);
	Datum	   *seqs = palloc(sizeof(Datum) * 2 * n);
	Datum		values[3];
	int			k = 0;

	for (int i = 0; i < n; i++)
	{
		/* a wait for no children at all (a query that returned no rows) is over now */
		if (runs[i].suspended && runs[i].wait_children_ids && runs[i].wait_children_ids[0] == '\0')
		{
			ids[k] = CStringGetTextDatum(runs[i].id);
			seqs[k] = Int32GetDatum(runs[i].wait_seq);
			k++;
		}
		if (runs[i].parent_run_id == NULL || strcmp(runs[i].status, "QUEUED") == 0 ||
			strcmp(runs[i].status, "WAITING") == 0)
			continue;
		ids[k] = CStringGetTextDatum(runs[i].parent_run_id);
		seqs[k] = Int32GetDatum(runs[i].parent_wait_seq);
		k++;
	}
	if (k == 0)
		return;
	values[0] = PointerGetDatum(construct_array(ids, k, TEXTOID, -1, false, TYPALIGN_INT));
	values[1] = PointerGetDatum(construct_array(seqs, k, INT4OID, 4, true, TYPALIGN_INT));
	taskorch_execute_as_owner(&lock_waits_plan, values, NULL, false, 0);
	/* a statement of its own: its snapshot is taken once the locks are held */
	values[2] = TimestampTzGetDatum(GetCurrentTimestamp());
	if (taskorch_execute_as_owner(&children_done_plan, values, NULL, false, 0) > 0)
		taskorch_requeued_at_commit();
}

/* ---------------------------------------------------------------------
 * trigger_and_wait and batch_trigger_and_wait
 * ---------------------------------------------------------------------
 */

/*
 * A wait call for children, in two halves.  next_wait(): the call's number
 * (its order in the execution); true, with its memoized result, if an
 * earlier execution got past it.  Otherwise wait_for_children(): note the
 * children to trigger and suspend.  The children are made by the worker
 * after the attempt's rollback (waits_create_children), so they exist only
 * if the run really waits.  Items are checked now (an array's every item, a
 * query's columns), so a bad one fails the attempt as an error in the task
 * would.
 */
static bool
next_wait(const char *function, const char *kind, int32 *seq, Jsonb **result)
{
	ClaimedRun *run = run_in_task(function,
								  "Outside a task, trigger the run and CALL taskorch.wait_for_run().");

	*seq = run->wait_calls++;
	return wait_completed(run, *seq, kind, NULL, result);
}

static void
wait_for_children(int32 seq, const BatchItems *src, bool batch)
{
	ClaimedRun *run = current_run();
	BatchItems *keep;

	batch_items_check(src);
	keep = MemoryContextAlloc(run->cxt, sizeof(BatchItems));
	keep->task = src->task ? MemoryContextStrdup(run->cxt, src->task) : NULL;
	keep->query = src->query ? MemoryContextStrdup(run->cxt, src->query) : NULL;
	keep->items = NULL;
	if (src->items)
	{
		keep->items = MemoryContextAlloc(run->cxt, VARSIZE(src->items));
		memcpy(keep->items, src->items, VARSIZE(src->items));
	}
	suspend(run, seq, batch ? "batch" : "run", DT_NOEND, keep, NULL,
			src->query ? "the child runs of a query" : "child runs");
}

/* SQL: taskorch.trigger_and_wait(task, payload, options) -> Result object */
Datum
taskorch_trigger_and_wait(PG_FUNCTION_ARGS)
{
	BatchItems	src = {NULL, NULL, NULL};
	int32		seq;
	Jsonb	   *result = NULL;

	require_args(fcinfo, 2, "task and payload",
				 "Pass the child task's id and a payload object.");
	if (next_wait("taskorch.trigger_and_wait()", "run", &seq, &result))
		PG_RETURN_JSONB_P(result);
	src.task = text_to_cstring(PG_GETARG_TEXT_PP(0));
	src.items = batch_single_item(PG_GETARG_JSONB_P(1), PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2));
	wait_for_children(seq, &src, false);
	PG_RETURN_NULL();
}

/*
 * SQL: taskorch.batch_trigger_and_wait(task, items) and (items), items
 * as batch_trigger's -> {"runs": [Result, ...]} in item order.
 */
Datum
taskorch_batch_trigger_and_wait(PG_FUNCTION_ARGS)
{
	bool		mixed = PG_NARGS() == 1;
	BatchItems	src = {NULL, NULL, NULL};
	int32		seq;
	Jsonb	   *result = NULL;

	require_args(fcinfo, PG_NARGS(), mixed ? "items" : "task and items",
				 "Pass a JSON array of {\"payload\": ..., \"options\": ...} items.");
	if (next_wait("taskorch.batch_trigger_and_wait()", "batch", &seq, &result))
		PG_RETURN_JSONB_P(result);
	src.task = mixed ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	src.items = PG_GETARG_JSONB_P(mixed ? 0 : 1);
	wait_for_children(seq, &src, true);
	PG_RETURN_NULL();
}

/*
 * SQL: taskorch.batch_trigger_and_wait_query(query, task): the query's rows
 * are the items, streamed when the children are made (after the attempt's
 * rollback, so the query sees committed data, not the task's own writes).
 */
Datum
taskorch_batch_trigger_and_wait_query(PG_FUNCTION_ARGS)
{
	BatchItems	src = {NULL, NULL, NULL};
	int32		seq;
	Jsonb	   *result = NULL;

	require_args(fcinfo, 1, "query",
				 "Pass a query returning a payload column, such as SELECT jsonb_build_object('id', id) AS payload FROM records.");
	if (next_wait("taskorch.batch_trigger_and_wait_query()", "batch", &seq, &result))
		PG_RETURN_JSONB_P(result);
	src.query = text_to_cstring(PG_GETARG_TEXT_PP(0));
	src.task = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	wait_for_children(seq, &src, true);
	PG_RETURN_NULL();
}

typedef struct ChildTrigger
{
	ClaimedRun *parent;
	StringInfoData ids;			/* the children's, space-separated */
} ChildTrigger;

/* Trigger one child of a wait, linked to it. */
static void
trigger_child(const char *task, Jsonb *payload, Jsonb *options, int index, void *arg)
{
	ChildTrigger *ct = (ChildTrigger *) arg;
	TriggerOptions o;
	Datum		id;

	trigger_options_init(&o);
	o.now = GetCurrentTimestamp();
	if (options)
		trigger_options_jsonb(&o, options, false);
	trigger_options_finish(&o);
	o.parent_run_id = ct->parent->id;
	o.parent_wait_seq = ct->parent->wait_seq;
	id = create_run(task, payload, &o, NULL);
	if (ct->ids.len > 0)
		appendStringInfoChar(&ct->ids, ' ');
	appendStringInfoString(&ct->ids, TextDatumGetCString(id));
}

static void
trigger_children(ClaimedRun *run, void *arg)
{
	(void) batch_items_foreach(run->wait_children, trigger_child, arg);
}

/*
 * The run stopped at a wait for children: trigger them now, in the batch's
 * transaction (the attempt's own work was rolled back), as the task's
 * owner, each linked to the wait.  A child that cannot be triggered fails
 * the attempt instead, like an error in the task.
 */
void
waits_create_children(ClaimedRun *run)
{
	ChildTrigger ct;
	MemoryContext old;

	if (!run->suspended || run->wait_children == NULL)
		return;
	ct.parent = run;
	old = MemoryContextSwitchTo(run->cxt);	/* the ids are kept until recorded */
	initStringInfo(&ct.ids);
	MemoryContextSwitchTo(old);
	if (execute_as_owner(run, trigger_children, &ct, &run->edata))
		run->wait_children_ids = ct.ids.data;
	else
		run->suspended = false;		/* an error of the attempt after all */
}

/* ---------------------------------------------------------------------
 * Wait tokens: a run waits until some session completes the token
 * ---------------------------------------------------------------------
 */

PG_FUNCTION_INFO_V1(taskorch_create_wait_token);
PG_FUNCTION_INFO_V1(taskorch_wait_for_token);
PG_FUNCTION_INFO_V1(taskorch_complete_wait_token);

static TaskorchPlan token_create_plan = {
	"WITH live AS (SELECT id FROM taskorch.wait_token"
	"               WHERE $2::text IS NOT NULL AND idempotency_key = $2 AND owner = $4::regrole"
	"                 AND completed_at IS NULL LIMIT 1),"
	"     made AS (INSERT INTO taskorch.wait_token (owner, timeout_at, idempotency_key, tags)"
	"              SELECT $4::regrole, $1, $2, coalesce($3, '{}') WHERE NOT EXISTS (SELECT FROM live)"
	"              RETURNING id)"
	" SELECT id FROM live UNION ALL SELECT id FROM made",
	4, {TIMESTAMPTZOID, TEXTOID, TEXTARRAYOID, OIDOID},
	NULL
};

static TaskorchPlan token_state_plan = {
	"SELECT completed_at IS NOT NULL, CASE WHEN timed_out"
	"       THEN jsonb_build_object('ok', false, 'error', jsonb_build_object('message', 'wait token timed out'))"
	"       ELSE jsonb_build_object('ok', true, 'output', output) END, owner::oid"
	"  FROM taskorch.wait_token WHERE id = $1",
	1, {TEXTOID},
	NULL
};

static TaskorchPlan token_complete_plan = {
	"UPDATE taskorch.wait_token SET completed_at = now(), output = $2"
	" WHERE id = $1 AND completed_at IS NULL",
	2, {TEXTOID, JSONBOID},
	NULL
};

/*
 * Tokens completed or timed out: complete the waitpoints waiting on them
 * and queue their runs again ($1: one token, NULL: all, and time out the
 * tokens past their timeout first).
 */
static TaskorchPlan token_resume_plan = {
	"WITH timed_out AS (UPDATE taskorch.wait_token SET completed_at = $2, timed_out = true"
	"                    WHERE $1::text IS NULL AND completed_at IS NULL AND timeout_at <= $2"
	"                    RETURNING id),"
	" done AS (UPDATE taskorch.waitpoint wp SET completed_at = $2,"
	"            result = CASE WHEN t.timed_out OR t.id IN (SELECT id FROM timed_out)"
	"                          THEN jsonb_build_object('ok', false, 'error',"
	"                               jsonb_build_object('message', 'wait token timed out'))"
	"                          ELSE jsonb_build_object('ok', true, 'output', t.output) END"
	"            FROM taskorch.wait_token t"
	"           WHERE wp.kind = 'token' AND wp.completed_at IS NULL AND wp.token = t.id"
	"             AND ($1::text IS NULL OR t.id = $1)"
	"             AND (t.completed_at IS NOT NULL OR t.id IN (SELECT id FROM timed_out))"
	"         RETURNING wp.run_id)"
	" UPDATE taskorch.run r SET status = 'QUEUED', run_at = $2, updated_at = $2"
	"   FROM (SELECT DISTINCT run_id FROM done) d"
	"  WHERE r.id = d.run_id AND r.status = 'WAITING'",
	2, {TEXTOID, TIMESTAMPTZOID},
	NULL
};

static TaskorchPlan token_insert_plan = {
	"INSERT INTO taskorch.wait_token (id, owner, timeout_at, tags)"
	" SELECT u.id, u.owner::regrole, u.timeout_at, '{}'"
	"   FROM unnest($1::text[], $2::oid[], $3::timestamptz[]) AS u(id, owner, timeout_at)"
	" ON CONFLICT (id) DO NOTHING",
	3, {TEXTARRAYOID, OIDARRAYOID, TIMESTAMPTZARRAYOID},
	NULL
};

/*
 * A token made inside a task: its id is fixed by the run and the call's
 * order (so a replay gets the same token), and its row is written by the
 * worker with the batch (so a wait that rolls the attempt back keeps it).
 */
static Datum
task_token(ClaimedRun *run, TimestampTz timeout_at, bool has_timeout)
{
	int32		seq = run->wait_calls++;
	PendingToken *t;
	MemoryContext old = MemoryContextSwitchTo(run->cxt);

	t = palloc(sizeof(PendingToken));
	t->id = psprintf("waittoken_%s_%d", run->id + strlen("run_"), seq);
	t->timeout_at = timeout_at;
	t->has_timeout = has_timeout;
	run->new_tokens = lappend(run->new_tokens, t);
	MemoryContextSwitchTo(old);
	return CStringGetTextDatum(t->id);
}

/* Write the tokens the batch's tasks made (inside SPI). */
void
waits_record_tokens(ClaimedRun *runs, int n)
{
	int			k = 0;
	Datum	   *idv,
			   *ownv,
			   *tov;
	bool	   *tonull;
	int			dims[1];
	int			lbs[1] = {1};
	Datum		values[3];

	for (int i = 0; i < n; i++)
		k += list_length(runs[i].new_tokens);
	if (k == 0)
		return;
	idv = palloc(sizeof(Datum) * k);
	ownv = palloc(sizeof(Datum) * k);
	tov = palloc(sizeof(Datum) * k);
	tonull = palloc0(sizeof(bool) * k);
	k = 0;
	for (int i = 0; i < n; i++)
	{
		ListCell   *lc;

		foreach(lc, runs[i].new_tokens)
		{
			PendingToken *t = lfirst(lc);

			idv[k] = CStringGetTextDatum(t->id);
			ownv[k] = ObjectIdGetDatum(runs[i].owner);
			tov[k] = TimestampTzGetDatum(t->timeout_at);
			tonull[k] = !t->has_timeout;
			k++;
		}
	}
	dims[0] = k;
	values[0] = PointerGetDatum(construct_array(idv, k, TEXTOID, -1, false, TYPALIGN_INT));
	values[1] = PointerGetDatum(construct_array(ownv, k, OIDOID, 4, true, TYPALIGN_INT));
	values[2] = PointerGetDatum(construct_md_array(tov, tonull, 1, dims, lbs, TIMESTAMPTZOID, 8,
												   true, TYPALIGN_DOUBLE));
	taskorch_execute_as_owner(&token_insert_plan, values, NULL, false, 0);
}

/* Is `token` one this execution made (not yet written)? */
static bool
made_here(ClaimedRun *run, const char *token)
{
	ListCell   *lc;

	foreach(lc, run->new_tokens)
		if (strcmp(((PendingToken *) lfirst(lc))->id, token) == 0)
			return true;
	return false;
}

/*
 * SQL: taskorch.create_wait_token(timeout, idempotency_key, tags) -> token
 * id.  The idempotency key and the tags follow trigger()'s rules.
 */
Datum
taskorch_create_wait_token(PG_FUNCTION_ARGS)
{
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	Datum		id;
	bool		isnull;
	ClaimedRun *run = current_run();
	List	   *tags = NIL;

	if (!PG_ARGISNULL(1))
	{
		text	   *key = PG_GETARG_TEXT_PP(1);

		check_key("idempotency_key", VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
	}
	if (!PG_ARGISNULL(2))
		tags = tags_add_array(NIL, "tags", PG_GETARG_ARRAYTYPE_P(2));
	if (PG_ARGISNULL(0))
		nulls[0] = 'n';
	else
		values[0] = TimestampTzGetDatum(TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
			duration_ms_from_datum("timeout", PG_GETARG_DATUM(0),
								   get_fn_expr_argtype(fcinfo->flinfo, 0), false)));
	if (run)
		PG_RETURN_DATUM(task_token(run, nulls[0] == 'n' ? 0 : DatumGetTimestampTz(values[0]),
								   nulls[0] != 'n'));
	values[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	nulls[1] = PG_ARGISNULL(1) ? 'n' : ' ';
	values[2] = tags_to_array(tags);
	values[3] = ObjectIdGetDatum(GetUserId());
	SPI_connect();
	taskorch_execute_as_owner(&token_create_plan, values, nulls, false, 1);
	id = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
						   false, -1);
	SPI_finish();
	PG_RETURN_DATUM(id);
}

/* Read a token the caller may use: (completed?, result); errors otherwise. */
static bool
token_state(const char *token, Jsonb **result)
{
	Datum		values[1] = {CStringGetTextDatum(token)};
	bool		done;
	bool		isnull;
	Datum		r;
	Oid			owner;

	SPI_connect();
	if (taskorch_execute_latest(&token_state_plan, values, NULL, 1) != 1)
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("wait token \"%s\" does not exist", token),
				errhint("create_wait_token() returns ids such as waittoken_1."));
	done = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	r = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull),
						  false, -1);
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	SPI_finish();
	if (!acts_for(owner))
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("permission denied for wait token \"%s\"", token),
				errhint("Only the role that created a wait token (or taskorch_admin) may use it."));
	if (result)
		*result = DatumGetJsonbPCopy(r);
	return done;
}

/* SQL: taskorch.wait_for_token(token) -> {ok, output} or {ok: false, error} */
Datum
taskorch_wait_for_token(PG_FUNCTION_ARGS)
{
	ClaimedRun *run;
	char	   *token;
	int32		seq;
	Jsonb	   *result = NULL;

	require_arg(fcinfo, 0, "token", "Pass the id create_wait_token() returned.");
	token = text_to_cstring(PG_GETARG_TEXT_PP(0));
	run = run_in_task("taskorch.wait_for_token()",
					  "Outside a task, read the token's state in taskorch.wait_tokens.");
	seq = run->wait_calls++;
	if (wait_completed(run, seq, "token", token, &result) ||
		(!made_here(run, token) && token_state(token, &result)))
		PG_RETURN_JSONB_P(result);
	suspend(run, seq, "token", DT_NOEND, NULL, token, psprintf("wait token %s", token));
	PG_RETURN_NULL();
}

/*
 * SQL: taskorch.complete_wait_token(token, output): the first completion
 * wins; the runs waiting on it resume.
 */
Datum
taskorch_complete_wait_token(PG_FUNCTION_ARGS)
{
	char	   *token;
	Datum		values[2];

	require_arg(fcinfo, 0, "token", "Pass the id create_wait_token() returned.");
	token = text_to_cstring(PG_GETARG_TEXT_PP(0));
	(void) token_state(token, NULL);
	values[0] = CStringGetTextDatum(token);
	values[1] = PG_ARGISNULL(1) ? JsonbPGetDatum(jsonb_from_cstring("{}")) : PG_GETARG_DATUM(1);
	SPI_connect();
	if (taskorch_execute_as_owner(&token_complete_plan, values, NULL, false, 0) != 1)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("wait token \"%s\" is already completed", token),
				errhint("A wait token is completed once; the first completion won."));
	values[1] = TimestampTzGetDatum(GetCurrentTimestamp());
	taskorch_execute_as_owner(&token_resume_plan, values, NULL, false, 0);
	SPI_finish();
	taskorch_requeued_at_commit();
	PG_RETURN_VOID();
}

/* Maintenance: tokens that timed out, and completions a suspension missed. */
int
waits_resume_tokens(void)
{
	Datum		values[2] = {(Datum) 0, TimestampTzGetDatum(GetCurrentTimestamp())};
	char		nulls[2] = {'n', ' '};
	int			n;

	SPI_connect();
	n = taskorch_execute_as_owner(&token_resume_plan, values, nulls, false, 0);
	SPI_finish();
	return n;
}
