/*-------------------------------------------------------------------------
 *
 * schema.c
 *	  JSON Schema for task payloads and outputs, checked in C.
 *
 * The subset: type (one name or a list; "integer" is a number without a
 * fraction), required, properties, additionalProperties (false or a
 * schema), items (one schema for every element), enum, const,
 * minimum/maximum, minLength/maxLength (in characters) and pattern (a
 * regular expression searched for, as JSON Schema's is).  A schema may be
 * true (anything) or false (nothing), and {"$ref": "name"} stands for a
 * schema defined with taskorch.define_schema() (the reusable, generic
 * schemas).  title, description, default, examples, $schema, $id and
 * $comment are annotations and are ignored; any other keyword is refused
 * when the schema is defined, so that a typo cannot silently accept
 * everything.
 *
 * A value is checked against the whole schema and every failure is kept
 * (up to MAX_ERRORS), each naming its JSON path and its rule:
 *
 *	  $.user.email: minLength: 2 characters, fewer than 3
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "regex/regex.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/numeric.h"

PG_FUNCTION_INFO_V1(taskorch_validate);
PG_FUNCTION_INFO_V1(taskorch_check_schema);

#define MAX_ERRORS 10
#define MAX_DEPTH 32

static TaskorchPlan named_plan = {
	"SELECT schema FROM taskorch.schema WHERE name = $1",
	1, {TEXTOID},
	NULL
};

typedef struct Check
{
	List	   *errors;			/* char *: "path: rule: what" */
	bool		truncated;		/* more than MAX_ERRORS */
} Check;

static void check_value(JsonbValue *schema, JsonbValue *value, const char *path,
						Check *c, int depth);

/* ---------------------------------------------------------------------
 * Small helpers on JsonbValues
 * ---------------------------------------------------------------------
 */

static bool
is_object(JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
}

static bool
is_array(JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data);
}

static const char *
type_of(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return "null";
		case jbvBool:
			return "boolean";
		case jbvNumeric:
			return "number";
		case jbvString:
			return "string";
		default:
			return is_object(v) ? "object" : "array";
	}
}

static JsonbValue *
keyword(JsonbValue *schema, const char *key)
{
	return getKeyJsonValueFromContainer(schema->val.binary.data, key, strlen(key), NULL);
}

static char *
string_of(JsonbValue *v)
{
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static int
numeric_compare(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a), NumericGetDatum(b)));
}

static bool
is_integral(Numeric n)
{
	Datum		t = DirectFunctionCall2(numeric_trunc, NumericGetDatum(n), Int32GetDatum(0));

	return numeric_compare(n, DatumGetNumeric(t)) == 0;
}

static bool
equal_values(JsonbValue *a, JsonbValue *b)
{
	Jsonb	   *ja = JsonbValueToJsonb(a);
	Jsonb	   *jb = JsonbValueToJsonb(b);

	return compareJsonbContainers(&ja->root, &jb->root) == 0;
}

static char *
show(JsonbValue *v)
{
	return JsonbToCString(NULL, &JsonbValueToJsonb(v)->root, 0);
}

/* The value a Jsonb holds, scalar or container. */
static JsonbValue
value_of(Jsonb *jb)
{
	JsonbValue	v;

	if (JB_ROOT_IS_SCALAR(jb))
		JsonbExtractScalar(&jb->root, &v);
	else
	{
		v.type = jbvBinary;
		v.val.binary.data = &jb->root;
		v.val.binary.len = VARSIZE(jb) - VARHDRSZ;
	}
	return v;
}

static void fail(Check *c, const char *path, const char *rule, const char *fmt,...)
			pg_attribute_printf(4, 5);

static void
fail(Check *c, const char *path, const char *rule, const char *fmt,...)
{
	StringInfoData buf;
	va_list		args;

	if (list_length(c->errors) >= MAX_ERRORS)
	{
		c->truncated = true;
		return;
	}
	initStringInfo(&buf);
	appendStringInfo(&buf, "%s: %s: ", path, rule);
	for (;;)
	{
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&buf, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}
	c->errors = lappend(c->errors, buf.data);
}

