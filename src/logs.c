/*-------------------------------------------------------------------------
 *
 * logs.c
 *	  Run logs: taskorch.log(level, message, data) inside a task, and the
 *	  task's own INFO, NOTICE and WARNING messages.
 *
 * A failed attempt's subtransaction is rolled back, and its logs must
 * survive that.  So logs are not inserted by the task: they are kept in
 * the batch's memory and written, with the batch's outcomes, by the
 * top-level transaction (logs_flush, called from complete_runs).  A crash
 * before the batch commits loses them with the rest of the batch.
 *
 * The task's own messages are caught by emit_log_hook.  While a task runs,
 * log_min_messages is INFO so that the hook sees them; those the server
 * log would not have shown are kept out of it.  A worker lowers it once,
 * for its whole session (logs_worker_level(), outside any transaction);
 * run_pending() in a session lowers it at each task's GUC nest level, so
 * that it is restored after.  (Lowered per run, it would leave each run a
 * GUC to restore, and AtEOXact_GUC() would walk every GUC of the server at
 * each run's end: 1.6% of a no-op burn-down.)
 *
 * A message longer than MAX_LOG_MESSAGE bytes is kept cut to that size, at
 * a character boundary, so that every stored message is valid text in the
 * database encoding.  An entry's data is at most MAX_LOG_DATA bytes, and an
 * attempt keeps at most MAX_LOGS_PER_ATTEMPT entries: what one attempt can
 * hold in the batch's memory until it commits is bounded.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(taskorch_log);
PG_FUNCTION_INFO_V1(taskorch_lease_log);

#define MAX_LOGS_PER_ATTEMPT 1000
#define MAX_LOG_MESSAGE 8192		/* bytes; longer messages are cut */
#define MAX_LOG_DATA (64 * 1024)	/* bytes of an entry's data; larger is refused */

typedef struct RunLog
{
	const ClaimedRun *run;		/* the batch's: valid until logs_flush */
	int32		wait_calls;		/* the wait calls its execution had made */
	const char *run_id;
	int32		attempt;
	TimestampTz at;
	const char *level;
	char	   *message;
	Jsonb	   *data;
} RunLog;

static const ClaimedRun *log_run = NULL;	/* the run whose logs we keep */
static MemoryContext log_cxt = NULL;
static List *pending = NIL;		/* RunLog *, in log_cxt */
static int	run_count = 0;
static int	server_min_messages;	/* log_min_messages outside the task */
static bool worker_lowered = false; /* log_min_messages lowered for the session */
static emit_log_hook_type prev_emit_log_hook = NULL;

/* the batch's pending logs, an array per column */
typedef struct LogInsertArgs
{
	PlanValue	run_ids;
	PlanValue	attempts;
	PlanValue	logged_ats;
	PlanValue	levels;
	PlanValue	messages;
	PlanValue	datas;
} LogInsertArgs;

static const PlanField insert_params[] = {
	PLAN_PARAM(LogInsertArgs, run_ids, TEXTARRAYOID),
	PLAN_PARAM(LogInsertArgs, attempts, INT4ARRAYOID),
	PLAN_PARAM(LogInsertArgs, logged_ats, TIMESTAMPTZARRAYOID),
	PLAN_PARAM(LogInsertArgs, levels, TEXTARRAYOID),
	PLAN_PARAM(LogInsertArgs, messages, TEXTARRAYOID),
	PLAN_PARAM(LogInsertArgs, datas, JSONBARRAYOID),
};
/*
 * An entry's position continues its attempt's: an attempt that waited
 * spans executions (and batches), each of which numbers its own entries
 * from 1.
 */
static NamedPlan insert_plan = {
	.sql = "INSERT INTO taskorch.log (run_id, attempt, position, logged_at, level, message, data)"
	" SELECT u.run_id, u.attempt,"
	"        coalesce((SELECT max(l.position) FROM taskorch.log l"
	"                   WHERE l.run_id = u.run_id AND l.attempt = u.attempt), 0)"
	"        + row_number() OVER (PARTITION BY u.run_id, u.attempt ORDER BY u.n),"
	"        u.logged_at, u.level, u.message, u.data"
	"   FROM unnest(:run_ids, :attempts, :logged_ats, :levels, :messages, :datas)"
	"        WITH ORDINALITY AS u(run_id, attempt, logged_at, level, message, data, n)",
	PLAN_PARAMS(insert_params), .shape = PLAN_KEY_LOOKUPS
};

