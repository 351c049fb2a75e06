/*-------------------------------------------------------------------------
 *
 * batch.c
 *	  batch_trigger(): many runs in one call, as Trigger.dev's
 *	  batchTrigger / batch.trigger / batch.triggerByTask, and the items of
 *	  every batch form (batch_trigger_and_wait's too).
 *
 *	  batch_trigger(task, items, options)   one task:  [{"payload": ..., "options": ...}]
 *	  batch_trigger(items, options)         mixed:     [{"task": ..., "payload": ..., "options": ...}]
 *	  batch_trigger_query(query, task, options)   rows: payload [, task] [, options]
 *
 * Each item is triggered as trigger() would (same checks, same options);
 * the batch's options apply to every item that does not set them itself.
 * The batch is all or nothing: a bad item refuses the whole call, and the
 * error's context names the item's index, the item count and the phase
 * (Trigger.dev's BatchTriggerError fields).  Runs keep their position in
 * the batch (batch_index), which batch_retrieve() returns them in.
 *
 * Items from a query are streamed (Trigger.dev's streaming batch
 * triggering): read through a cursor a page at a time, each item's memory
 * freed once its run exists, so a batch may hold up to MAX_STREAM_ITEMS.
 * The query must be one plain SELECT; one that would change data is
 * refused once parsed, before it runs (query_open).
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(taskorch_batch_trigger);
PG_FUNCTION_INFO_V1(taskorch_batch_trigger_mixed);
PG_FUNCTION_INFO_V1(taskorch_batch_trigger_query);
PG_FUNCTION_INFO_V1(taskorch_check_items_query);

/* Trigger.dev's limit per batch call (SDK 4.3.1 and later) */
#define MAX_BATCH_ITEMS 1000
/* items from a query are read a page at a time, so a batch may be larger */
#define MAX_STREAM_ITEMS 100000
#define STREAM_PAGE 1000

typedef struct BatchArgs
{
	PlanValue	task_id;		/* NULL: the items name their tasks */
	PlanValue	item_count;
	PlanValue	triggered_by;
	PlanValue	options;
	PlanValue	idempotency_key;	/* the batch's own: it dedups the batch */
	PlanValue	idempotency_key_expires_at;
} BatchArgs;

/* a batch by its idempotency key */
typedef struct BatchKeyArgs
{
	PlanValue	task_id;
	PlanValue	triggered_by;
	PlanValue	idempotency_key;
	PlanValue	now;
} BatchKeyArgs;

typedef struct BatchIdRow
{
	PlanValue	id;
} BatchIdRow;

static const PlanField batch_params[] = {
	PLAN_PARAM(BatchArgs, task_id, TEXTOID),
	PLAN_PARAM(BatchArgs, item_count, INT4OID),
	PLAN_PARAM(BatchArgs, triggered_by, OIDOID),
	PLAN_PARAM(BatchArgs, options, JSONBOID),
	PLAN_PARAM(BatchArgs, idempotency_key, TEXTOID),
	PLAN_PARAM(BatchArgs, idempotency_key_expires_at, TIMESTAMPTZOID),
};
static const PlanField batch_key_params[] = {
	PLAN_PARAM(BatchKeyArgs, task_id, TEXTOID),
	PLAN_PARAM(BatchKeyArgs, triggered_by, OIDOID),
	PLAN_PARAM(BatchKeyArgs, idempotency_key, TEXTOID),
	PLAN_PARAM(BatchKeyArgs, now, TIMESTAMPTZOID),
};
static const PlanField batch_id_columns[] = {
	PLAN_COLUMN(BatchIdRow, id),
};
static NamedPlan batch_plan = {
	.sql = "INSERT INTO taskorch.batch (task_id, item_count, triggered_by, options,"
	"                            idempotency_key, idempotency_key_expires_at)"
	" VALUES (:task_id, :item_count, :triggered_by::regrole, :options,"
	"         :idempotency_key, :idempotency_key_expires_at) RETURNING id",
	PLAN_PARAMS(batch_params), PLAN_COLUMNS(batch_id_columns)
};

