/*-------------------------------------------------------------------------
 *
 * spi_util.c
 *	  How taskorch's C code runs its own SQL: plans prepared once per
 *	  backend and kept, parsed and executed under a search path of
 *	  pg_catalog alone, and executed as the extension owner.
 *
 * Pinning: a saved plan remembers the search path it was analysed under
 * and is re-analysed whenever the current one differs.  Pinning the path
 * to pg_catalog around both preparation and execution keeps the plan valid
 * whatever the caller's search_path, and keeps a caller's objects (an
 * operator in a schema of theirs, say) out of our statements.  Before
 * PostgreSQL 17 this is an override search path, pushed and popped at no
 * cost; from 17 on (which removed it), search_path is set to "pg_catalog,
 * pg_temp" (pg_temp last: never searched for functions and operators) in a
 * GUC nest level of its own, rolled back when the statement returns, and
 * by the (sub)transaction abort when it fails.
 *
 * Owner cache: the owner of taskorch.run is looked up once and kept until
 * a catalog invalidation of that relation (ALTER TABLE ... OWNER TO,
 * DROP EXTENSION) or of any schema (the extension's schema renamed or
 * dropped) says it may have changed.  Invalidations are processed when a
 * transaction starts and whenever a lock is taken, as for the catalog
 * caches the lookups went through before.
 *
 * By name: every plan (a NamedPlan) names its parameters (":task_id" in
 * its SQL, a PLAN_PARAM table giving each name a type and a field of the
 * caller's struct of PlanValue) and the columns its C reads (a PLAN_COLUMN
 * table: each a column label and a field); no caller passes or reads
 * anything by position.  Names are resolved when the plan is
 * prepared: ":name" becomes "$n" (n: its place in the table), outside
 * quotes and never in a "::" cast, and each column's number is looked up
 * in the plan's result description.  Executing and reading then copy
 * Datums by number: no name is looked up per call or per row.  A name the
 * SQL uses but the table lacks, a parameter the SQL never uses, or a
 * column the statement does not return is an error at prepare time.
 *
 * Elevation: the caller's privileges were checked by the C function that
 * calls in here; the statement itself runs with the user id switched to
 * the owner of the extension's tables (SECURITY_LOCAL_USERID_CHANGE, so
 * nothing inside can SET ROLE back).  An error restores the user id with
 * the (sub)transaction abort.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#define PINNED_SEARCH_PATH "pg_catalog, pg_temp"

#if PG_VERSION_NUM < 170000
/*
 * Before PostgreSQL 17: an override search path (pg_catalog, then nothing:
 * pg_temp is not searched at all) is pushed and popped around each
 * statement, which costs no catalog lookup.  PostgreSQL 17 removed it.
 */
int
pin_search_path(void)
{
	static OverrideSearchPath path = {NIL, true, false, 0};

	PushOverrideSearchPath(&path);
	return 0;
}

void
unpin_search_path(int nestlevel)
{
	PopOverrideSearchPath();
}
#else
/*
 * Pin search_path for one of our statements: returns the GUC nest level to
 * give to unpin_search_path(), or -1 when it was already pinned.
 */
int
pin_search_path(void)
{
	int			nestlevel;

	if (namespace_search_path != NULL &&
		strcmp(namespace_search_path, PINNED_SEARCH_PATH) == 0)
		return -1;
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", PINNED_SEARCH_PATH,
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
}

void
unpin_search_path(int nestlevel)
{
	if (nestlevel >= 0)
		AtEOXact_GUC(true, nestlevel);
}
#endif

/*
 * The planner settings of a plan's shape (NamedPlan.shape), set while it
 * is made and while it runs, since it is made again when invalidated.
 * Returns the GUC nest level for planner_restore(), or -1.
 */
