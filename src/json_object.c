/*-------------------------------------------------------------------------
 *
 * json_object.c
 *	  A flat JSON object built in C value by value (no text to parse
 *	  again): begin, add fields, end.  A NULL value leaves its key out.
 *	  The error objects of runs, a checkpoint read back, a hook's payload.
 *	  Also jsonb_value(): the JsonbValue of a Jsonb, to push or compare,
 *	  jsonb_without(): an object less some keys, and jsonb_whole_int4(): a JSON
 *	  number that is a whole int4.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "utils/builtins.h"
#include "utils/numeric.h"

void
json_begin(JsonObject *o)
{
	o->state = NULL;
	pushJsonbValue(&o->state, WJB_BEGIN_OBJECT, NULL);
}

static void
json_key(JsonObject *o, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	pushJsonbValue(&o->state, WJB_KEY, &k);
}

void
json_string(JsonObject *o, const char *key, const char *value)
{
	JsonbValue	v;

	if (value == NULL)
		return;
	json_key(o, key);
	v.type = jbvString;
	v.val.string.val = (char *) value;
	v.val.string.len = strlen(value);
	pushJsonbValue(&o->state, WJB_VALUE, &v);
}

void
json_int(JsonObject *o, const char *key, int64 value)
{
	JsonbValue	v;

	json_key(o, key);
	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(value);
	pushJsonbValue(&o->state, WJB_VALUE, &v);
}

/* The value a Jsonb holds: an object or array as it is, a scalar as a scalar. */
JsonbValue
jsonb_value(Jsonb *jb)
{
	JsonbValue	v;

	if (JB_ROOT_IS_SCALAR(jb))
		(void) JsonbExtractScalar(&jb->root, &v);
	else
	{
		v.type = jbvBinary;
		v.val.binary.data = &jb->root;
		v.val.binary.len = VARSIZE(jb) - VARHDRSZ;
	}
	return v;
}

/* any JSON value */
void
json_jsonb(JsonObject *o, const char *key, Jsonb *value)
{
	JsonbValue	v;

	if (value == NULL)
		return;
	json_key(o, key);
	v = jsonb_value(value);
	pushJsonbValue(&o->state, WJB_VALUE, &v);
}

Jsonb *
json_end(JsonObject *o)
{
	return JsonbValueToJsonb(pushJsonbValue(&o->state, WJB_END_OBJECT, NULL));
}

/* Object `options` without the keys in `drop` (a NULL-ended list); NULL when nothing is left. */
Jsonb *
jsonb_without(Jsonb *options, const char *const *drop)
{
	JsonbParseState *state = NULL;
	JsonbIterator *it = JsonbIteratorInit(&options->root);
	JsonbIteratorToken tok;
	JsonbValue	v;
	JsonbValue *result;
	bool		skip = false;
	int			kept = 0;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			skip = false;
			for (const char *const *d = drop; *d && !skip; d++)
				skip = (size_t) v.val.string.len == strlen(*d) && memcmp(v.val.string.val, *d, v.val.string.len) == 0;
			kept += !skip;
		}
		if (!skip || tok == WJB_BEGIN_OBJECT || tok == WJB_END_OBJECT)
			result = pushJsonbValue(&state, tok, tok < WJB_BEGIN_ARRAY ? &v : NULL);
	}
	return kept ? JsonbValueToJsonb(result) : NULL;
}

/* A JSON number that is a whole number within int4, in *out; false if not. */
bool
jsonb_whole_int4(JsonbValue *v, int32 *out)
{
	bool		error = false;

	if (v->type != jbvNumeric || numeric_is_nan(v->val.numeric))
		return false;
	*out = numeric_int4_opt_error(v->val.numeric, &error);
	return !error &&
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(v->val.numeric),
										  DirectFunctionCall1(int4_numeric, Int32GetDatum(*out)))) == 0;
}
