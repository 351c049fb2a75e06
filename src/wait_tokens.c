/*-------------------------------------------------------------------------
 *
 * wait_tokens.c
 *	  Wait tokens: a run waits until some session completes the token.
 *	  create_wait_token(), wait_for_token() (a wait: waits.c has the
 *	  replay mechanism), complete_wait_token(), and the maintenance of
 *	  tokens that timed out.
 *
 * Transactions: a token made inside a task is noted on the run and
 * written by the batch's top-level transaction (waits_record_tokens), so
 * that the rollback of an attempt that then waits keeps it; its id is
 * fixed by the run and the call, so a replay makes the same one.  A token
 * made outside a task is inserted in the caller's transaction.  complete_wait_token() completes the
 * token and the waits on it in the caller's transaction; the first
 * completion wins.  Memory: the run's (batch) context.  Lock: none shared;
 * token and waitpoint rows.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(taskorch_create_wait_token);
PG_FUNCTION_INFO_V1(taskorch_wait_for_token);
PG_FUNCTION_INFO_V1(taskorch_complete_wait_token);

/* a token made outside a task */
typedef struct TokenCreateArgs
{
	PlanValue	timeout_at;		/* NULL: none */
	PlanValue	idempotency_key;	/* NULL: none */
	PlanValue	tags;
	PlanValue	owner;
} TokenCreateArgs;

typedef struct TokenIdRow
{
	PlanValue	id;
} TokenIdRow;

static const PlanField token_create_params[] = {
	PLAN_PARAM(TokenCreateArgs, timeout_at, TIMESTAMPTZOID),
	PLAN_PARAM(TokenCreateArgs, idempotency_key, TEXTOID),
	PLAN_PARAM(TokenCreateArgs, tags, TEXTARRAYOID),
	PLAN_PARAM(TokenCreateArgs, owner, OIDOID),
};
static const PlanField token_id_columns[] = {
	PLAN_COLUMN(TokenIdRow, id),
};
/* the owner's live token of that idempotency key, or a new one */
static NamedPlan token_create_plan = {
	.sql = "WITH live AS (SELECT id FROM taskorch.wait_token"
	"               WHERE :idempotency_key IS NOT NULL AND idempotency_key = :idempotency_key"
	"                 AND owner = :owner::regrole AND completed_at IS NULL LIMIT 1),"
	"     made AS (INSERT INTO taskorch.wait_token (owner, timeout_at, idempotency_key, tags)"
	"              SELECT :owner::regrole, :timeout_at, :idempotency_key, coalesce(:tags, '{}')"
	"               WHERE NOT EXISTS (SELECT FROM live)"
	"              RETURNING id)"
	" SELECT id FROM live UNION ALL SELECT id FROM made",
	PLAN_PARAMS(token_create_params), PLAN_COLUMNS(token_id_columns)
};

/* one token; for token_resume_plan, NULL: every token */
typedef struct TokenArgs
{
	PlanValue	token;
	PlanValue	output;
	PlanValue	now;
} TokenArgs;

typedef struct TokenStateRow
{
	PlanValue	completed;
	PlanValue	result;
	PlanValue	owner;
} TokenStateRow;

static const PlanField token_state_params[] = {
	PLAN_PARAM(TokenArgs, token, TEXTOID),
};
static const PlanField token_state_columns[] = {
	PLAN_COLUMN(TokenStateRow, completed),
	PLAN_COLUMN(TokenStateRow, result),
	PLAN_COLUMN(TokenStateRow, owner),
};
static NamedPlan token_state_plan = {
	.sql = "SELECT completed_at IS NOT NULL AS completed,"
	"       taskorch_internal.token_result(timed_out, output) AS result, owner::oid AS owner"
	"  FROM taskorch.wait_token WHERE id = :token",
	PLAN_PARAMS(token_state_params), PLAN_COLUMNS(token_state_columns)
};

static const PlanField token_complete_params[] = {
	PLAN_PARAM(TokenArgs, token, TEXTOID),
	PLAN_PARAM(TokenArgs, output, JSONBOID),
};
static NamedPlan token_complete_plan = {
	.sql = "UPDATE taskorch.wait_token SET completed_at = now(), output = :output"
	" WHERE id = :token AND completed_at IS NULL",
	PLAN_PARAMS(token_complete_params)
};

