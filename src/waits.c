/*-------------------------------------------------------------------------
 *
 * waits.c
 *	  Durable waits by replay: the mechanism every kind of wait shares.
 *	  What each kind waits for, and how it ends, is in its own file:
 *	  wait_time.c (wait_for, wait_until), wait_children.c
 *	  (trigger_and_wait, batch_trigger_and_wait), wait_tokens.c
 *	  (wait_for_token and the tokens themselves).
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
 * This file owns the wait calls' numbering and memo (wait_completed: an
 * earlier execution got past this call, with what result; a replay that
 * calls something else there is refused), the suspension (wait_suspend),
 * the recording of the waitpoints of a batch's suspended runs
 * (waits_record) and the maintenance entry that resumes runs whose wait
 * is over (waits_resume).
 *
 * Transactions: wait calls run inside the task's subtransaction and only
 * note the wait on the ClaimedRun; what they note is written by the
 * batch's top-level transaction after the attempt's rollback (complete.c),
 * so a wait is recorded exactly when its run is WAITING.  Memory: the memo
 * and the noted wait live in the run's (batch) context.  Lock: no shared
 * lock; waitpoint rows are locked by the statements that complete them.
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

PG_FUNCTION_INFO_V1(taskorch_in_transaction_block);

PG_FUNCTION_INFO_V1(taskorch_last_checkpoint);

static void load_memo(ClaimedRun *run);

/*
 * SQL: taskorch_internal.last_checkpoint(): inside a task, its latest checkpoint
 * that is over, {key, state, result}: where a track resumes (the state it
 * carried into that step, and how the step ended); NULL if none.  A
 * checkpoint is a wait recorded under a key (a track step's name), so a
 * resumed run starts from it instead of replaying its code from the top.
 */
Datum
taskorch_last_checkpoint(PG_FUNCTION_ARGS)
{
	ClaimedRun *run = current_run();
	int			last = -1;
	JsonObject	o;

	if (run == NULL)
		PG_RETURN_NULL();
	if (!run->memo_loaded)
		load_memo(run);
	for (int i = 0; i < run->memo_count; i++)
		if (run->memo_key[i] && (last < 0 || run->memo_seq[i] > run->memo_seq[last]))
			last = i;
	if (last < 0)
		PG_RETURN_NULL();
	/* the run goes on after it: it has passed every wait before it (logs.c) */
	run->wait_calls = Max(run->wait_calls, run->memo_seq[last] + 1);
	json_begin(&o);
	json_string(&o, "key", run->memo_key[last]);
	json_jsonb(&o, "state", run->memo_state[last]);
	json_jsonb(&o, "result", run->memo_result[last]);
	PG_RETURN_JSONB_P(json_end(&o));
}

/* SQL: taskorch_internal.in_transaction_block(), for run_and_wait's check */
Datum
taskorch_in_transaction_block(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(IsTransactionBlock());
}

typedef struct MemoArgs
{
	PlanValue	run_id;
} MemoArgs;

/* a wait of the run that is over */
typedef struct MemoRow
{
	PlanValue	seq;
	PlanValue	kind;
	PlanValue	target;
	PlanValue	key;
	PlanValue	state;
	PlanValue	result;
} MemoRow;

static const PlanField memo_params[] = {
	PLAN_PARAM(MemoArgs, run_id, TEXTOID),
};
static const PlanField memo_columns[] = {
	PLAN_COLUMN(MemoRow, seq),
	PLAN_COLUMN(MemoRow, kind),
	PLAN_COLUMN(MemoRow, target),
	PLAN_COLUMN(MemoRow, key),
	PLAN_COLUMN(MemoRow, state),
	PLAN_COLUMN(MemoRow, result),
};
static NamedPlan memo_plan = {
	.sql = "SELECT seq, kind, target, key, state, result FROM taskorch.waitpoint"
	" WHERE run_id = :run_id AND completed_at IS NOT NULL",
	PLAN_PARAMS(memo_params), PLAN_COLUMNS(memo_columns)
};

/* the waitpoints of a batch's suspended runs, their items side by side */
typedef struct InsertArgs
{
	PlanValue	run_ids;
	PlanValue	seqs;
	PlanValue	kinds;
	PlanValue	resume_ats;
	PlanValue	children;		/* each: ids space-separated, '': none */
	PlanValue	tokens;			/* each: '': none */
	PlanValue	targets;
	PlanValue	keys;
	PlanValue	states;
	PlanValue	now;
} InsertArgs;

