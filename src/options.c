/*-------------------------------------------------------------------------
 *
 * options.c
 *	  Trigger options: the named arguments of trigger() and the same
 *	  options as a jsonb object (snake_case or Trigger.dev's camelCase
 *	  keys), checked and merged into one TriggerOptions.
 *
 * An option has one name (option_names): a trigger function's argument of
 * that name sets it, whatever its place in the SQL signature, and so does
 * the key of that name (or its camelCase) in `options`.  An option may be
 * given once: as a named argument or as a key of `options`, not both.  Every bad value is refused with an error naming
 * the option, before anything is written.
 *
 * Keys (idempotency_key, concurrency_key, a debounce key, a queue as
 * given) are 1 to MAX_KEY_BYTES bytes: they are indexed, and an index
 * entry must stay well under the 2,704 bytes a btree page allows.  Tags
 * are 1 to MAX_TAG_CHARS characters (Trigger.dev's limit), at most
 * MAX_TAGS of them.  Wait tokens take idempotency keys and tags by the
 * same rules: check_key() and tags_add() serve both.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#define MAX_TAGS 10
#define MAX_TAG_CHARS 128
#define MAX_KEY_BYTES 2048
/* a value quoted in a message is cut to this many characters */
#define QUOTED_CHARS 32
#define MAX_PRIORITY_SECS (366 * 86400)
#define DEFAULT_IDEMPOTENCY_TTL_MS ((int64) 30 * 86400 * 1000)

/* Option names: SQL argument, and the camelCase key also accepted. */
typedef enum OptionId
{
	OPT_DELAY, OPT_TTL, OPT_IDEMPOTENCY_KEY, OPT_IDEMPOTENCY_KEY_TTL,
	OPT_QUEUE, OPT_CONCURRENCY_KEY, OPT_PRIORITY, OPT_MAX_ATTEMPTS,
	OPT_MAX_DURATION, OPT_TAGS, OPT_METADATA, OPT_MACHINE, OPT_REGION,
	OPT_DEBOUNCE,
	NUM_OPTIONS
} OptionId;

static const char *const option_names[NUM_OPTIONS][2] = {
	{"delay", "delay"},
	{"ttl", "ttl"},
	{"idempotency_key", "idempotencyKey"},
	{"idempotency_key_ttl", "idempotencyKeyTTL"},
	{"queue", "queue"},
	{"concurrency_key", "concurrencyKey"},
	{"priority", "priority"},
	{"max_attempts", "maxAttempts"},
	{"max_duration", "maxDuration"},
	{"tags", "tags"},
	{"metadata", "metadata"},
	{"machine", "machine"},
	{"region", "region"},
	{"debounce", "debounce"},
};

void
trigger_options_init(TriggerOptions *o)
{
	memset(o, 0, sizeof(TriggerOptions));
	o->ttl_ms = -1;
	o->max_duration_ms = -1;
	o->idempotency_ttl_ms = DEFAULT_IDEMPOTENCY_TTL_MS;
	o->queue_limit = -1;
	o->debounce_max_delay_ms = -1;
}

static void
bad_option(OptionId id, const char *why)
{
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("invalid %s: %s", option_names[id][0], why),
			errhint("See the trigger options in the taskorch documentation (docs/triggering.md)."));
}

static void
mark_given(TriggerOptions *o, OptionId id)
{
	if (o->given & (1 << id))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("option %s is given twice", option_names[id][0]),
				errhint("Pass it either as a named argument or in options, not both."));
	o->given |= 1 << id;
}

static void
refuse_placement(OptionId id, const char *value)
{
	ereport(ERROR,
			errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			errmsg("%s \"%s\" is not supported", option_names[id][0], value),
			errdetail("taskorch runs tasks inside the database server: there is no machine preset or region to choose."),
			errhint("Leave %s out; scale with taskorch.workers_per_database or external workers.",
					option_names[id][0]));
}

/* The value (len bytes) to quote in a message: its start if it is long. */
static char *
quoted(const char *value, size_t len)
{
	int			cut = pg_mbcharcliplen(value, len, QUOTED_CHARS);

	if ((size_t) cut == len)
		return pnstrdup(value, len);
	return psprintf("%s...", pnstrdup(value, cut));
}