/*
 * An entry its run logged before, in an earlier execution: the execution
 * that logged it had not yet passed a wait that is over (so an earlier
 * execution passed that point, and logged it then).  Code before a
 * durable wait runs again on every resume; its entries are kept once.
 */
static bool
logged_before(const RunLog *l)
{
	const ClaimedRun *run = l->run;

	if (run == NULL || !run->memo_loaded)
		return false;			/* it made no wait call: not a resumed execution */
	for (int i = 0; i < run->memo_count; i++)
		if (run->memo_seq[i] >= l->wait_calls)
			return true;
	return false;
}

static void
add_log(const char *level, const char *message, Jsonb *data)
{
	MemoryContext old;
	RunLog	   *l;

	if (log_run == NULL || ++run_count > MAX_LOGS_PER_ATTEMPT + 1)
		return;
	old = MemoryContextSwitchTo(log_cxt);
	l = palloc(sizeof(RunLog));
	l->run = log_run;
	l->wait_calls = log_run->wait_calls;
	l->run_id = log_run->id;
	l->attempt = log_run->attempts + 1;
	l->at = GetCurrentTimestamp();
	l->level = level;
	if (run_count > MAX_LOGS_PER_ATTEMPT)
	{
		l->level = "warn";
		l->message = psprintf("log limit of %d entries per attempt reached; later entries dropped",
							  MAX_LOGS_PER_ATTEMPT);
		l->data = NULL;
	}
	else
	{
		/* cut at a character boundary: the stored text stays valid */
		l->message = pnstrdup(message, pg_mbcliplen(message, strlen(message),
													MAX_LOG_MESSAGE));
		l->data = data ? (Jsonb *) DatumGetPointer(datumCopy(PointerGetDatum(data), false, -1)) : NULL;
	}
	pending = lappend(pending, l);
	MemoryContextSwitchTo(old);
}

