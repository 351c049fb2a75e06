/*-------------------------------------------------------------------------
 *
 * batch_items.c
 *	  taskorch.items, the type of a batch's items (batch_trigger's and
 *	  batch_trigger_and_wait's): a jsonb, that also reads a PostgreSQL
 *	  array of JSON values.
 *
 * Why: node-postgres (and knex, kysely on it) send a JavaScript array as
 * an array literal, '{"{\"payload\":1}","{\"payload\":2}"}', and psycopg
 * a Python list of Jsonb as a jsonb[]; a jsonb argument refuses both.  An
 * items value is stored as the jsonb array of those values, so every
 * driver may bind a batch's items as it binds a list.
 *
 * Invariants:
 *	- The value is a jsonb (same representation; the casts to and from
 *	  jsonb are binary), so the C code reads it with PG_GETARG_JSONB_P and
 *	  batch.c says what an item must be.
 *	- Text input starting with '{' (after spaces) is an array literal, each
 *	  element a JSON value (NULL: JSON null); anything else is JSON text.
 *	  A JSON object is never a batch's items, so nothing is read two ways.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"

PG_FUNCTION_INFO_V1(taskorch_items_in);
PG_FUNCTION_INFO_V1(taskorch_items_from_array);

/* jsonb[] -> a jsonb array of its elements */
static Datum
items_of_array(ArrayType *array)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	JsonbParseState *state = NULL;
	JsonbValue *result;

	deconstruct_array(array, JSONBOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < n; i++)
	{
		JsonbValue	v = {.type = jbvNull};

		if (!nulls[i])
			v = jsonb_value(DatumGetJsonbP(elems[i]));
		pushJsonbValue(&state, WJB_ELEM, &v);
	}
	result = pushJsonbValue(&state, WJB_END_ARRAY, NULL);
	return JsonbPGetDatum(JsonbValueToJsonb(result));
}

Datum
taskorch_items_in(PG_FUNCTION_ARGS)
{
	char	   *s = PG_GETARG_CSTRING(0);
	const char *p = s;
	Datum		array;
	char	   *why;

	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (*p != '{')
		return DirectFunctionCall1(jsonb_in, CStringGetDatum(s));
	if (!try_input(F_ARRAY_IN, s, JSONBOID, &array, &why))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				errmsg("invalid batch items \"%s\": neither a JSON array nor an array of JSON values", s),
				errdetail("%s", why),
				errhint("Pass a JSON array such as '[{\"payload\": {\"n\": 1}}, {\"payload\": {\"n\": 2}}]'."));
	return items_of_array(DatumGetArrayTypeP(array));
}

Datum
taskorch_items_from_array(PG_FUNCTION_ARGS)
{
	return items_of_array(PG_GETARG_ARRAYTYPE_P(0));
}