static const PlanField token_resume_params[] = {
	PLAN_PARAM(TokenArgs, token, TEXTOID),
	PLAN_PARAM(TokenArgs, now, TIMESTAMPTZOID),
};
/*
 * Tokens completed or timed out: complete the waitpoints waiting on them
 * and queue their runs again (:token one token; NULL: all, and time out
 * the tokens past their timeout first).
 */
static NamedPlan token_resume_plan = {
	.sql = "WITH timed_out AS (UPDATE taskorch.wait_token SET completed_at = :now, timed_out = true"
	"                    WHERE :token IS NULL AND completed_at IS NULL AND timeout_at <= :now"
	"                    RETURNING id),"
	" done AS (UPDATE taskorch.waitpoint wp SET completed_at = :now,"
	"            result = taskorch_internal.token_result(t.timed_out OR t.id IN (SELECT id FROM timed_out),"
	"                                            t.output)"
	"            FROM taskorch.wait_token t"
	"           WHERE wp.kind = 'token' AND wp.completed_at IS NULL AND wp.token = t.id"
	"             AND (:token IS NULL OR t.id = :token)"
	"             AND (t.completed_at IS NOT NULL OR t.id IN (SELECT id FROM timed_out))"
	"         RETURNING wp.run_id)"
	" UPDATE taskorch.run r SET status = " SQL_STATUS(QUEUED) ", run_at = :now, updated_at = :now"
	"   FROM (SELECT DISTINCT run_id FROM done) d"
	"  WHERE r.id = d.run_id AND r.status = " SQL_STATUS(WAITING),
	PLAN_PARAMS(token_resume_params), .shape = PLAN_KEY_LOOKUPS
};

/* the tokens a batch's tasks made, their items side by side */
typedef struct TokenInsertArgs
{
	PlanValue	ids;
	PlanValue	owners;
	PlanValue	timeout_ats;
} TokenInsertArgs;

static const PlanField token_insert_params[] = {
	PLAN_PARAM(TokenInsertArgs, ids, TEXTARRAYOID),
	PLAN_PARAM(TokenInsertArgs, owners, OIDARRAYOID),
	PLAN_PARAM(TokenInsertArgs, timeout_ats, TIMESTAMPTZARRAYOID),
};
static NamedPlan token_insert_plan = {
	.sql = "INSERT INTO taskorch.wait_token (id, owner, timeout_at, tags)"
	" SELECT u.id, u.owner::regrole, u.timeout_at, '{}'"
	"   FROM unnest(:ids, :owners, :timeout_ats) AS u(id, owner, timeout_at)"
	" ON CONFLICT (id) DO NOTHING",
	PLAN_PARAMS(token_insert_params)
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
	PlanItems	ids,
				owners,
				timeout_ats;
	TokenInsertArgs args;

	for (int i = 0; i < n; i++)
		k += list_length(runs[i].new_tokens);
	if (k == 0)
		return;
	ids = plan_items_new(k);
	owners = plan_items_new(k);
	timeout_ats = plan_items_new(k);
	k = 0;
	for (int i = 0; i < n; i++)
	{
		ListCell   *lc;

		foreach(lc, runs[i].new_tokens)
		{
			PendingToken *t = lfirst(lc);

			ids.values[k] = CStringGetTextDatum(t->id);
			owners.values[k] = ObjectIdGetDatum(runs[i].owner);
			timeout_ats.values[k] = TimestampTzGetDatum(t->timeout_at);
			timeout_ats.nulls[k] = !t->has_timeout;
			k++;
		}
	}
	args.ids = plan_items_array(ids, k, TEXTOID);
	args.owners = plan_items_array(owners, k, OIDOID);
	args.timeout_ats = plan_items_array(timeout_ats, k, TIMESTAMPTZOID);
	taskorch_execute_args(&token_insert_plan, &args, false, 0);
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
	TokenCreateArgs args;
	TokenIdRow	row;
	char	   *id;
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext old;
	ClaimedRun *run = current_run();
	List	   *tags = NIL;

	if (!PG_ARGISNULL(1))
	{
		text	   *key = PG_GETARG_TEXT_PP(1);

		check_key("idempotency_key", VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
	}
	if (!PG_ARGISNULL(2))
		tags = tags_add_array(NIL, "tags", PG_GETARG_ARRAYTYPE_P(2));
	args.timeout_at = PG_ARGISNULL(0) ? PV_NULL :
		pv_timestamptz(TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
			duration_ms_from_text("timeout", TextDatumGetCString(PG_GETARG_DATUM(0)), false)));
	if (run)
		PG_RETURN_DATUM(task_token(run,
								   args.timeout_at.present ?
								   DatumGetTimestampTz(args.timeout_at.datum) : 0,
								   args.timeout_at.present));
	args.idempotency_key = PG_ARGISNULL(1) ? PV_NULL : pv_datum(PG_GETARG_DATUM(1));
	args.tags = pv_datum(tags_to_array(tags));
	args.owner = pv_oid(GetUserId());
	SPI_connect();
	taskorch_execute_args(&token_create_plan, &args, false, 1);
	taskorch_read_row(&token_create_plan, 0, &row);
	old = MemoryContextSwitchTo(caller);
	id = pv_cstring(row.id);
	MemoryContextSwitchTo(old);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(id));
}