/* the batch the caller's role made with an idempotency key still alive */
static NamedPlan batch_by_key_plan = {
	.sql = "SELECT id FROM taskorch.batch"
	" WHERE idempotency_key = :idempotency_key AND idempotency_key_expires_at > :now"
	"   AND triggered_by = :triggered_by::regrole AND task_id IS NOT DISTINCT FROM :task_id"
	" ORDER BY created_at DESC LIMIT 1",
	PLAN_PARAMS(batch_key_params), PLAN_COLUMNS(batch_id_columns)
};

/* the options of a batch that are the batch's own, not its items' */
static const char *const batch_own_options[] = {
	"idempotency_key", "idempotencyKey", "idempotency_key_ttl", "idempotencyKeyTTL", NULL
};


/* the item count of a batch from a query, once its rows are read */
typedef struct BatchCountArgs
{
	PlanValue	id;
	PlanValue	item_count;
} BatchCountArgs;

static const PlanField batch_count_params[] = {
	PLAN_PARAM(BatchCountArgs, id, TEXTOID),
	PLAN_PARAM(BatchCountArgs, item_count, INT4OID),
};
static NamedPlan batch_count_plan = {
	.sql = "UPDATE taskorch.batch SET item_count = :item_count WHERE id = :id",
	PLAN_PARAMS(batch_count_params)
};

typedef struct BatchContext
{
	int			index;			/* item being triggered, -1 before the first */
	int			count;			/* -1: not known (items of a query) */
	const char *phase;
} BatchContext;

static void
batch_error_context(void *arg)
{
	BatchContext *bc = (BatchContext *) arg;

	if (bc->index >= 0 && bc->count >= 0)
		errcontext("batch item %d of %d (phase %s)", bc->index, bc->count, bc->phase);
	else if (bc->index >= 0)
		errcontext("batch item %d (phase %s)", bc->index, bc->phase);
	else if (bc->count >= 0)
		errcontext("batch of %d items (phase %s)", bc->count, bc->phase);
	else
		errcontext("batch items query (phase %s)", bc->phase);
}

static void
bad_item(const char *why)
{
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("invalid batch item: %s", why),
			errhint("An item is {\"payload\": {...}, \"options\": {...}}, with \"task\" too when the batch mixes tasks."));
}

/* The value of `key` in item object `item`, or NULL. */
static JsonbValue *
item_field(JsonbValue *item, const char *key)
{
	return getKeyJsonValueFromContainer(item->val.binary.data, key, strlen(key), NULL);
}

static Jsonb *
item_object(JsonbValue *item, const char *key)
{
	JsonbValue *v = item_field(item, key);

	if (v == NULL || v->type == jbvNull)
		return NULL;
	if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		bad_item(psprintf("\"%s\" must be a JSON object", key));
	return JsonbValueToJsonb(v);
}

/* An item has payload, options and (mixed batches only) task: nothing else. */
static void
check_item_keys(JsonbValue *item, bool mixed)
{
	JsonbIterator *it = JsonbIteratorInit(item->val.binary.data);
	JsonbValue	k;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *key;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(k.val.string.val, k.val.string.len);
		if (strcmp(key, "payload") != 0 && strcmp(key, "options") != 0 &&
			!(mixed && strcmp(key, "task") == 0))
			bad_item(psprintf("unknown key \"%s\"", key));
	}
}

/*
 * Check an item of a JSON array and take it apart: its task (`task` when
 * the batch has one, else the item's "task"), payload ({} when absent)
 * and options (NULL when absent).
 */
static void
array_item_parts(JsonbValue *item, const char *task, char **task_out,
				 Jsonb **payload, Jsonb **options)
{
	if (item->type != jbvBinary || !JsonContainerIsObject(item->val.binary.data))
		bad_item("not a JSON object");
	check_item_keys(item, task == NULL);
	if (task == NULL)
	{
		JsonbValue *t = item_field(item, "task");

		if (t == NULL || t->type != jbvString)
			bad_item("\"task\" must be the id of a task");
		*task_out = pnstrdup(t->val.string.val, t->val.string.len);
	}
	else
		*task_out = pstrdup(task);
	*payload = item_object(item, "payload");
	if (*payload == NULL)
		*payload = jsonb_from_cstring("{}");
	*options = item_object(item, "options");
}