/* ---------------------------------------------------------------------
 * Named schemas
 * ---------------------------------------------------------------------
 */

/* The schema defined as `name`, or NULL. */
static Jsonb *
named_schema(const char *name)
{
	Datum		values[1] = {CStringGetTextDatum(name)};
	Datum		d = (Datum) 0;
	bool		isnull = true;

	SPI_connect();
	if (taskorch_execute_as_owner(&named_plan, values, NULL, true, 1) == 1)
	{
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		d = SPI_datumTransfer(d, false, -1);
	}
	SPI_finish();
	return isnull ? NULL : DatumGetJsonbP(d);
}

static Jsonb *
resolve_ref(JsonbValue *ref)
{
	char	   *name = string_of(ref);
	Jsonb	   *s = named_schema(name);

	if (s == NULL)
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("schema \"%s\" does not exist", name),
				errhint("Define it with taskorch.define_schema('%s', ...); see taskorch.schemas.", name));
	return s;
}

/* ---------------------------------------------------------------------
 * Checking a value
 * ---------------------------------------------------------------------
 */

static bool
type_matches(const char *want, JsonbValue *value)
{
	const char *have = type_of(value);

	if (strcmp(want, "integer") == 0)
		return value->type == jbvNumeric && is_integral(value->val.numeric);
	return strcmp(want, have) == 0;
}

static bool
check_type(JsonbValue *type, JsonbValue *value, const char *path, Check *c)
{
	if (type->type == jbvString)
	{
		char	   *want = string_of(type);

		if (type_matches(want, value))
			return true;
		fail(c, path, "type", "expected %s, got %s", want, type_of(value));
		return false;
	}
	else
	{
		JsonbIterator *it = JsonbIteratorInit(type->val.binary.data);
		JsonbValue	t;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &t, true)) != WJB_DONE)
			if (tok == WJB_ELEM && type_matches(string_of(&t), value))
				return true;
		fail(c, path, "type", "expected one of %s, got %s", show(type), type_of(value));
		return false;
	}
}

static void
check_number(JsonbValue *schema, JsonbValue *value, const char *path, Check *c)
{
	JsonbValue *min = keyword(schema, "minimum");
	JsonbValue *max = keyword(schema, "maximum");

	if (min && numeric_compare(value->val.numeric, min->val.numeric) < 0)
		fail(c, path, "minimum", "%s is less than %s", show(value), show(min));
	if (max && numeric_compare(value->val.numeric, max->val.numeric) > 0)
		fail(c, path, "maximum", "%s is greater than %s", show(value), show(max));
}

static void
check_string(JsonbValue *schema, JsonbValue *value, const char *path, Check *c)
{
	JsonbValue *min = keyword(schema, "minLength");
	JsonbValue *max = keyword(schema, "maxLength");
	JsonbValue *pattern = keyword(schema, "pattern");
	int			len = pg_mbstrlen_with_len(value->val.string.val, value->val.string.len);

	if (min && len < numeric_int4_opt_error(min->val.numeric, NULL))
		fail(c, path, "minLength", "%d characters, fewer than %s", len, show(min));
	if (max && len > numeric_int4_opt_error(max->val.numeric, NULL))
		fail(c, path, "maxLength", "%d characters, more than %s", len, show(max));
	if (pattern &&
		!RE_compile_and_execute(cstring_to_text_with_len(pattern->val.string.val,
														 pattern->val.string.len),
								value->val.string.val, value->val.string.len,
								REG_ADVANCED, DEFAULT_COLLATION_OID, 0, NULL))
		fail(c, path, "pattern", "%s does not match %s", show(value), show(pattern));
}