static void
logs_emit_hook(ErrorData *edata)
{
	if (edata->elevel >= INFO && edata->elevel < ERROR && (log_run != NULL || worker_lowered))
	{
		if (log_run != NULL)
			add_log(edata->elevel == WARNING ? "warn" :
					edata->elevel == NOTICE ? "notice" : "info",
					edata->message ? edata->message : "", NULL);
		if (edata->elevel < server_min_messages)
			edata->output_to_server = false;
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

void
logs_init(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = logs_emit_hook;
}

/*
 * A task is about to run (inside its GUC nest level): keep its logs in
 * cxt until logs_flush.  NULL: the task has returned.
 */
void
logs_run(const ClaimedRun *run, MemoryContext cxt)
{
	log_run = run;
	if (run == NULL)
		return;
	log_cxt = cxt;
	run_count = 0;
	if (worker_lowered)
		return;
	server_min_messages = log_min_messages;
	if (log_min_messages > INFO)
		(void) set_config_option("log_min_messages", "info", PGC_SUSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
}

/*
 * A worker, at its start and after each reload of the configuration,
 * outside any transaction: log_min_messages back to the configured level,
 * then lowered to INFO for the session (no GUC stack entry to undo).
 */
void
logs_worker_level(void)
{
	Assert(!IsTransactionState());
	if (worker_lowered)
		SetConfigOption("log_min_messages", NULL, PGC_SUSET, PGC_S_SESSION);
	worker_lowered = false;
	server_min_messages = log_min_messages;
	if (log_min_messages > INFO)
	{
		SetConfigOption("log_min_messages", "info", PGC_SUSET, PGC_S_SESSION);
		worker_lowered = true;
	}
}

/*
 * A note from the worker in the logs of the run whose attempt it has just
 * decided (a hook it could not trigger, say), after the attempt's own.
 */
void
logs_note(const ClaimedRun *run, const char *level, const char *message)
{
	const ClaimedRun *save = log_run;

	log_run = run;
	add_log(level, message, NULL);
	log_run = save;
}

/* Write the batch's logs (inside SPI, in the batch's top-level transaction). */
void
logs_flush(void)
{
	int			n = list_length(pending);
	PlanItems	run_ids,
				attempts,
				logged_ats,
				levels,
				messages,
				datas;
	LogInsertArgs args;
	ListCell   *lc;

	if (pending == NIL)
		return;
	run_ids = plan_items_new(n);
	attempts = plan_items_new(n);
	logged_ats = plan_items_new(n);
	levels = plan_items_new(n);
	messages = plan_items_new(n);
	datas = plan_items_new(n);
	n = 0;
	foreach(lc, pending)
	{
		RunLog	   *l = lfirst(lc);
		int			i = n;

		if (logged_before(l))
			continue;
		n++;
		run_ids.values[i] = CStringGetTextDatum(l->run_id);
		attempts.values[i] = Int32GetDatum(l->attempt);
		logged_ats.values[i] = TimestampTzGetDatum(l->at);
		levels.values[i] = CStringGetTextDatum(l->level);
		messages.values[i] = CStringGetTextDatum(l->message);
		datas.values[i] = l->data ? JsonbPGetDatum(l->data) : (Datum) 0;
		datas.nulls[i] = l->data == NULL;
	}
	if (n == 0)
	{
		pending = NIL;
		return;
	}
	args.run_ids = plan_items_array(run_ids, n, TEXTOID);
	args.attempts = plan_items_array(attempts, n, INT4OID);
	args.logged_ats = plan_items_array(logged_ats, n, TIMESTAMPTZOID);
	args.levels = plan_items_array(levels, n, TEXTOID);
	args.messages = plan_items_array(messages, n, TEXTOID);
	args.datas = plan_items_array(datas, n, JSONBOID);
	taskorch_execute_args(&insert_plan, &args, false, 0);
	pending = NIL;				/* the list lives in the batch context */
}

/* The batch is over (committed or not): forget what was not flushed. */
void
logs_reset(void)
{
	pending = NIL;
	log_run = NULL;
}

/*
 * The level (one of `levels`) and data of a log call whose arguments are
 * (level, message, data) from argument `first` on, checked.
 */
static const char *
log_args(FunctionCallInfo fcinfo, int first, Jsonb **data)
{
	static const char *const levels[] = {"debug", "log", "info", "warn", "error"};
	char	   *level;

	require_args(fcinfo, first + 2, "level and message",
				 "Call taskorch.log('info', 'message', '{\"key\": 1}').");
	level = text_to_cstring(PG_GETARG_TEXT_PP(first));
	*data = PG_ARGISNULL(first + 2) ? NULL : PG_GETARG_JSONB_P(first + 2);
	if (*data && VARSIZE(*data) > MAX_LOG_DATA)
		ereport(ERROR,
				errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("log data of %zu bytes exceeds the limit of %d bytes",
					   (Size) VARSIZE(*data), MAX_LOG_DATA),
				errhint("Log a summary, and keep large data in a table."));
	for (size_t i = 0; i < lengthof(levels); i++)
		if (strcmp(level, levels[i]) == 0)
			return levels[i];
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("unknown log level \"%s\"", level),
			errhint("Levels are debug, log, info, warn and error."));
	pg_unreachable();
}

/* SQL: taskorch.log(level, message, data) inside a task. */
Datum
taskorch_log(PG_FUNCTION_ARGS)
{
	Jsonb	   *data;
	const char *level = log_args(fcinfo, 0, &data);

	(void) run_in_task("taskorch.log()", "Outside a task, use RAISE NOTICE or your own table; an external worker uses taskorch.lease_log().");
	add_log(level, text_to_cstring(PG_GETARG_TEXT_PP(1)), data);
	PG_RETURN_VOID();
}

/*
 * SQL: taskorch.lease_log(lease, level, message, data): an entry in the
 * logs of the run an external worker holds, written now (in the caller's
 * transaction), in the lease's attempt.
 */
Datum
taskorch_lease_log(PG_FUNCTION_ARGS)
{
	Jsonb	   *data;
	const char *level = log_args(fcinfo, 1, &data);
	ClaimedRun *run;
	const ClaimedRun *save = log_run;
	int			save_count = run_count;

	require_arg(fcinfo, 0, "lease", "Pass the lease taskorch.claim_runs() returned for the run.");
	SPI_connect();
	run = external_run_by_lease(text_to_cstring(PG_GETARG_TEXT_PP(0)), CurrentMemoryContext);
	log_run = run;
	log_cxt = CurrentMemoryContext;
	run_count = 0;
	add_log(level, text_to_cstring(PG_GETARG_TEXT_PP(2)), data);
	log_run = save;
	run_count = save_count;
	logs_flush();
	SPI_finish();
	PG_RETURN_VOID();
}