static int
planner_shape(const NamedPlan *p)
{
	/*
	 * An index walked in its order, and any subquery looked up by its keys:
	 * a table just truncated is planned as empty, and a sequential scan
	 * in a subquery per row would then grow with every row added after.
	 */
	static const char *const index_order[] = {"enable_sort", "enable_bitmapscan", "enable_seqscan", NULL};
	static const char *const key_lookups[] = {"enable_hashjoin", "enable_mergejoin", "enable_seqscan", NULL};
	const char *const *off;
	int			nestlevel;

	switch (p->shape)
	{
		case PLAN_INDEX_ORDER:
			off = index_order;
			break;
		case PLAN_KEY_LOOKUPS:
			off = key_lookups;
			break;
		default:
			return -1;
	}
	nestlevel = NewGUCNestLevel();
	for (; *off; off++)
		(void) set_config_option(*off, "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
}

static void
planner_restore(int nestlevel)
{
	if (nestlevel >= 0)
		AtEOXact_GUC(true, nestlevel);
}

/* The plans this backend prepared, so that they can be made again. */
static List *prepared = NIL;

static bool
name_char(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
		(!first && c >= '0' && c <= '9');
}

/*
 * The plan's SQL with "$n" for each ":name" (n: the name's place in the
 * plan's params, from 1), in TopMemoryContext.  Skips quoted strings and
 * identifiers, and "::" casts.
 */
static char *
sql_with_numbers(NamedPlan *p)
{
	StringInfoData buf;
	const char *s = p->sql;
	bool		used[TASKORCH_PLAN_MAX_FIELDS] = {0};

	initStringInfo(&buf);
	while (*s)
	{
		if (*s == '\'' || *s == '"')
		{
			char		q = *s;
			bool		escapes = q == '\'' && s > p->sql &&
				(s[-1] == 'E' || s[-1] == 'e');

			appendStringInfoChar(&buf, *s++);
			while (*s && *s != q)
			{
				if (escapes && *s == '\\' && s[1])
					appendStringInfoChar(&buf, *s++);
				appendStringInfoChar(&buf, *s++);
			}
			if (*s)
				appendStringInfoChar(&buf, *s++);
		}
		else if (s[0] == ':' && s[1] == ':')
		{
			appendBinaryStringInfo(&buf, s, 2);
			s += 2;
		}
		else if (s[0] == ':' && name_char(s[1], true))
		{
			const char *name = ++s;
			int			len = 0;
			int			i;

			while (name_char(name[len], false))
				len++;
			for (i = 0; i < p->nparams; i++)
				if (strlen(p->params[i].name) == (size_t) len &&
					strncmp(p->params[i].name, name, len) == 0)
					break;
			if (i == p->nparams)
				elog(ERROR, "taskorch: parameter :%.*s has no type in: %s",
					 len, name, p->sql);
			used[i] = true;
			appendStringInfo(&buf, "$%d", i + 1);
			s += len;
		}
		else
			appendStringInfoChar(&buf, *s++);
	}
	for (int i = 0; i < p->nparams; i++)
		if (!used[i])
			elog(ERROR, "taskorch: parameter :%s is not used in: %s",
				 p->params[i].name, p->sql);
	return MemoryContextStrdup(TopMemoryContext, buf.data);
}

/* The number of each of the plan's named columns in its result. */
static void
resolve_columns(NamedPlan *p, SPIPlanPtr plan)
{
	List	   *sources = SPI_plan_get_plan_sources(plan);
	CachedPlanSource *src;

	if (list_length(sources) != 1 ||
		(src = linitial(sources))->resultDesc == NULL)
		elog(ERROR, "taskorch: statement returns no columns: %s", p->sql);
	for (int i = 0; i < p->ncolumns; i++)
	{
		TupleDesc	desc = src->resultDesc;
		int			attno = SPI_fnumber(desc, p->columns[i].name);

		if (attno <= 0)
			elog(ERROR, "taskorch: statement returns no column \"%s\": %s",
				 p->columns[i].name, p->sql);
		for (int a = attno; a < desc->natts; a++)
			if (strcmp(NameStr(TupleDescAttr(desc, a)->attname), p->columns[i].name) == 0)
				elog(ERROR, "taskorch: statement returns two columns \"%s\": %s",
					 p->columns[i].name, p->sql);
		p->colnos[i] = attno;
	}
}

/*
 * Prepare the plan, once per backend (again after taskorch_plans_forget):
 * its SQL is numbered the first time, its columns looked up each time.
 */
static void
prepare(NamedPlan *p)
{
	MemoryContext old;
	SPIPlanPtr	plan;
	Oid			argtypes[TASKORCH_PLAN_MAX_FIELDS];
	int			nestlevel;
	int			planner_nest;

	if (p->plan != NULL)
		return;
	if (p->nparams > TASKORCH_PLAN_MAX_FIELDS || p->ncolumns > TASKORCH_PLAN_MAX_FIELDS)
		elog(ERROR, "taskorch: too many parameters or columns in: %s", p->sql);
	if (p->numbered_sql == NULL)
		p->numbered_sql = sql_with_numbers(p);
	for (int i = 0; i < p->nparams; i++)
		argtypes[i] = p->params[i].type;
	nestlevel = pin_search_path();
	planner_nest = planner_shape(p);
	/* generic plans: replanning per call would cost more than it gains */
	plan = SPI_prepare_cursor(p->numbered_sql, p->nparams, argtypes,
							  CURSOR_OPT_GENERIC_PLAN);
	planner_restore(planner_nest);
	unpin_search_path(nestlevel);
	if (plan == NULL)
		elog(ERROR, "taskorch: SPI_prepare failed (%s) for: %s",
			 SPI_result_code_string(SPI_result), p->sql);
	if (p->columns)
		resolve_columns(p, plan);
	SPI_keepplan(plan);
	p->plan = plan;
	old = MemoryContextSwitchTo(TopMemoryContext);
	prepared = lappend(prepared, p);
	MemoryContextSwitchTo(old);
}

/*
 * Drop every prepared plan: each is prepared again when next used.  A
 * generic plan is costed for the tables as they were when it was made; a
 * worker calls this when the runs table has grown or shrunk a lot since,
 * so that a plan made for an empty table (a sequential scan, say) does not
 * outlive it.
 */
void
taskorch_plans_forget(void)
{
	ListCell   *lc;

	foreach(lc, prepared)
	{
		NamedPlan  *p = lfirst(lc);

		SPI_freeplan(p->plan);
		p->plan = NULL;
	}
	list_free(prepared);
	prepared = NIL;
}

/*
 * taskorch.run's OID and owner, while no invalidation has said otherwise
 * (a change to its pg_class row, or to any schema: DROP EXTENSION, a
 * renamed schema).
 */
static Oid	run_relid_cached = InvalidOid;
static Oid	owner_cached = InvalidOid;
static uint32 run_rel_hash;		/* RELOID hash value of taskorch.run */

static void
run_rel_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	if (cacheid != RELOID || hashvalue == 0 || hashvalue == run_rel_hash)
		run_relid_cached = owner_cached = InvalidOid;
}