/* A key (len bytes, not NUL-terminated) given as `option`: 1 to MAX_KEY_BYTES bytes. */
void
check_key(const char *option, const char *value, size_t len)
{
	if (len == 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("invalid %s \"\": a key must not be empty", option),
				errhint("Pass a key of 1 to %d bytes.", MAX_KEY_BYTES));
	if (len > MAX_KEY_BYTES)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("invalid %s \"%s\": %zu bytes is over the limit of %d bytes",
					   option, quoted(value, len), len, MAX_KEY_BYTES),
				errhint("Pass a shorter key; hash a long one, e.g. with md5()."));
}

static void
set_key(TriggerOptions *o, OptionId id, const char *value)
{
	if (id == OPT_MACHINE || id == OPT_REGION)
		refuse_placement(id, value);
	check_key(option_names[id][0], value, strlen(value));
	if (id == OPT_IDEMPOTENCY_KEY)
		o->idempotency_key = pstrdup(value);
	else if (id == OPT_CONCURRENCY_KEY)
		o->concurrency_key = pstrdup(value);
	else
		o->queue = pstrdup(value);
}

static char *jsonb_string(OptionId id, JsonbValue *v);

/*
 * Trigger.dev's queue object {"name", "concurrencyLimit"}: the run goes to
 * that queue, which is created with that limit or has its limit set
 * (null: none) when the run is made (queue_set_limit_inline).
 */
static void
set_queue_object(TriggerOptions *o, JsonbContainer *queue)
{
	JsonbIterator *it = JsonbIteratorInit(queue);
	JsonbIteratorToken tok;
	JsonbValue	k;
	JsonbValue	v;
	bool		named = false;

	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *key;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(k.val.string.val, k.val.string.len);
		(void) JsonbIteratorNext(&it, &v, true);
		if (strcmp(key, "name") == 0)
		{
			set_key(o, OPT_QUEUE, jsonb_string(OPT_QUEUE, &v));
			named = true;
		}
		else if (strcmp(key, "concurrencyLimit") == 0 || strcmp(key, "concurrency_limit") == 0)
		{
			int32		limit;

			if (v.type == jbvNull)
				o->queue_limit = 0;
			else if (!jsonb_whole_int4(&v, &limit) || limit < 1 || limit > 999999999)
				bad_option(OPT_QUEUE, "\"concurrencyLimit\" must be a whole number from 1 to 999999999, or null");
			else
				o->queue_limit = limit;
		}
		else
			bad_option(OPT_QUEUE, psprintf("unknown key \"%s\" (name, concurrencyLimit)", key));
	}
	if (!named)
		bad_option(OPT_QUEUE, "a queue object needs a \"name\"");
}

static void
set_int(TriggerOptions *o, OptionId id, int64 v)
{
	if (id == OPT_PRIORITY)
	{
		if (v < 0 || v > MAX_PRIORITY_SECS)
			bad_option(id, psprintf("%lld is out of range (0 to %d seconds)",
									(long long) v, MAX_PRIORITY_SECS));
		o->priority = (int32) v;
	}
	else
	{
		if (v < 1 || v > 1000)
			bad_option(id, psprintf("%lld is out of range (1 to 1000)", (long long) v));
		o->max_attempts = (int32) v;
	}
}

static void
set_duration(TriggerOptions *o, OptionId id, int64 ms)
{
	if (id == OPT_TTL)
		o->ttl_ms = ms;
	else if (id == OPT_IDEMPOTENCY_KEY_TTL)
		o->idempotency_ttl_ms = ms;
	else
	{
		if (ms > PG_INT32_MAX)
			bad_option(id, "is longer than 24 days");
		o->max_duration_ms = (int32) ms;
	}
}

/*
 * Add `tag` (NULL: SQL NULL) to the list of tags given as `option`,
 * unless it is there already; returns the list.  A tag is 1 to
 * MAX_TAG_CHARS characters, and a list holds at most MAX_TAGS.
 */