static const PlanField insert_params[] = {
	PLAN_PARAM(InsertArgs, run_ids, TEXTARRAYOID),
	PLAN_PARAM(InsertArgs, seqs, INT4ARRAYOID),
	PLAN_PARAM(InsertArgs, kinds, TEXTARRAYOID),
	PLAN_PARAM(InsertArgs, resume_ats, TIMESTAMPTZARRAYOID),
	PLAN_PARAM(InsertArgs, children, TEXTARRAYOID),
	PLAN_PARAM(InsertArgs, tokens, TEXTARRAYOID),
	PLAN_PARAM(InsertArgs, targets, TEXTARRAYOID),
	PLAN_PARAM(InsertArgs, keys, TEXTARRAYOID),
	PLAN_PARAM(InsertArgs, states, JSONBARRAYOID),
	PLAN_PARAM(InsertArgs, now, TIMESTAMPTZOID),
};
static NamedPlan insert_plan = {
	.sql = "INSERT INTO taskorch.waitpoint (run_id, seq, kind, resume_at, children, token, target,"
	"                                key, state, created_at)"
	" SELECT u.run_id, u.seq, u.kind, u.resume_at,"
	"        string_to_array(nullif(u.children, ''), ' '), nullif(u.token, ''), u.target,"
	"        u.key, u.state, :now"
	"   FROM unnest(:run_ids, :seqs, :kinds, :resume_ats, :children, :tokens, :targets,"
	"               :keys, :states)"
	"        AS u(run_id, seq, kind, resume_at, children, token, target, key, state)"
	" ON CONFLICT (run_id, seq) DO NOTHING",
	PLAN_PARAMS(insert_params)
};

/*
 * The waits of the run that are over, read once per execution (a replay
 * passes all of them; each would otherwise cost a query).  Kept in the
 * batch's context: seq and result of each, by seq.
 */
