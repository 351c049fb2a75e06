/*-------------------------------------------------------------------------
 *
 * sql_task.c
 *	  Calling a task function written in SQL through plans kept across
 *	  runs.  PostgreSQL's SQL-function executor (fmgr_sql) keeps a
 *	  function's plans only for the subtransaction it runs in, and every
 *	  attempt is a subtransaction of its own (execute.c): called through
 *	  fmgr, a SQL task parses, analyzes and plans its body anew for each run
 *	  (a fifth of a no-op run's time).  Here its statements are prepared
 *	  once per worker as SPI plans, with the function's parameters known by
 *	  name and number (PostgreSQL's own parser hook for SQL functions), and
 *	  executed as fmgr_sql would execute them:
 *
 *	- statement by statement, the result being the first row of the last
 *	  (a plain SELECT stops there, anything else runs to completion);
 *	- a VOLATILE function's statements each see what the previous ones
 *	  did (a snapshot each, after a command counter increment); a STABLE
 *	  or IMMUTABLE function's run read-only on the caller's snapshot;
 *	- as whoever calls it (execute.c: the task owner, in a security-
 *	  restricted operation), with the search_path then in effect; the
 *	  plan cache replans when a table, a function or the search_path they
 *	  were planned with changes, or for another role under row security.
 *
 * Only the plain case goes this way: LANGUAGE sql, one jsonb argument, a
 * jsonb result that the last statement selects as such, no SECURITY
 * DEFINER, no SET clause, no SQL-standard body.  Any other function is
 * called through fmgr, unchanged.
 *
 * Invariants: an entry is valid for the pg_proc row it was planned from
 * (its xmin and ctid, as PL/pgSQL checks); CREATE OR REPLACE plans it
 * anew.  Plans are kept only once every statement of the body prepared.
 * Memory: the plans under CacheMemoryContext (SPI_keepplan), the parse
 * information their replanning needs in the entry's context.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "access/htup_details.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/functions.h"
#include "executor/spi.h"
#include "nodes/params.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/syscache.h"

typedef struct SqlTask
{
	Oid			fn;				/* hash key */
	bool		valid;			/* planned from the pg_proc row below */
	TransactionId fn_xmin;
	ItemPointerData fn_tid;
	bool		direct;			/* false: called through fmgr */
	bool		read_only;		/* not VOLATILE */
	char	   *name;
	int			nplans;
	SPIPlanPtr *plans;			/* a statement each, kept */
	bool		last_lazy;		/* the last is a SELECT: its first row is the result */
	MemoryContext cxt;			/* name, plans array, parse information */
} SqlTask;

static HTAB *sql_tasks = NULL;

/* Drop what an entry holds. */
static void
forget(SqlTask *t)
{
	for (int i = 0; t->valid && t->direct && i < t->nplans; i++)
		SPI_freeplan(t->plans[i]);
	if (t->cxt)
		MemoryContextDelete(t->cxt);
	t->cxt = NULL;
	t->valid = false;
}

/* May the function go this way? (See the file header.) */
static bool
plain_sql_function(HeapTuple tup)
{
	Form_pg_proc proc = (Form_pg_proc) GETSTRUCT(tup);

	return proc->prolang == SQLlanguageId && proc->prokind == PROKIND_FUNCTION &&
		!proc->prosecdef && !proc->proretset && proc->prorettype == JSONBOID &&
		proc->pronargs == 1 && proc->proargtypes.values[0] == JSONBOID &&
		heap_attisnull(tup, Anum_pg_proc_proconfig, NULL) &&
		heap_attisnull(tup, Anum_pg_proc_prosqlbody, NULL);
}

/* Does the plan's statement give one jsonb column? */
static bool
gives_jsonb(SPIPlanPtr plan, bool *select)
{
	List	   *sources = SPI_plan_get_plan_sources(plan);
	CachedPlanSource *ps;

	if (list_length(sources) != 1)
		return false;
	ps = linitial(sources);
	*select = ps->commandTag == CMDTAG_SELECT;
	return ps->resultDesc != NULL && ps->resultDesc->natts == 1 &&
		TupleDescAttr(ps->resultDesc, 0)->atttypid == JSONBOID;
}

/*
 * Prepare each statement of the body (inside the caller's SPI connection),
 * keeping the plans only if all prepared and the last gives the result.
 */