List *
tags_add(List *tags, const char *option, const char *tag)
{
	ListCell   *lc;
	int			chars;

	if (tag == NULL)
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("invalid %s: a tag must not be null", option),
				errhint("Pass at most %d tags, each 1 to %d characters long.",
						MAX_TAGS, MAX_TAG_CHARS));
	chars = pg_mbstrlen(tag);
	if (chars == 0 || chars > MAX_TAG_CHARS)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("invalid %s: tag \"%s\" is %d characters long, not 1 to %d",
					   option, quoted(tag, strlen(tag)), chars, MAX_TAG_CHARS),
				errhint("Pass at most %d tags, each 1 to %d characters long.",
						MAX_TAGS, MAX_TAG_CHARS));
	foreach(lc, tags)
		if (strcmp(lfirst(lc), tag) == 0)
			return tags;
	if (list_length(tags) == MAX_TAGS)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("invalid %s: tag \"%s\" is one more than the %d allowed",
					   option, quoted(tag, strlen(tag)), MAX_TAGS),
				errhint("Pass at most %d tags, each 1 to %d characters long.",
						MAX_TAGS, MAX_TAG_CHARS));
	return lappend(tags, pstrdup(tag));
}

/* tags_add() each element of a text[] */
List *
tags_add_array(List *tags, const char *option, ArrayType *array)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("%s must be a one-dimensional array, not one of %d dimensions", option, ARR_NDIM(array)),
				errhint("Pass ARRAY['user_123', 'org_9'], at most 10 tags."));
	deconstruct_array(array, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		tags = tags_add(tags, option, nulls[i] ? NULL : TextDatumGetCString(elems[i]));
	return tags;
}

/* The tags as a text[] Datum. */
Datum
tags_to_array(List *tags)
{
	int			n = list_length(tags);
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	ListCell   *lc;
	int			i = 0;

	foreach(lc, tags)
		elems[i++] = CStringGetTextDatum(lfirst(lc));
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

static void
set_metadata(TriggerOptions *o, Jsonb *metadata)
{
	if (!JB_ROOT_IS_OBJECT(metadata))
		bad_option(OPT_METADATA, "must be a JSON object");
	if (VARSIZE(metadata) > MAX_METADATA_BYTES)
		bad_option(OPT_METADATA, psprintf("%zu bytes is over the limit of %d bytes",
										  (Size) VARSIZE(metadata), MAX_METADATA_BYTES));
	o->metadata = metadata;
}

/*
 * debounce: {"key": ..., "delay": ..., "mode": "leading"|"trailing",
 * "maxDelay": ...}, as a jsonb object.
 */
static void
set_debounce(TriggerOptions *o, JsonbContainer *obj)
{
	JsonbIterator *it = JsonbIteratorInit(obj);
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;
	bool		has_delay = false;

	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *key;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(k.val.string.val, k.val.string.len);
		(void) JsonbIteratorNext(&it, &v, true);
		if (strcmp(key, "key") == 0)
		{
			if (v.type != jbvString)
				bad_option(OPT_DEBOUNCE, "\"key\" must be a string");
			check_key("debounce key", v.val.string.val, v.val.string.len);
			o->debounce_key = pnstrdup(v.val.string.val, v.val.string.len);
		}
		else if (strcmp(key, "delay") == 0)
		{
			o->debounce_delay_ms = duration_ms_from_jsonb("debounce delay", &v, false);
			has_delay = true;
		}
		else if (strcmp(key, "maxDelay") == 0 || strcmp(key, "max_delay") == 0)
			o->debounce_max_delay_ms = duration_ms_from_jsonb("debounce maxDelay", &v, false);
		else if (strcmp(key, "mode") == 0)
		{
			char	   *mode = v.type == jbvString ?
				pnstrdup(v.val.string.val, v.val.string.len) : "";

			if (strcmp(mode, "leading") != 0 && strcmp(mode, "trailing") != 0)
				bad_option(OPT_DEBOUNCE, "\"mode\" must be \"leading\" or \"trailing\"");
			o->debounce_trailing = strcmp(mode, "trailing") == 0;
		}
		else
			bad_option(OPT_DEBOUNCE, psprintf("unknown key \"%s\" (key, delay, mode, maxDelay)", key));
	}
	if (o->debounce_key == NULL || !has_delay)
		bad_option(OPT_DEBOUNCE, "needs a \"key\" and a \"delay\"");
	if (o->debounce_delay_ms < 1000)
		bad_option(OPT_DEBOUNCE, "the delay must be at least 1 second");
}

/* ---- named arguments ---- */

/*
 * Apply the option `id`, argument number argno of fcinfo (not NULL).
 * Duration-like arguments are a taskorch.duration or taskorch.delay: text.
 */