/* A JSON array of 1 to MAX_BATCH_ITEMS items, or an error; returns the count. */
static int
array_item_count(Jsonb *items)
{
	int			count;

	if (!JB_ROOT_IS_ARRAY(items) || JB_ROOT_IS_SCALAR(items))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("batch items must be a JSON array"),
				errhint("Pass [{\"payload\": {...}}, ...]."));
	count = JB_ROOT_COUNT(items);
	if (count == 0 || count > MAX_BATCH_ITEMS)
		ereport(ERROR,
				errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("a batch has 1 to %d items, not %d", MAX_BATCH_ITEMS, count),
				errdetail("phase: create, item count: %d", count),
				errhint("Split the items into several batches, or read them from a query with batch_trigger_query()."));
	return count;
}

/* Where the columns of an items query are: payload, and task, options if there */
typedef struct QueryColumns
{
	int			payload;
	int			task;			/* 0: none */
	int			options;		/* 0: none */
} QueryColumns;

static void
query_column(QueryColumns *cols, Form_pg_attribute att, int attno)
{
	const char *name = NameStr(att->attname);
	int		   *slot = strcmp(name, "payload") == 0 ? &cols->payload :
		strcmp(name, "task") == 0 ? &cols->task :
		strcmp(name, "options") == 0 ? &cols->options : NULL;
	Oid			want = strcmp(name, "task") == 0 ? TEXTOID : JSONBOID;

	if (slot == NULL || *slot != 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
				errmsg("%s column \"%s\" in the batch items query",
					   slot ? "duplicate" : "unexpected", name),
				errhint("The query returns a payload column (jsonb), and may return task (text) and options (jsonb)."));
	if (att->atttypid != want)
		ereport(ERROR,
				errcode(ERRCODE_DATATYPE_MISMATCH),
				errmsg("column \"%s\" of the batch items query is of type %s, not %s",
					   name, format_type_be(att->atttypid), format_type_be(want)),
				errhint("Cast it: ... AS %s becomes ...::%s AS %s.", name, format_type_be(want), name));
	*slot = attno;
}

static QueryColumns
query_columns(TupleDesc desc, const char *task)
{
	QueryColumns cols = {0, 0, 0};

	for (int i = 0; i < desc->natts; i++)
		if (!TupleDescAttr(desc, i)->attisdropped)
			query_column(&cols, TupleDescAttr(desc, i), i + 1);
	if (cols.payload == 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
				errmsg("the batch items query has no payload column"),
				errhint("Name the column: SELECT jsonb_build_object('id', id) AS payload FROM ..."));
	if ((task == NULL) != (cols.task != 0))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
				errmsg(task ? "the batch items query has a task column, and the batch a task"
					   : "the batch items query has no task column, and the batch no task"),
				errhint("Pass the task, or return it as a task column of the query: one of the two."));
	return cols;
}

static void
bad_query(const BatchItems *src, const char *why)
{
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("the batch items query must be one plain SELECT, not %s", why),
			errdetail("query: %s", src->query),
			errhint("Pass a query such as SELECT jsonb_build_object('id', id) AS payload FROM records."));
}

/*
 * Open the items query as a cursor (inside SPI) and find its columns.  It
 * must be one plain SELECT (or VALUES, TABLE): a statement that changes
 * data, even as a RETURNING query or inside WITH, is refused once parsed,
 * before anything runs.
 */