static void
load_memo(ClaimedRun *run)
{
	MemoArgs	args = {pv_text(run->id)};
	MemoryContext old;
	int			n;

	SPI_connect();
	n = taskorch_execute_args(&memo_plan, &args, true, 0);
	old = MemoryContextSwitchTo(run->cxt);
	run->memo_seq = palloc(sizeof(int32) * Max(n, 1));
	run->memo_kind = palloc(sizeof(char *) * Max(n, 1));
	run->memo_target = palloc(sizeof(char *) * Max(n, 1));
	run->memo_key = palloc(sizeof(char *) * Max(n, 1));
	run->memo_state = palloc(sizeof(Jsonb *) * Max(n, 1));
	run->memo_result = palloc(sizeof(Jsonb *) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		MemoRow		row;

		taskorch_read_row(&memo_plan, i, &row);
		run->memo_seq[i] = DatumGetInt32(row.seq.datum);
		run->memo_kind[i] = pv_cstring(row.kind);
		run->memo_target[i] = pv_cstring(row.target);
		run->memo_key[i] = pv_cstring(row.key);
		run->memo_state[i] = pv_jsonb_copy(row.state);
		run->memo_result[i] = pv_jsonb_copy(row.result);
	}
	MemoryContextSwitchTo(old);
	SPI_finish();
	run->memo_count = n;
	run->memo_loaded = true;
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

/* A wait call, for messages: its function and what it waits for. */
static char *
wait_call(const char *kind, const char *target)
{
	return target ? psprintf("%s (%s)", wait_call_name(kind), target) : pstrdup(wait_call_name(kind));
}

/*
 * The wait call number `seq` of the current execution, a wait of `kind`
 * for `target` (what it waits for: its task and payload, a time, a
 * token...): true when its waitpoint is already completed (return at once;
 * *result, if given, gets what it returns), false when the run must
 * suspend.  kind NULL: only whether it is completed.  A recorded wait of
 * another kind, for another target, or without the result it should
 * have, is refused (replay_mismatch), naming both.
 */
bool
wait_completed(ClaimedRun *run, int32 seq, const char *kind, const char *target, Jsonb **result)
{
	if (!run->memo_loaded)
		load_memo(run);
	for (int i = 0; i < run->memo_count; i++)
	{
		if (run->memo_seq[i] != seq)
			continue;
		if (kind && (strcmp(run->memo_kind[i], kind) != 0 ||
					 (target && run->memo_target[i] && strcmp(run->memo_target[i], target) != 0)))
			replay_mismatch(run, seq, wait_call(run->memo_kind[i], run->memo_target[i]),
							wait_call(kind, target));
		if (kind && strcmp(kind, "time") != 0 && run->memo_result[i] == NULL)
			replay_mismatch(run, seq, "a wait without a result", wait_call_name(kind));
		if (result)
			*result = run->memo_result[i];
		return true;
	}
	return false;
}

/*
 * Suspend the run at the wait `call` (waiting on its children or token,
 * when given; under its key, when it is a checkpoint): note the wait (the
 * worker records it once the attempt is rolled back), then unwind the
 * task.  Only the first wait an execution reaches counts: if task code
 * catches the error and goes on, the run still suspends there when the
 * task returns (execute.c).
 */
void
wait_suspend(ClaimedRun *run, const WaitCall *call, const char *what)
{
	if (run->wait_kind == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(run->cxt);

		run->wait_seq = call->seq;
		run->wait_kind = call->kind;
		run->wait_resume_at = call->resume_at;
		run->wait_children = call->children;
		run->wait_token = call->token ? pstrdup(call->token) : NULL;
		run->wait_target = call->target ? pstrdup(call->target) : NULL;
		run->wait_key = call->key ? pstrdup(call->key) : NULL;
		run->wait_state = call->state ?
			DatumGetJsonbPCopy(JsonbPGetDatum(call->state)) : NULL;
		MemoryContextSwitchTo(old);
	}
	ereport(ERROR,
			errcode(TASKORCH_SQLSTATE_WAIT),
			errmsg("run %s is waiting for %s", run->id, what),
			errdetail("This is how a task waits; let the error pass through."),
			errhint("Do not catch SQLSTATE TOWAI in task code."));
}

/* Record the waitpoints of the runs suspended in this batch (inside SPI). */
void
waits_record(ClaimedRun *runs, int n)
{
	PlanItems	run_ids = plan_items_new(n),
				seqs = plan_items_new(n),
				kinds = plan_items_new(n),
				resume_ats = plan_items_new(n),
				children = plan_items_new(n),
				tokens = plan_items_new(n),
				targets = plan_items_new(n),
				keys = plan_items_new(n),
				states = plan_items_new(n);
	InsertArgs	args;
	int			k = 0;

	for (int i = 0; i < n; i++)
	{
		if (!runs[i].suspended)
			continue;
		run_ids.values[k] = CStringGetTextDatum(runs[i].id);
		seqs.values[k] = Int32GetDatum(runs[i].wait_seq);
		kinds.values[k] = CStringGetTextDatum(runs[i].wait_kind);
		resume_ats.values[k] = TimestampTzGetDatum(runs[i].wait_resume_at);
		children.values[k] = CStringGetTextDatum(runs[i].wait_children_ids ? runs[i].wait_children_ids : "");
		tokens.values[k] = CStringGetTextDatum(runs[i].wait_token ? runs[i].wait_token : "");
		targets.values[k] = runs[i].wait_target ? CStringGetTextDatum(runs[i].wait_target) : (Datum) 0;
		targets.nulls[k] = runs[i].wait_target == NULL;
		keys.values[k] = runs[i].wait_key ? CStringGetTextDatum(runs[i].wait_key) : (Datum) 0;
		keys.nulls[k] = runs[i].wait_key == NULL;
		states.values[k] = runs[i].wait_state ? JsonbPGetDatum(runs[i].wait_state) : (Datum) 0;
		states.nulls[k] = runs[i].wait_state == NULL;
		k++;
	}
	if (k == 0)
		return;
	args.run_ids = plan_items_array(run_ids, k, TEXTOID);
	args.seqs = plan_items_array(seqs, k, INT4OID);
	args.kinds = plan_items_array(kinds, k, TEXTOID);
	args.resume_ats = plan_items_array(resume_ats, k, TIMESTAMPTZOID);
	args.children = plan_items_array(children, k, TEXTOID);
	args.tokens = plan_items_array(tokens, k, TEXTOID);
	args.targets = plan_items_array(targets, k, TEXTOID);
	args.keys = plan_items_array(keys, k, TEXTOID);
	args.states = plan_items_array(states, k, JSONBOID);
	args.now = pv_timestamptz(GetCurrentTimestamp());
	taskorch_execute_args(&insert_plan, &args, false, 0);
}

/*
 * Queue again the WAITING runs whose wait is over (a worker's maintenance
 * pass, maintenance.c): time waits, child waits, wait tokens.  Returns how
 * many runs were queued.
 */
int
waits_resume(void)
{
	TimestampTz now = GetCurrentTimestamp();
	int			resumed;

	SPI_connect();
	resumed = wait_time_resume(now);
	resumed += wait_children_resume(now);
	SPI_finish();
	return resumed + waits_resume_tokens();
}