static void
trigger_option_arg(TriggerOptions *o, int id, FunctionCallInfo fcinfo, int argno)
{
	Datum		v = PG_GETARG_DATUM(argno);

	mark_given(o, id);
	switch ((OptionId) id)
	{
		case OPT_DELAY:
			o->has_delay = true;
			o->delay_until = delay_from_text(TextDatumGetCString(v), o->now);
			break;
		case OPT_TTL:
		case OPT_IDEMPOTENCY_KEY_TTL:
		case OPT_MAX_DURATION:
			set_duration(o, id, duration_ms_from_text(option_names[id][0],
													  TextDatumGetCString(v), id == OPT_TTL));
			break;
		case OPT_PRIORITY:
		case OPT_MAX_ATTEMPTS:
			set_int(o, id, DatumGetInt32(v));
			break;
		case OPT_TAGS:
			o->tags = tags_add_array(o->tags, option_names[id][0], DatumGetArrayTypeP(v));
			break;
		case OPT_METADATA:
			set_metadata(o, DatumGetJsonbP(v));
			break;
		case OPT_DEBOUNCE:
			{
				Jsonb	   *d = DatumGetJsonbP(v);

				if (!JB_ROOT_IS_OBJECT(d))
					bad_option(id, "must be a JSON object");
				set_debounce(o, &d->root);
				break;
			}
		case OPT_QUEUE:
			{
				/* a name, or the queue object as JSON text (how a driver sends an object) */
				char	   *queue = TextDatumGetCString(v);

				if (queue[0] == '{')
					set_queue_object(o, &DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
																		CStringGetDatum(queue)))->root);
				else
					set_key(o, id, queue);
				break;
			}
		default:
			set_key(o, id, TextDatumGetCString(v));
			break;
	}
}

/*
 * The option each argument of the calling SQL function sets, by the
 * argument's name (-1: not an option), looked up once per call site (in
 * fn_extra): the SQL signature may list the options in any order.
 */
static const int *
options_of_args(FunctionCallInfo fcinfo)
{
	FmgrInfo   *flinfo = fcinfo->flinfo;
	HeapTuple	tup;
	Oid		   *types;
	char	  **names;
	char	   *modes;
	int			nargs;
	int		   *ids;

	if (flinfo->fn_extra)
		return flinfo->fn_extra;
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(flinfo->fn_oid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "taskorch: cache lookup failed for function %u", flinfo->fn_oid);
	nargs = get_func_arg_info(tup, &types, &names, &modes);
	ReleaseSysCache(tup);
	ids = MemoryContextAlloc(flinfo->fn_mcxt, sizeof(int) * Max(nargs, 1));
	for (int i = 0; i < nargs; i++)
	{
		ids[i] = -1;
		for (int id = 0; names && id < NUM_OPTIONS; id++)
			if (strcmp(names[i], option_names[id][0]) == 0)
				ids[i] = id;
	}
	flinfo->fn_extra = ids;
	return ids;
}

/*
 * Apply every option given as an argument of the calling SQL function,
 * from argument `first` on, each by its name.
 */
void
trigger_options_args(TriggerOptions *o, FunctionCallInfo fcinfo, int first)
{
	const int  *ids = options_of_args(fcinfo);

	for (int argno = first; argno < PG_NARGS(); argno++)
	{
		if (ids[argno] < 0)
			elog(ERROR, "taskorch: argument %d of the trigger function is not an option", argno + 1);
		if (!PG_ARGISNULL(argno))
			trigger_option_arg(o, ids[argno], fcinfo, argno);
	}
}

/* ---- the jsonb options object ---- */