static Portal
query_open(const BatchItems *src, QueryColumns *cols)
{
	SPIPlanPtr	plan = SPI_prepare(src->query, 0, NULL);
	List	   *sources;
	CachedPlanSource *ps;
	ListCell   *lc;
	Portal		portal;

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	sources = SPI_plan_get_plan_sources(plan);
	if (list_length(sources) != 1)
		bad_query(src, psprintf("%d statements", list_length(sources)));
	ps = linitial(sources);
	if (ps->commandTag != CMDTAG_SELECT)
		bad_query(src, GetCommandTagName(ps->commandTag));
	foreach(lc, ps->query_list)
	{
		Query	   *q = lfirst_node(Query, lc);

		/* SELECT INTO is tagged SELECT but makes a table */
		if (q->commandType != CMD_SELECT || q->utilityStmt != NULL)
			bad_query(src, "SELECT INTO");
		if (q->hasModifyingCTE)
			bad_query(src, "a SELECT whose WITH clause changes data");
	}
	if (!SPI_is_cursor_plan(plan))
		bad_query(src, "a statement that returns no rows");
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, false);
	*cols = query_columns(portal->tupDesc, src->task);
	return portal;
}

/* Call fn on each item of an array; returns how many there were. */
static int
foreach_array_item(const BatchItems *src, BatchContext *bc, BatchItemFn fn, void *arg)
{
	MemoryContext caller = CurrentMemoryContext;
	JsonbIterator *it = JsonbIteratorInit(&src->items->root);
	JsonbValue	v;
	JsonbIteratorToken tok;

	bc->index = 0;
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		MemoryContext item_cxt;
		char	   *task;
		Jsonb	   *payload;
		Jsonb	   *options;

		if (tok != WJB_ELEM)
			continue;
		/* each item's allocations go when it is done: a batch holds no rows */
		item_cxt = AllocSetContextCreate(caller, "taskorch batch item", ALLOCSET_SMALL_SIZES);
		MemoryContextSwitchTo(item_cxt);
		array_item_parts(&v, src->task, &task, &payload, &options);
		fn(task, payload, options, bc->index, arg);
		MemoryContextSwitchTo(caller);
		MemoryContextDelete(item_cxt);
		bc->index++;
	}
	return bc->index;
}

/*
 * Call fn on each row of the items query, read STREAM_PAGE rows at a time
 * and forgotten once done; returns how many there were.
 */