static void
check_object(JsonbValue *schema, JsonbValue *value, const char *path, Check *c, int depth)
{
	JsonbValue *required = keyword(schema, "required");
	JsonbValue *props = keyword(schema, "properties");
	JsonbValue *additional = keyword(schema, "additionalProperties");
	JsonbIterator *it;
	JsonbValue	k;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (required)
	{
		it = JsonbIteratorInit(required->val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
			if (tok == WJB_ELEM &&
				!getKeyJsonValueFromContainer(value->val.binary.data, k.val.string.val,
											  k.val.string.len, NULL))
				fail(c, psprintf("%s.%s", path, string_of(&k)), "required", "missing");
	}
	if (props == NULL && additional == NULL)
		return;
	it = JsonbIteratorInit(value->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		JsonbValue *prop;
		char	   *child;

		if (tok != WJB_KEY)
			continue;
		child = psprintf("%s.%s", path, string_of(&k));
		tok = JsonbIteratorNext(&it, &v, true);
		prop = props ? getKeyJsonValueFromContainer(props->val.binary.data, k.val.string.val,
													 k.val.string.len, NULL) : NULL;
		if (prop)
			check_value(prop, &v, child, c, depth + 1);
		else if (additional && additional->type == jbvBool && !additional->val.boolean)
			fail(c, child, "additionalProperties", "not allowed");
		else if (additional && additional->type == jbvBinary)
			check_value(additional, &v, child, c, depth + 1);
	}
}

static void
check_items(JsonbValue *items, JsonbValue *value, const char *path, Check *c, int depth)
{
	JsonbIterator *it = JsonbIteratorInit(value->val.binary.data);
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			i = 0;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		if (tok == WJB_ELEM)
			check_value(items, &v, psprintf("%s[%d]", path, i++), c, depth + 1);
}

static bool
in_enum(JsonbValue *choices, JsonbValue *value)
{
	JsonbIterator *it = JsonbIteratorInit(choices->val.binary.data);
	JsonbValue	v;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		if (tok == WJB_ELEM && equal_values(&v, value))
			return true;
	return false;
}

static void
check_value(JsonbValue *schema, JsonbValue *value, const char *path, Check *c, int depth)
{
	JsonbValue *kw;

	CHECK_FOR_INTERRUPTS();
	check_stack_depth();
	if (depth > MAX_DEPTH)
		ereport(ERROR,
				errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("schema nesting exceeds %d levels at %s", MAX_DEPTH, path),
				errhint("A schema that refers to itself through $ref must stop somewhere."));
	if (schema->type == jbvBool)
	{
		if (!schema->val.boolean)
			fail(c, path, "false", "no value is allowed");
		return;
	}
	if ((kw = keyword(schema, "$ref")) != NULL)
	{
		JsonbValue	named = value_of(resolve_ref(kw));

		check_value(&named, value, path, c, depth + 1);
	}
	if ((kw = keyword(schema, "type")) != NULL && !check_type(kw, value, path, c))
		return;					/* the other rules would only repeat it */
	if ((kw = keyword(schema, "enum")) != NULL && !in_enum(kw, value))
		fail(c, path, "enum", "%s is not one of %s", show(value), show(kw));
	if ((kw = keyword(schema, "const")) != NULL && !equal_values(kw, value))
		fail(c, path, "const", "%s is not %s", show(value), show(kw));
	if (value->type == jbvNumeric)
		check_number(schema, value, path, c);
	else if (value->type == jbvString)
		check_string(schema, value, path, c);
	else if (is_object(value))
		check_object(schema, value, path, c, depth);
	else if (is_array(value) && (kw = keyword(schema, "items")) != NULL)
		check_items(kw, value, path, c, depth);
}

/* Every failure of `value` against `schema`: a list of "path: rule: what". */
static List *
schema_errors(Jsonb *schema, Jsonb *value, bool *truncated)
{
	Check		c = {NIL, false};
	JsonbValue	s = value_of(schema);
	JsonbValue	v = value_of(value);

	check_value(&s, &v, "$", &c, 0);
	*truncated = c.truncated;
	return c.errors;
}

/*
 * Refuse `value` (what: "payload", "output") of task `task` unless it
 * matches `schema`: the message names the first failure, the detail all.
 */
void
schema_validate(Jsonb *schema, Jsonb *value, const char *what, const char *task)
{
	bool		truncated;
	List	   *errors = schema_errors(schema, value, &truncated);
	StringInfoData detail;
	ListCell   *lc;

	if (errors == NIL)
		return;
	initStringInfo(&detail);
	foreach(lc, errors)
		appendStringInfo(&detail, "%s%s", detail.len ? "\n" : "", (char *) lfirst(lc));
	if (truncated)
		appendStringInfo(&detail, "\n(only the first %d failures are shown)", MAX_ERRORS);
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("%s of task \"%s\" does not match its schema: %s", what, task,
				   (char *) linitial(errors)),
			errdetail("%s", detail.data),
			errhint("The task's %s_schema is in taskorch.tasks.", what));
}

