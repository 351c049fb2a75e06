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
	"SELECT completed_at IS NOT NULL, taskorch._token_result(timed_out, output), owner::oid"
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
	"            result = taskorch._token_result(t.timed_out OR t.id IN (SELECT id FROM timed_out),"
	"                                            t.output)"
	"            FROM taskorch.wait_token t"
	"           WHERE wp.kind = 'token' AND wp.completed_at IS NULL AND wp.token = t.id"
	"             AND ($1::text IS NULL OR t.id = $1)"
	"             AND (t.completed_at IS NOT NULL OR t.id IN (SELECT id FROM timed_out))"
	"         RETURNING wp.run_id)"
	" UPDATE taskorch.run r SET status = " SQL_STATUS(QUEUED) ", run_at = $2, updated_at = $2"
	"   FROM (SELECT DISTINCT run_id FROM done) d"
	"  WHERE r.id = d.run_id AND r.status = " SQL_STATUS(WAITING),
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
	wait_suspend(run, seq, "token", DT_NOEND, NULL, token, psprintf("wait token %s", token));
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
	(void) run_transition(RUN_WAITING, RUN_QUEUED, BY_WAITS);
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
	(void) run_transition(RUN_WAITING, RUN_QUEUED, BY_WAITS);
	n = taskorch_execute_as_owner(&token_resume_plan, values, nulls, false, 0);
	SPI_finish();
	return n;
}