static int
foreach_query_item(const BatchItems *src, BatchContext *bc, BatchItemFn fn, void *arg)
{
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext item_cxt = AllocSetContextCreate(caller, "taskorch batch item",
												   ALLOCSET_SMALL_SIZES);
	QueryColumns cols;
	Portal		portal;

	SPI_connect();
	portal = query_open(src, &cols);
	bc->index = 0;
	for (;;)
	{
		SPI_cursor_fetch(portal, true, STREAM_PAGE);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	row = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			Datum		d;
			char	   *task = (char *) src->task;
			Jsonb	   *payload;
			Jsonb	   *options = NULL;

			if (bc->index >= MAX_STREAM_ITEMS)
				ereport(ERROR,
						errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						errmsg("a batch from a query has at most %d items", MAX_STREAM_ITEMS),
						errhint("Add a LIMIT, or split the rows over several batches."));
			MemoryContextSwitchTo(item_cxt);
			d = SPI_getbinval(row, desc, cols.payload, &isnull);
			payload = isnull ? jsonb_from_cstring("{}") : DatumGetJsonbP(d);
			if (!JB_ROOT_IS_OBJECT(payload))
				bad_item("\"payload\" must be a JSON object");
			if (cols.options)
			{
				d = SPI_getbinval(row, desc, cols.options, &isnull);
				options = isnull ? NULL : DatumGetJsonbP(d);
				if (options && !JB_ROOT_IS_OBJECT(options))
					bad_item("\"options\" must be a JSON object");
			}
			if (cols.task)
			{
				d = SPI_getbinval(row, desc, cols.task, &isnull);
				if (isnull)
					bad_item("\"task\" must be the id of a task");
				task = TextDatumGetCString(d);
			}
			fn(task, payload, options, bc->index, arg);
			MemoryContextSwitchTo(caller);
			MemoryContextReset(item_cxt);
			bc->index++;
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	SPI_finish();
	MemoryContextDelete(item_cxt);
	return bc->index;
}

/*
 * Call fn(task, payload, options, index, arg) on each item of a batch, in
 * order; an error names the item (index, count and phase: "create" for
 * an array, "stream" for the rows of a query).  Returns the item count.
 */
int
batch_items_foreach(const BatchItems *src, BatchItemFn fn, void *arg)
{
	ErrorContextCallback errcb;
	BatchContext bc = {-1, -1, src->query ? "stream" : "create"};
	int			n;

	if (src->items)
		bc.count = array_item_count(src->items);
	errcb.callback = batch_error_context;
	errcb.arg = &bc;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	n = src->query ? foreach_query_item(src, &bc, fn, arg) : foreach_array_item(src, &bc, fn, arg);
	error_context_stack = errcb.previous;
	return n;
}

static void
check_item(const char *task, Jsonb *payload, Jsonb *options, int index, void *arg)
{
}

/*
 * Check a batch's items before they are triggered later: every item of an
 * array, the columns of a query (whose rows are read only then).
 */
void
batch_items_check(const BatchItems *src)
{
	QueryColumns cols;

	if (src->items)
	{
		(void) batch_items_foreach(src, check_item, NULL);
		return;
	}
	SPI_connect();
	SPI_cursor_close(query_open(src, &cols));
	SPI_finish();
}

/* The one item of trigger_and_wait(): [{"payload": ..., "options": ...}] */
Jsonb *
batch_single_item(Jsonb *payload, Jsonb *options)
{
	JsonbParseState *state = NULL;
	JsonbValue	k;
	JsonbValue	v;

	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	k.type = jbvString;
	k.val.string.val = "payload";
	k.val.string.len = strlen("payload");
	pushJsonbValue(&state, WJB_KEY, &k);
	v.type = jbvBinary;
	v.val.binary.data = &payload->root;
	v.val.binary.len = VARSIZE(payload) - VARHDRSZ;
	pushJsonbValue(&state, WJB_VALUE, &v);
	if (options)
	{
		k.val.string.val = "options";
		k.val.string.len = strlen("options");
		pushJsonbValue(&state, WJB_KEY, &k);
		v.val.binary.data = &options->root;
		v.val.binary.len = VARSIZE(options) - VARHDRSZ;
		pushJsonbValue(&state, WJB_VALUE, &v);
	}
	pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_ARRAY, NULL));
}

typedef struct BatchTrigger
{
	Jsonb	   *options;		/* the batch's, for every item */
	const char *batch_id;
	TimestampTz now;
} BatchTrigger;

/* Trigger one item as part of a batch. */
static void
trigger_item(const char *task, Jsonb *payload, Jsonb *options, int index, void *arg)
{
	BatchTrigger *bt = (BatchTrigger *) arg;
	TriggerOptions o;

	trigger_options_init(&o);
	o.now = bt->now;
	o.batch_id = bt->batch_id;
	o.batch_index = index;
	if (options)
		trigger_options_jsonb(&o, options, false);
	if (bt->options)
		trigger_options_jsonb(&o, bt->options, true);
	trigger_options_finish(&o);
	(void) create_run(task, payload, &o, NULL);
}