/* ---------------------------------------------------------------------
 * Checking a schema when it is defined
 * ---------------------------------------------------------------------
 */

static void
bad_schema(const char *path, const char *why)
{
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("invalid schema at %s: %s", path, why),
			errhint("Keywords: type, required, properties, additionalProperties, items, enum, const, "
					"minimum, maximum, minLength, maxLength, pattern, $ref."));
}

static void check_definition(JsonbValue *schema, const char *path, int depth);

static bool
is_type_name(JsonbValue *v)
{
	static const char *const names[] = {"null", "boolean", "number", "integer", "string",
	"object", "array"};

	if (v->type != jbvString)
		return false;
	for (int i = 0; i < (int) lengthof(names); i++)
		if ((int) strlen(names[i]) == v->val.string.len &&
			strncmp(names[i], v->val.string.val, v->val.string.len) == 0)
			return true;
	return false;
}

/* Every element of array keyword `v` passes `ok`. */
static bool
all_elements(JsonbValue *v, bool (*ok) (JsonbValue *))
{
	JsonbIterator *it;
	JsonbValue	e;
	JsonbIteratorToken tok;

	if (!is_array(v))
		return false;
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
		if (tok == WJB_ELEM && !ok(&e))
			return false;
	return true;
}

static bool
is_string(JsonbValue *v)
{
	return v->type == jbvString;
}

static bool
is_count(JsonbValue *v)
{
	return v->type == jbvNumeric && is_integral(v->val.numeric) &&
		numeric_compare(v->val.numeric,
						DatumGetNumeric(DirectFunctionCall1(int4_numeric, Int32GetDatum(0)))) >= 0;
}

static void
pattern_context(void *arg)
{
	errcontext("schema keyword %s", (const char *) arg);
}