static char *
jsonb_string(OptionId id, JsonbValue *v)
{
	if (v->type != jbvString)
		bad_option(id, "must be a string");
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* A whole number within int4 (set_int() checks the option's own range). */
static int64
jsonb_int(OptionId id, JsonbValue *v)
{
	int32		i;

	if (v->type != jbvNumeric)
		bad_option(id, "must be a number");
	if (!jsonb_whole_int4(v, &i))
	{
		char	   *shown = DatumGetCString(DirectFunctionCall1(numeric_out,
																NumericGetDatum(v->val.numeric)));

		bad_option(id, psprintf("%.32s%s is not a whole number from %d to %d", shown,
								strlen(shown) > 32 ? "..." : "", PG_INT32_MIN, PG_INT32_MAX));
	}
	return i;
}

static void
option_from_jsonb(TriggerOptions *o, OptionId id, JsonbValue *v)
{
	mark_given(o, id);
	switch (id)
	{
		case OPT_DELAY:
			o->has_delay = true;
			if (v->type == jbvString)
				o->delay_until = delay_from_text(jsonb_string(id, v), o->now);
			else
				o->delay_until = TimestampTzPlusMilliseconds(o->now,
															 duration_ms_from_jsonb("delay", v, true));
			break;
		case OPT_TTL:
		case OPT_IDEMPOTENCY_KEY_TTL:
		case OPT_MAX_DURATION:
			set_duration(o, id, duration_ms_from_jsonb(option_names[id][0], v, id == OPT_TTL));
			break;
		case OPT_PRIORITY:
		case OPT_MAX_ATTEMPTS:
			set_int(o, id, jsonb_int(id, v));
			break;
		case OPT_TAGS:
			if (v->type == jbvString)
				o->tags = tags_add(o->tags, option_names[id][0], jsonb_string(id, v));
			else if (v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data))
			{
				JsonbIterator *it = JsonbIteratorInit(v->val.binary.data);
				JsonbValue	e;
				JsonbIteratorToken tok;

				while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
					if (tok == WJB_ELEM)
						o->tags = tags_add(o->tags, option_names[id][0], jsonb_string(id, &e));
			}
			else
				bad_option(id, "must be a string or an array of strings");
			break;
		case OPT_METADATA:
			if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
				bad_option(id, "must be a JSON object");
			set_metadata(o, JsonbValueToJsonb(v));
			break;
		case OPT_DEBOUNCE:
			if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
				bad_option(id, "must be a JSON object");
			set_debounce(o, v->val.binary.data);
			break;
		case OPT_QUEUE:
			if (v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data))
				set_queue_object(o, v->val.binary.data);
			else
				set_key(o, id, jsonb_string(id, v));
			break;
		default:
			set_key(o, id, jsonb_string(id, v));
			break;
	}
}

/*
 * Apply every key of the options object.  With defaults_only, keys for
 * options already given are skipped (a batch's options under an item's).
 */
void
trigger_options_jsonb(TriggerOptions *o, Jsonb *options, bool defaults_only)
{
	JsonbIterator *it;
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;

	if (!JB_ROOT_IS_OBJECT(options))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("options must be a JSON object"),
				errhint("Pass options such as {\"delay\": \"1h\", \"tags\": [\"a\"]}."));
	it = JsonbIteratorInit(&options->root);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *key;
		int			id;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(k.val.string.val, k.val.string.len);
		(void) JsonbIteratorNext(&it, &v, true);
		for (id = 0; id < NUM_OPTIONS; id++)
			if (strcmp(key, option_names[id][0]) == 0 || strcmp(key, option_names[id][1]) == 0)
				break;
		if (id == NUM_OPTIONS)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("unknown trigger option \"%s\"", key),
					errhint("Options are delay, ttl, idempotencyKey, idempotencyKeyTTL, queue, concurrencyKey, priority, maxAttempts, maxDuration, tags, metadata and debounce."));
		if (v.type == jbvNull || (defaults_only && (o->given & (1 << id))))
			continue;
		option_from_jsonb(o, (OptionId) id, &v);
	}
}

/* Checks that need every option: call after all are applied. */
void
trigger_options_finish(TriggerOptions *o)
{
	if ((o->given & (1 << OPT_IDEMPOTENCY_KEY_TTL)) && o->idempotency_key == NULL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("idempotency_key_ttl is given without an idempotency_key"),
				errhint("Pass idempotency_key too, or leave idempotency_key_ttl out."));
	if (o->queue)
		check_name("queue", o->queue);
	if (o->debounce_key && o->has_delay)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("delay and debounce are given together"),
				errhint("A debounced run's delay is debounce's \"delay\"; leave delay out."));
	if (!(o->given & (1 << OPT_TTL)) && taskorch_default_ttl_ms > 0)
		o->ttl_ms = taskorch_default_ttl_ms;
}

/* The tags as a text[] Datum. */
Datum
trigger_options_tags(TriggerOptions *o)
{
	return tags_to_array(o->tags);
}