/* Shared by every form: a batch row, then its items' runs. */
static Datum
batch_trigger(const BatchItems *src, Jsonb *options)
{
	BatchArgs	args;
	BatchIdRow	row;
	char	   *batch_id;
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext old;
	BatchTrigger bt = {options, NULL, trigger_now()};
	TriggerOptions own;
	int			n;

	if (options && !JB_ROOT_IS_OBJECT(options))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("batch options must be a JSON object"),
				errhint("Pass options such as {\"delay\": \"1h\"}."));
	memset(&args, 0, sizeof(args));
	args.task_id = pv_text(src->task);
	args.item_count = pv_int4(src->items ? array_item_count(src->items) : 0);
	args.triggered_by = pv_oid(GetUserId());
	args.options = pv_jsonb(options);
	/*
	 * An idempotency key of the batch dedups the batch, as Trigger.dev's
	 * batchTrigger(items, {idempotencyKey}): a second call with the key
	 * returns the first batch.  Its items do not inherit the key.
	 */
	trigger_options_init(&own);
	own.now = bt.now;
	if (options)
		trigger_options_jsonb(&own, options, false);
	if (own.idempotency_key)
	{
		bt.options = jsonb_without(options, batch_own_options);
		args.idempotency_key = pv_text(idempotency_key_of_trigger(own.idempotency_key));
		args.idempotency_key_expires_at =
			pv_timestamptz(TimestampTzPlusMilliseconds(bt.now, own.idempotency_ttl_ms));
	}
	SPI_connect();
	if (args.idempotency_key.present)
	{
		BatchKeyArgs key = {args.task_id, args.triggered_by, args.idempotency_key,
		pv_timestamptz(bt.now)};

		lock_role_key(LOCK_BATCH_KEY, src->task ? src->task : "",
					  TextDatumGetCString(args.idempotency_key.datum));
		if (taskorch_execute_args_latest(&batch_by_key_plan, &key, 1) == 1)
		{
			taskorch_read_row(&batch_by_key_plan, 0, &row);
			old = MemoryContextSwitchTo(caller);
			batch_id = pv_cstring(row.id);
			MemoryContextSwitchTo(old);
			SPI_finish();
			return CStringGetTextDatum(batch_id);
		}
	}
	taskorch_execute_args(&batch_plan, &args, false, 1);
	taskorch_read_row(&batch_plan, 0, &row);
	old = MemoryContextSwitchTo(caller);
	batch_id = pv_cstring(row.id);
	MemoryContextSwitchTo(old);
	SPI_finish();

	bt.batch_id = batch_id;
	n = batch_items_foreach(src, trigger_item, &bt);
	if (src->query)
	{
		BatchCountArgs count_args = {pv_text(batch_id), pv_int4(n)};

		SPI_connect();
		taskorch_execute_args(&batch_count_plan, &count_args, false, 0);
		SPI_finish();
	}
	return CStringGetTextDatum(batch_id);
}

/* SQL: taskorch.batch_trigger(task, items, options) -> batch id */
Datum
taskorch_batch_trigger(PG_FUNCTION_ARGS)
{
	BatchItems	src = {NULL, NULL, NULL};

	require_args(fcinfo, 2, "task and items", "Pass the task's id and a JSON array of items.");
	src.task = text_to_cstring(PG_GETARG_TEXT_PP(0));
	src.items = PG_GETARG_JSONB_P(1);
	PG_RETURN_DATUM(batch_trigger(&src, PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2)));
}

/* SQL: taskorch.batch_trigger(items, options) -> batch id; items name their task */
Datum
taskorch_batch_trigger_mixed(PG_FUNCTION_ARGS)
{
	BatchItems	src = {NULL, NULL, NULL};

	require_args(fcinfo, 1, "items", "Pass a JSON array of {\"task\": ..., \"payload\": ...} items.");
	src.items = PG_GETARG_JSONB_P(0);
	PG_RETURN_DATUM(batch_trigger(&src, PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1)));
}

/*
 * SQL: taskorch.batch_trigger_query(query, task, options) -> batch id; the
 * query's rows are the items (payload, and task when no task is given).
 */
Datum
taskorch_batch_trigger_query(PG_FUNCTION_ARGS)
{
	BatchItems	src = {NULL, NULL, NULL};

	require_args(fcinfo, 1, "query",
				 "Pass a query returning a payload column, such as SELECT jsonb_build_object('id', id) AS payload FROM records.");
	src.query = text_to_cstring(PG_GETARG_TEXT_PP(0));
	src.task = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	PG_RETURN_DATUM(batch_trigger(&src, PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2)));
}

/* SQL: taskorch.check_items_query(query, task): errors unless its rows can be batch items */
Datum
taskorch_check_items_query(PG_FUNCTION_ARGS)
{
	BatchItems	src = {NULL, NULL, NULL};

	require_args(fcinfo, 1, "query", "Pass a query returning a payload column.");
	src.query = text_to_cstring(PG_GETARG_TEXT_PP(0));
	src.task = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	batch_items_check(&src);
	PG_RETURN_VOID();
}