/* One keyword of a schema object. */
static void
check_keyword(const char *key, JsonbValue *v, const char *path, int depth)
{
	char	   *at = psprintf("%s.%s", path, key);

	if (strcmp(key, "type") == 0)
	{
		if (!is_type_name(v) && !all_elements(v, is_type_name))
			bad_schema(at, "a type name (null, boolean, number, integer, string, object, array) or a list of them");
	}
	else if (strcmp(key, "required") == 0)
	{
		if (!all_elements(v, is_string))
			bad_schema(at, "a list of property names");
	}
	else if (strcmp(key, "properties") == 0)
	{
		JsonbIterator *it;
		JsonbValue	k;
		JsonbValue	s;
		JsonbIteratorToken tok;

		if (!is_object(v))
			bad_schema(at, "an object of schemas");
		it = JsonbIteratorInit(v->val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
			if (tok == WJB_KEY)
			{
				char	   *prop = psprintf("%s.%s", at, string_of(&k));

				(void) JsonbIteratorNext(&it, &s, true);
				check_definition(&s, prop, depth + 1);
			}
	}
	else if (strcmp(key, "additionalProperties") == 0 || strcmp(key, "items") == 0)
		check_definition(v, at, depth + 1);
	else if (strcmp(key, "enum") == 0)
	{
		if (!is_array(v))
			bad_schema(at, "a list of values");
	}
	else if (strcmp(key, "minimum") == 0 || strcmp(key, "maximum") == 0)
	{
		if (v->type != jbvNumeric)
			bad_schema(at, "a number");
	}
	else if (strcmp(key, "minLength") == 0 || strcmp(key, "maxLength") == 0)
	{
		if (!is_count(v))
			bad_schema(at, "a whole number, 0 or more");
	}
	else if (strcmp(key, "pattern") == 0)
	{
		ErrorContextCallback errcb = {error_context_stack, pattern_context, at};

		if (v->type != jbvString)
			bad_schema(at, "a regular expression");
		error_context_stack = &errcb;
		(void) RE_compile_and_cache(cstring_to_text_with_len(v->val.string.val, v->val.string.len),
									REG_ADVANCED, DEFAULT_COLLATION_OID);
		error_context_stack = errcb.previous;
	}
	else if (strcmp(key, "$ref") == 0)
	{
		if (v->type != jbvString)
			bad_schema(at, "the name of a schema defined with taskorch.define_schema()");
		(void) resolve_ref(v);
	}
	else if (strcmp(key, "const") != 0 && strcmp(key, "title") != 0 &&
			 strcmp(key, "description") != 0 && strcmp(key, "default") != 0 &&
			 strcmp(key, "examples") != 0 && strcmp(key, "$schema") != 0 &&
			 strcmp(key, "$id") != 0 && strcmp(key, "$comment") != 0)
		bad_schema(at, psprintf("unsupported keyword \"%s\"", key));
}

static void
check_definition(JsonbValue *schema, const char *path, int depth)
{
	JsonbIterator *it;
	JsonbValue	k;
	JsonbValue	v;
	JsonbIteratorToken tok;

	check_stack_depth();
	if (depth > MAX_DEPTH)
		bad_schema(path, psprintf("nested more than %d levels", MAX_DEPTH));
	if (schema->type == jbvBool)
		return;
	if (!is_object(schema))
		bad_schema(path, "a schema is an object (or true, or false)");
	it = JsonbIteratorInit(schema->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
		if (tok == WJB_KEY)
		{
			char	   *key = string_of(&k);

			(void) JsonbIteratorNext(&it, &v, true);
			check_keyword(key, &v, path, depth);
		}
}

/* Refuse a schema using anything but the supported subset. */
void
schema_check_definition(Jsonb *schema)
{
	JsonbValue	s = value_of(schema);

	check_definition(&s, "$", 0);
}

/* SQL: taskorch.check_schema(schema): errors unless the schema is valid */
Datum
taskorch_check_schema(PG_FUNCTION_ARGS)
{
	schema_check_definition(PG_GETARG_JSONB_P(0));
	PG_RETURN_VOID();
}

/* SQL: taskorch.validate(value, schema) -> text[] of failures ({} when it matches) */
Datum
taskorch_validate(PG_FUNCTION_ARGS)
{
	Jsonb	   *schema = PG_GETARG_JSONB_P(1);
	bool		truncated;
	List	   *errors;
	Datum	   *elems;
	int			n = 0;
	ListCell   *lc;

	schema_check_definition(schema);
	errors = schema_errors(schema, PG_GETARG_JSONB_P(0), &truncated);
	elems = palloc(sizeof(Datum) * (list_length(errors) + 1));
	foreach(lc, errors)
		elems[n++] = CStringGetTextDatum((char *) lfirst(lc));
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* ---------------------------------------------------------------------
 * Named schemas: define_schema() and drop_schema()
 * ---------------------------------------------------------------------
 */

PG_FUNCTION_INFO_V1(taskorch_define_schema);
PG_FUNCTION_INFO_V1(taskorch_drop_schema);

static TaskorchPlan owner_plan = {
	"SELECT owner::oid FROM taskorch.schema WHERE name = $1 FOR UPDATE",
	1, {TEXTOID},
	NULL
};

static TaskorchPlan upsert_plan = {
	"INSERT INTO taskorch.schema (name, schema, owner, description)"
	" VALUES ($1, $2, $3::regrole, $4)"
	" ON CONFLICT (name) DO UPDATE SET schema = EXCLUDED.schema,"
	"        description = EXCLUDED.description, updated_at = now()",
	4, {TEXTOID, JSONBOID, OIDOID, TEXTOID},
	NULL
};

/* Who still refers to the schema: a task's schemas, or another named schema. */
static TaskorchPlan users_plan = {
	"SELECT 'task ' || id FROM taskorch.task"
	" WHERE jsonb_path_exists(coalesce(payload_schema, 'true') || coalesce(output_schema, 'true'),"
	"                         'strict $.** ? (@.\"$ref\" == $n)', jsonb_build_object('n', $1))"
	" UNION ALL"
	" SELECT 'schema ' || name FROM taskorch.schema"
	" WHERE name <> $1 AND jsonb_path_exists(schema, 'strict $.** ? (@.\"$ref\" == $n)',"
	"                                        jsonb_build_object('n', $1))"
	" LIMIT 1",
	1, {TEXTOID},
	NULL
};

static TaskorchPlan drop_plan = {
	"DELETE FROM taskorch.schema WHERE name = $1",
	1, {TEXTOID},
	NULL
};

/* Lock the schema's row; true when it exists (and the caller may change it). */
static bool
lock_own_schema(const char *name)
{
	Datum		values[1] = {CStringGetTextDatum(name)};
	bool		isnull;
	Oid			owner;

	if (taskorch_execute_as_owner(&owner_plan, values, NULL, false, 1) == 0)
		return false;
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (!acts_for(owner))
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("permission denied for schema \"%s\"", name),
				errdetail("The schema is owned by role %s.", GetUserNameFromId(owner, false)),
				errhint("Only its owner, a member of its role, or taskorch_admin may change it."));
	return true;
}

/* SQL: taskorch.define_schema(name, schema, description) -> name */
Datum
taskorch_define_schema(PG_FUNCTION_ARGS)
{
	char	   *name;
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	require_args(fcinfo, 2, "name and schema", "Pass a name and a JSON Schema object.");
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	check_name("schema", name);
	schema_check_definition(PG_GETARG_JSONB_P(1));
	SPI_connect();
	(void) lock_own_schema(name);
	values[0] = CStringGetTextDatum(name);
	values[1] = PG_GETARG_DATUM(1);
	values[2] = ObjectIdGetDatum(GetUserId());
	values[3] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	nulls[3] = PG_ARGISNULL(2) ? 'n' : ' ';
	taskorch_execute_as_owner(&upsert_plan, values, nulls, false, 0);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(name));
}

/* SQL: taskorch.drop_schema(name): refused while a task or schema refers to it */
Datum
taskorch_drop_schema(PG_FUNCTION_ARGS)
{
	char	   *name;
	Datum		values[1];
	bool		isnull;

	require_args(fcinfo, 1, "name", "Pass the name of a schema; see taskorch.schemas.");
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	values[0] = CStringGetTextDatum(name);
	SPI_connect();
	if (!lock_own_schema(name))
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("schema \"%s\" does not exist", name),
				errhint("taskorch.schemas lists the schemas."));
	if (taskorch_execute_as_owner(&users_plan, values, NULL, false, 1) == 1)
		ereport(ERROR,
				errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				errmsg("schema \"%s\" is still referred to by %s", name,
					   TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0],
														 SPI_tuptable->tupdesc, 1, &isnull))),
				errhint("Change what refers to it (its {\"$ref\": \"%s\"}) first.", name));
	taskorch_execute_as_owner(&drop_plan, values, NULL, false, 0);
	SPI_finish();
	PG_RETURN_VOID();
}