static void
prepare(SqlTask *t, HeapTuple tup)
{
	Form_pg_proc proc = (Form_pg_proc) GETSTRUCT(tup);
	bool		isnull;
	char	   *src = TextDatumGetCString(SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_prosrc, &isnull));
	List	   *stmts = pg_parse_query(src);
	SQLFunctionParseInfoPtr pinfo;
	MemoryContext old;
	int			i = 0;
	ListCell   *lc;

	t->cxt = AllocSetContextCreate(TopMemoryContext, "taskorch SQL task", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(t->cxt);
	t->name = pstrdup(NameStr(proc->proname));
	pinfo = prepare_sql_fn_parse_info(tup, NULL, InvalidOid);
	t->plans = palloc(sizeof(SPIPlanPtr) * Max(list_length(stmts), 1));
	MemoryContextSwitchTo(old);
	t->read_only = proc->provolatile != PROVOLATILE_VOLATILE;
	t->nplans = list_length(stmts);
	foreach(lc, stmts)
	{
		RawStmt    *raw = lfirst_node(RawStmt, lc);
		const char *start = src + raw->stmt_location;
		int			len = raw->stmt_len > 0 ? raw->stmt_len : (int) strlen(start);
		char	   *sql;

		/* the statement's own text, as an error's context shows it */
		while (len > 0 && isspace((unsigned char) *start))
			start++, len--;
		while (len > 0 && isspace((unsigned char) start[len - 1]))
			len--;
		sql = pnstrdup(start, len);

		t->plans[i] = SPI_prepare_params(sql, (ParserSetupHook) sql_fn_parser_setup, pinfo, 0);
		if (t->plans[i] == NULL)
			elog(ERROR, "SPI_prepare_params failed for SQL function \"%s\": %s",
				 t->name, SPI_result_code_string(SPI_result));
		i++;
	}
	t->direct = t->nplans > 0 && gives_jsonb(t->plans[t->nplans - 1], &t->last_lazy);
	for (i = 0; t->direct && i < t->nplans; i++)
		SPI_keepplan(t->plans[i]);
}

/* The entry for function fn, planned for its current definition. */
static SqlTask *
sql_task(Oid fn)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	SqlTask    *t;
	bool		found;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", fn);
	if (sql_tasks == NULL)
	{
		HASHCTL		ctl = {.keysize = sizeof(Oid), .entrysize = sizeof(SqlTask)};

		sql_tasks = hash_create("taskorch SQL tasks", 16, &ctl, HASH_ELEM | HASH_BLOBS);
	}
	t = hash_search(sql_tasks, &fn, HASH_ENTER, &found);
	if (!found)
	{
		t->valid = false;
		t->cxt = NULL;
	}
	if (t->valid && t->fn_xmin == HeapTupleHeaderGetRawXmin(tup->t_data) &&
		ItemPointerEquals(&t->fn_tid, &tup->t_self))
	{
		ReleaseSysCache(tup);
		return t;
	}
	forget(t);
	t->direct = plain_sql_function(tup);
	if (t->direct)
		prepare(t, tup);
	t->fn_xmin = HeapTupleHeaderGetRawXmin(tup->t_data);
	t->fn_tid = tup->t_self;
	t->valid = true;
	ReleaseSysCache(tup);
	return t;
}

static void
sql_task_context(void *arg)
{
	errcontext("SQL function \"%s\"", ((SqlTask *) arg)->name);
}

/*
 * Call task function fn with `payload` through kept plans; false when it is
 * not a function for this (the caller calls it through fmgr).  Otherwise
 * *result (in the caller's memory context) and *isnull are its result.
 */
bool
sql_task_call(Oid fn, Jsonb *payload, Datum *result, bool *isnull)
{
	SqlTask    *t;
	ParamListInfo params = makeParamList(1);
	ErrorContextCallback callback;

	SPI_connect();
	t = sql_task(fn);
	if (!t->direct)
	{
		SPI_finish();
		return false;
	}
	params->params[0].value = JsonbPGetDatum(payload);
	params->params[0].isnull = false;
	params->params[0].pflags = PARAM_FLAG_CONST;
	params->params[0].ptype = JSONBOID;
	callback.callback = sql_task_context;
	callback.arg = t;
	callback.previous = error_context_stack;
	error_context_stack = &callback;
	for (int i = 0; i < t->nplans; i++)
	{
		bool		last = i == t->nplans - 1;
		int			rc = SPI_execute_plan_with_paramlist(t->plans[i], params, t->read_only,
														 last && t->last_lazy ? 1 : 0);

		if (rc < 0)
			elog(ERROR, "SQL function \"%s\": %s", t->name, SPI_result_code_string(rc));
	}
	error_context_stack = callback.previous;
	*isnull = true;
	*result = (Datum) 0;
	if (SPI_processed > 0)
	{
		*result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
		if (!*isnull)
			*result = SPI_datumTransfer(*result, false, -1);
	}
	SPI_finish();
	return true;
}
