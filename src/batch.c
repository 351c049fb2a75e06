/*-------------------------------------------------------------------------
 *
 * batch.c
 *	  batch_trigger(): many runs in one call, as Trigger.dev's
 *	  batchTrigger / batch.trigger / batch.triggerByTask.
 *
 *	  batch_trigger(task, items, options)   one task:  [{"payload": ..., "options": ...}]
 *	  batch_trigger(items, options)         mixed:     [{"task": ..., "payload": ..., "options": ...}]
 *
 * Each item is triggered as trigger() would (same checks, same options);
 * the batch's options apply to every item that does not set them itself.
 * The batch is all or nothing: a bad item refuses the whole call, and the
 * error's context names the item's index, the item count and the phase
 * (Trigger.dev's BatchTriggerError fields).  Runs keep their position in
 * the batch (batch_index), which batch_retrieve() returns them in.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(taskorch_batch_trigger);
PG_FUNCTION_INFO_V1(taskorch_batch_trigger_mixed);

/* Trigger.dev's limit per batch call (SDK 4.3.1 and later) */
#define MAX_BATCH_ITEMS 1000

static TaskorchPlan batch_plan = {
	"INSERT INTO taskorch.batch (task_id, item_count, triggered_by, options)"
	" VALUES ($1, $2, $3::regrole, $4) RETURNING id",
	4, {TEXTOID, INT4OID, OIDOID, JSONBOID},
	NULL
};

typedef struct BatchContext
{
	int			index;			/* item being triggered, -1 before the first */
	int			count;
	const char *phase;
} BatchContext;

static void
batch_error_context(void *arg)
{
	BatchContext *bc = (BatchContext *) arg;

	if (bc->index >= 0)
		errcontext("batch item %d of %d (phase %s)", bc->index, bc->count, bc->phase);
	else
		errcontext("batch of %d items (phase %s)", bc->count, bc->phase);
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
 * Check a batch item and take it apart: its task (`task` when the batch
 * has one, else the item's "task"), payload ({} when absent) and options
 * (NULL when absent).  Shared by batch_trigger() and batch_trigger_and_wait().
 */
void
batch_item_parts(JsonbValue *item, const char *task, char **task_out,
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

/* Trigger one item; returns its run id. */
static Datum
trigger_item(JsonbValue *item, const char *task, Jsonb *batch_options,
			 const char *batch_id, int index, TimestampTz now)
{
	TriggerOptions o;
	char	   *item_task;
	Jsonb	   *payload;
	Jsonb	   *options;

	batch_item_parts(item, task, &item_task, &payload, &options);
	trigger_options_init(&o);
	o.now = now;
	o.batch_id = batch_id;
	o.batch_index = index;
	if (options)
		trigger_options_jsonb(&o, options, false);
	if (batch_options)
		trigger_options_jsonb(&o, batch_options, true);
	trigger_options_finish(&o);
	return create_run(item_task, payload, &o, NULL);
}

/* Shared by both forms: task NULL for a batch of mixed tasks. */
static Datum
batch_trigger(const char *task, Jsonb *items, Jsonb *options)
{
	ErrorContextCallback errcb;
	BatchContext bc = {-1, 0, "create"};
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	Datum		batch_id;
	char	   *batch_id_str;
	bool		isnull;
	TimestampTz now = trigger_now();
	MemoryContext caller = CurrentMemoryContext;

	if (!JB_ROOT_IS_ARRAY(items) || JB_ROOT_IS_SCALAR(items))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("batch items must be a JSON array"),
				errhint("Pass [{\"payload\": {...}}, ...]."));
	bc.count = JB_ROOT_COUNT(items);
	if (bc.count == 0 || bc.count > MAX_BATCH_ITEMS)
		ereport(ERROR,
				errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("a batch has 1 to %d items, not %d", MAX_BATCH_ITEMS, bc.count),
				errdetail("phase: create, item count: %d", bc.count),
				errhint("Split the items into several batches, or trigger one run per row of a query."));
	if (options && !JB_ROOT_IS_OBJECT(options))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("batch options must be a JSON object"),
				errhint("Pass options such as {\"delay\": \"1h\"}."));

	errcb.callback = batch_error_context;
	errcb.arg = &bc;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	SPI_connect();
	values[0] = task ? CStringGetTextDatum(task) : (Datum) 0;
	nulls[0] = task ? ' ' : 'n';
	values[1] = Int32GetDatum(bc.count);
	values[2] = ObjectIdGetDatum(GetUserId());
	values[3] = options ? JsonbPGetDatum(options) : (Datum) 0;
	nulls[3] = options ? ' ' : 'n';
	taskorch_execute_as_owner(&batch_plan, values, nulls, false, 1);
	batch_id = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 1, &isnull),
								 false, -1);
	SPI_finish();

	batch_id_str = TextDatumGetCString(batch_id);
	it = JsonbIteratorInit(&items->root);
	bc.index = 0;
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		MemoryContext item_cxt;

		if (tok != WJB_ELEM)
			continue;
		/* each item's allocations go when it is done: a batch holds no rows */
		item_cxt = AllocSetContextCreate(caller, "taskorch batch item", ALLOCSET_SMALL_SIZES);
		MemoryContextSwitchTo(item_cxt);
		(void) trigger_item(&v, task, options, batch_id_str, bc.index, now);
		MemoryContextSwitchTo(caller);
		MemoryContextDelete(item_cxt);
		bc.index++;
	}
	error_context_stack = errcb.previous;
	return batch_id;
}

/* SQL: taskorch.batch_trigger(task, items, options) -> batch id */
Datum
taskorch_batch_trigger(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("task and items must not be null"),
				errhint("Pass the task's id and a JSON array of items."));
	PG_RETURN_DATUM(batch_trigger(text_to_cstring(PG_GETARG_TEXT_PP(0)),
								  PG_GETARG_JSONB_P(1),
								  PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2)));
}

/* SQL: taskorch.batch_trigger(items, options) -> batch id; items name their task */
Datum
taskorch_batch_trigger_mixed(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("items must not be null"),
				errhint("Pass a JSON array of {\"task\": ..., \"payload\": ...} items."));
	PG_RETURN_DATUM(batch_trigger(NULL, PG_GETARG_JSONB_P(0),
								  PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1)));
}