/* Read a token the caller may use: (completed?, result); errors otherwise. */
static bool
token_state(const char *token, Jsonb **result)
{
	TokenArgs	args = {.token = pv_text(token)};
	TokenStateRow row;
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext old;
	bool		done;
	Jsonb	   *r;
	Oid			owner;

	SPI_connect();
	if (taskorch_execute_args_latest(&token_state_plan, &args, 1) != 1)
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("wait token \"%s\" does not exist", token),
				errhint("create_wait_token() returns ids such as waittoken_1."));
	taskorch_read_row(&token_state_plan, 0, &row);
	done = DatumGetBool(row.completed.datum);
	owner = DatumGetObjectId(row.owner.datum);
	old = MemoryContextSwitchTo(caller);
	r = pv_jsonb_copy(row.result);
	MemoryContextSwitchTo(old);
	SPI_finish();
	if (!acts_for(owner))
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("permission denied for wait token \"%s\"", token),
				errhint("Only the role that created a wait token (or taskorch_admin) may use it."));
	if (result)
		*result = r;
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
	{
		WaitCall	call = {.seq = seq, .kind = "token", .resume_at = DT_NOEND,
		.token = token, .target = token};

		wait_suspend(run, &call, psprintf("wait token %s", token));
	}
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
	TokenArgs	args;

	require_arg(fcinfo, 0, "token", "Pass the id create_wait_token() returned.");
	token = text_to_cstring(PG_GETARG_TEXT_PP(0));
	(void) token_state(token, NULL);
	args.token = pv_text(token);
	args.output = pv_jsonb(PG_ARGISNULL(1) ? jsonb_from_cstring("{}") : PG_GETARG_JSONB_P(1));
	SPI_connect();
	if (taskorch_execute_args(&token_complete_plan, &args, false, 0) != 1)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("wait token \"%s\" is already completed", token),
				errhint("A wait token is completed once; the first completion won."));
	args.now = pv_timestamptz(GetCurrentTimestamp());
	(void) run_transition(RUN_WAITING, RUN_QUEUED, BY_WAITS);
	taskorch_execute_args(&token_resume_plan, &args, false, 0);
	SPI_finish();
	taskorch_requeued_at_commit();
	PG_RETURN_VOID();
}

/* Maintenance: tokens that timed out, and completions a suspension missed. */
int
waits_resume_tokens(void)
{
	TokenArgs	args = {.token = PV_NULL, .now = pv_timestamptz(GetCurrentTimestamp())};
	int			n;

	SPI_connect();
	(void) run_transition(RUN_WAITING, RUN_QUEUED, BY_WAITS);
	n = taskorch_execute_args(&token_resume_plan, &args, false, 0);
	SPI_finish();
	return n;
}