/* The OID of taskorch.run; InvalidOid if missing_ok and it does not exist. */
Oid
taskorch_run_relid(bool missing_ok)
{
	static bool callbacks = false;
	Oid			nsp;

	if (OidIsValid(run_relid_cached))
		return run_relid_cached;
	if (!callbacks)
	{
		CacheRegisterSyscacheCallback(RELOID, run_rel_invalidate, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, run_rel_invalidate, (Datum) 0);
		callbacks = true;
	}
	nsp = get_namespace_oid("taskorch", missing_ok);
	if (!OidIsValid(nsp))
		return InvalidOid;
	run_relid_cached = get_relname_relid("run", nsp);
	if (!OidIsValid(run_relid_cached) && !missing_ok)
		elog(ERROR, "taskorch: relation taskorch.run does not exist");
	run_rel_hash = GetSysCacheHashValue1(RELOID, ObjectIdGetDatum(run_relid_cached));
	return run_relid_cached;
}

/* The role that owns taskorch.run, as whom our statements run. */
Oid
taskorch_extension_owner(void)
{
	Oid			relid;
	HeapTuple	tup;

	if (OidIsValid(owner_cached))
		return owner_cached;
	relid = taskorch_run_relid(false);
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "taskorch: cache lookup failed for relation %u", relid);
	owner_cached = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner_cached;
}

/* Execute the plan with SPI's values and nulls, as the extension owner. */
static int
execute(NamedPlan *p, Datum *values, const char *nulls, bool read_only,
		bool latest, long count)
{
	Oid			save_uid;
	int			save_sec;
	int			rc;
	int			nestlevel;
	int			planner_nest;

	prepare(p);
	GetUserIdAndSecContext(&save_uid, &save_sec);
	SetUserIdAndSecContext(taskorch_extension_owner(),
						   save_sec | SECURITY_LOCAL_USERID_CHANGE);
	nestlevel = pin_search_path();
	planner_nest = planner_shape(p);
	if (latest)
		rc = SPI_execute_snapshot(p->plan, values, nulls, GetLatestSnapshot(),
								  InvalidSnapshot, false, false, count);
	else
		rc = SPI_execute_plan(p->plan, values, nulls, read_only, count);
	planner_restore(planner_nest);
	unpin_search_path(nestlevel);
	SetUserIdAndSecContext(save_uid, save_sec);
	if (rc < 0)
		elog(ERROR, "taskorch: SPI_execute_plan failed (%s) for: %s",
			 SPI_result_code_string(rc), p->sql);
	return (int) SPI_processed;
}

/* The PlanValues of a named plan's parameters, as SPI takes them. */
static void
args_to_values(NamedPlan *p, const void *args, Datum *values, char *nulls)
{
	for (int i = 0; i < p->nparams; i++)
	{
		const PlanValue *v = (const PlanValue *) ((const char *) args + p->params[i].offset);

		values[i] = v->datum;
		nulls[i] = v->present ? ' ' : 'n';
	}
}

/*
 * Execute the plan with the parameters in `args`, a struct of PlanValue
 * with a field per PLAN_PARAM, as the extension owner under the pinned
 * search path.  Must be called inside SPI_connect.  Returns SPI_processed.
 */
int
taskorch_execute_args(NamedPlan *p, const void *args, bool read_only, long count)
{
	Datum		values[TASKORCH_PLAN_MAX_FIELDS];
	char		nulls[TASKORCH_PLAN_MAX_FIELDS];

	args_to_values(p, args, values, nulls);
	return execute(p, values, nulls, read_only, false, count);
}

/*
 * The same, reading with a snapshot taken now: it sees what committed
 * after the caller's transaction began (in any isolation level), for
 * checks made under a lock, such as an idempotency key's.
 */
int
taskorch_execute_args_latest(NamedPlan *p, const void *args, long count)
{
	Datum		values[TASKORCH_PLAN_MAX_FIELDS];
	char		nulls[TASKORCH_PLAN_MAX_FIELDS];

	args_to_values(p, args, values, nulls);
	return execute(p, values, nulls, false, true, count);
}

/*
 * Read row `row` of the plan's last result (SPI_tuptable) into `out`, a
 * struct of PlanValue with a field per PLAN_COLUMN.  The Datums point into
 * SPI's memory: copy what must outlive SPI_finish().
 */
void
taskorch_read_row(NamedPlan *p, int row, void *out)
{
	Datum	   *values;
	bool	   *nulls;

	Assert(p->columns != NULL && row < (int) SPI_processed);
	taskorch_deform(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, &values, &nulls);
	for (int i = 0; i < p->ncolumns; i++)
	{
		PlanValue  *v = (PlanValue *) ((char *) out + p->columns[i].offset);

		v->datum = values[p->colnos[i] - 1];
		v->present = !nulls[p->colnos[i] - 1];
	}
}

/*
 * The columns of `tup`, deformed in one pass (heap_getattr() per column
 * walks the row from its start past each variable-length column) into
 * arrays of this file's, valid until the next call; the values point into
 * the row.
 */
void
taskorch_deform(HeapTuple tup, TupleDesc desc, Datum **values, bool **nulls)
{
	static Datum *v = NULL;
	static bool *n = NULL;
	static int	room = 0;

	if (desc->natts > room)
	{
		if (v)
		{
			pfree(v);
			pfree(n);
		}
		room = Max(desc->natts, 64);
		v = MemoryContextAlloc(TopMemoryContext, sizeof(Datum) * room);
		n = MemoryContextAlloc(TopMemoryContext, sizeof(bool) * room);
	}
	heap_deform_tuple(tup, desc, v, n);
	*values = v;
	*nulls = n;
}

/* Room for n items of an array parameter. */
PlanItems
plan_items_new(int n)
{
	PlanItems	items = {palloc(sizeof(Datum) * Max(n, 1)), palloc0(sizeof(bool) * Max(n, 1))};

	return items;
}

/* The first n items as an array of elemtype. */
PlanValue
plan_items_array(PlanItems items, int n, Oid elemtype)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			dims[1] = {n};
	int			lbs[1] = {1};

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	return pv_datum(PointerGetDatum(construct_md_array(items.values, items.nulls, 1,
													   dims, lbs, elemtype, typlen,
													   typbyval, typalign)));
}

PlanValue
pv_text(const char *s)
{
	return s ? pv_datum(CStringGetTextDatum(s)) : PV_NULL;
}

PlanValue
pv_jsonb(Jsonb *j)
{
	return j ? pv_datum(JsonbPGetDatum(j)) : PV_NULL;
}

char *
pv_cstring(PlanValue v)
{
	return v.present ? TextDatumGetCString(v.datum) : NULL;
}

Jsonb *
pv_jsonb_copy(PlanValue v)
{
	return v.present ? DatumGetJsonbPCopy(v.datum) : NULL;
}

Jsonb *
jsonb_from_cstring(const char *s)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s)));
}
