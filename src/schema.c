/*-------------------------------------------------------------------------
 *
 * schema.c
 *	  JSON Schema for task payloads and outputs, checked in C.
 *
 * The subset: type (one name or a list; "integer" is a number without a
 * fraction), required, properties, additionalProperties (false or a
 * schema), items (one schema for every element), enum, const,
 * minimum/maximum, minLength/maxLength (in characters, 0 to 2147483647)
 * and pattern (a regular expression searched for, as JSON Schema's is).
 * A schema may be true (anything) or false (nothing), and {"$ref": "name"}
 * stands for a schema defined with taskorch.define_schema() (the reusable,
 * generic schemas).  title, description, default, examples, $schema, $id
 * and $comment are annotations and are ignored; any other keyword is
 * refused when the schema is defined, so that a typo cannot silently
 * accept everything.
 *
 * A value is checked against the whole schema and every failure is kept
 * (up to MAX_ERRORS), each naming its JSON path and its rule:
 *
 *	  $.user.email: minLength: 2 characters, fewer than 3
 *
 * How a check runs (one Check per validate() or schema_validate() call):
 *
 *	- Each node of the value is visited once, with the SET of schema
 *	  objects that apply to it: the ones its parent's properties,
 *	  additionalProperties or items give it, each followed by the chain of
 *	  schemas its $ref names.  A named schema reached twice (two $refs to
 *	  it, say) is in the set once, so a DAG of $refs costs what its
 *	  distinct schemas cost, not what their expansion would: the work is
 *	  at most (nodes of the value) x (schema objects, named ones included),
 *	  and a $ref cycle (which define_schema() refuses anyway) cannot loop.
 *	- A named schema is read once per check (one SPI query per name, not
 *	  per use) and kept in check_cxt with the other per-check state; its
 *	  address, and those of its parts, are stable until the end.
 *	- Memory: check_cxt holds the named schemas; the node at depth d works
 *	  in scratch context level[d], reset as soon as that node is done, so
 *	  what a check holds is its named schemas plus, per level of nesting,
 *	  one node's scratch (its set, its schemas' keywords).  Keywords are
 *	  found in place and enum/required lists walked in place; a failure's
 *	  text is made only while fewer than MAX_ERRORS are kept (FAIL does not
 *	  even evaluate its arguments otherwise), values quoted in it are
 *	  clipped to SHOW_LIMIT bytes, and only kept failures are copied to
 *	  the caller's context.  Patterns are compiled through PostgreSQL's
 *	  own bounded regex cache.
 *	- CHECK_FOR_INTERRUPTS() at every node and in every loop over a
 *	  schema's lists, so that a cancel or statement_timeout stops a check
 *	  promptly; check_stack_depth() where the recursion follows the value.
 *
 * define_schema() refuses a definition whose $refs lead back to the schema
 * itself (under a lock on taskorch.schema, reading the latest committed
 * definitions), so stored named schemas have no cycles.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "regex/regex.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

PG_FUNCTION_INFO_V1(taskorch_validate);
PG_FUNCTION_INFO_V1(taskorch_check_schema);

#define MAX_ERRORS 10			/* failures kept and shown */
#define MAX_DEPTH 32			/* nesting of one schema, when it is defined */
#define SHOW_LIMIT 100			/* bytes of a value or key quoted in a failure */
#define NAME_KEY 256			/* longer $ref names cannot exist (check_name) */

/* a named schema (define_schema()), by its name */
typedef struct SchemaNameArgs
{
	PlanValue	name;
} SchemaNameArgs;

typedef struct DefinitionRow
{
	PlanValue	schema;
} DefinitionRow;

static const PlanField schema_name_params[] = {
	PLAN_PARAM(SchemaNameArgs, name, TEXTOID),
};
static const PlanField definition_columns[] = {
	PLAN_COLUMN(DefinitionRow, schema),
};
static NamedPlan definition_plan = {
	.sql = "SELECT schema FROM taskorch.schema WHERE name = :name",
	PLAN_PARAMS(schema_name_params), PLAN_COLUMNS(definition_columns)
};

/* type keyword, as a set of bits */
#define T_NULL		0x01
#define T_BOOLEAN	0x02
#define T_NUMBER	0x04
#define T_INTEGER	0x08
#define T_STRING	0x10
#define T_OBJECT	0x20
#define T_ARRAY		0x40

/* A named schema, read once per check. */
typedef struct Named
{
	char		name[NAME_KEY];
	JsonbValue	root;
	uint64		seen;			/* == Check.stamp: in the set being built */
} Named;

typedef struct Check
{
	MemoryContext out;			/* the caller's: kept failures */
	MemoryContext cxt;			/* named schemas, levels; deleted at the end */
	MemoryContext *level;		/* scratch per depth of the value */
	int			nlevels;
	HTAB	   *named;			/* name -> Named */
	uint64		stamp;			/* of the set being built */
	List	   *errors;			/* char *: "path: rule: what" */
	bool		truncated;		/* more than MAX_ERRORS */
} Check;

/* A JSON path, on the stack while the value is walked; rendered on failure. */
typedef struct Path
{
	const struct Path *up;		/* NULL: the root, "$" */
	const char *key;			/* property name; NULL: array element */
	int			keylen;
	int			index;
} Path;

/*
 * The schemas that apply to one node of the value, in order, each once:
 * schema objects (jbvBinary) and at most one false.  Only a named
 * schema's root can be reached twice (every other schema object has one
 * parent, itself in the parent node's set once), so Named.seen is all the
 * bookkeeping repeats need.
 */
typedef struct Set
{
	JsonbValue *items;
	int			n;
	int			cap;
	bool		has_false;
} Set;

/* The keywords of one schema object, found in place for one node. */
typedef struct Keywords
{
	JsonbValue	type;			/* jbvNull (0): absent */
	JsonbValue	enum_list;
	JsonbValue	constant;
	bool		has_const;		/* const may be null */
	JsonbValue	minimum;
	JsonbValue	maximum;
	JsonbValue	min_length;
	JsonbValue	max_length;
	JsonbValue	pattern;
	JsonbValue	required;
	JsonbValue	properties;
	JsonbValue	additional;
	JsonbValue	items;
	bool		live;			/* its type matched: it applies to the children */
} Keywords;

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

static bool
is_key(JsonbValue *k, const char *name)
{
	return k->val.string.len == (int) strlen(name) &&
		memcmp(k->val.string.val, name, k->val.string.len) == 0;
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

/*
 * Equal as JSON (1 equals 1.0), without building anything: scalars are
 * compared directly, containers in place.
 */
static bool
equal_values(JsonbValue *a, JsonbValue *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type)
	{
		case jbvNull:
			return true;
		case jbvBool:
			return a->val.boolean == b->val.boolean;
		case jbvNumeric:
			return numeric_compare(a->val.numeric, b->val.numeric) == 0;
		case jbvString:
			return a->val.string.len == b->val.string.len &&
				memcmp(a->val.string.val, b->val.string.val, a->val.string.len) == 0;
		case jbvBinary:
			if (is_object(a) != is_object(b) ||
				JsonContainerSize(a->val.binary.data) != JsonContainerSize(b->val.binary.data))
				return false;
			return compareJsonbContainers(a->val.binary.data, b->val.binary.data) == 0;
		default:
			return false;
	}
}

/* Append s (len bytes) as a JSON string, clipped to SHOW_LIMIT bytes. */
static void
show_string(StringInfo buf, const char *s, int len)
{
	int			keep = len > SHOW_LIMIT ? pg_mbcliplen(s, len, SHOW_LIMIT) : len;
	char	   *part = pnstrdup(s, keep);

	escape_json(buf, part);
	pfree(part);
	if (keep < len)
	{
		buf->data[--buf->len] = '\0';	/* the closing quote */
		appendStringInfoString(buf, "...\"");
	}
}

static void
show_scalar(StringInfo buf, JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			appendStringInfoString(buf, "null");
			break;
		case jbvBool:
			appendStringInfoString(buf, v->val.boolean ? "true" : "false");
			break;
		case jbvNumeric:
			{
				char	   *s = DatumGetCString(DirectFunctionCall1(numeric_out,
																	NumericGetDatum(v->val.numeric)));
				int			len = strlen(s);

				appendBinaryStringInfo(buf, s, Min(len, SHOW_LIMIT));
				if (len > SHOW_LIMIT)
					appendStringInfoString(buf, "...");
				pfree(s);
				break;
			}
		case jbvString:
			show_string(buf, v->val.string.val, v->val.string.len);
			break;
		default:
			break;
	}
}

/*
 * v as JSON text, as jsonb prints it, cut off with "..." after about
 * SHOW_LIMIT bytes: quoting a huge value costs no more than a small one.
 */
static char *
show(JsonbValue *v)
{
	StringInfoData buf;
	JsonbIterator *it;
	JsonbValue	e;
	JsonbIteratorToken tok;
	bool		sep = false;

	initStringInfo(&buf);
	if (v->type != jbvBinary)
	{
		show_scalar(&buf, v);
		return buf.data;
	}
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, false)) != WJB_DONE)
	{
		if (buf.len > SHOW_LIMIT)
		{
			appendStringInfoString(&buf, "...");
			break;				/* the iterator is scratch memory */
		}
		if (sep && tok != WJB_END_ARRAY && tok != WJB_END_OBJECT)
			appendStringInfoString(&buf, ", ");
		switch (tok)
		{
			case WJB_BEGIN_ARRAY:
				appendStringInfoChar(&buf, '[');
				sep = false;
				break;
			case WJB_BEGIN_OBJECT:
				appendStringInfoChar(&buf, '{');
				sep = false;
				break;
			case WJB_KEY:
				show_string(&buf, e.val.string.val, e.val.string.len);
				appendStringInfoString(&buf, ": ");
				sep = false;
				break;
			case WJB_VALUE:
			case WJB_ELEM:
				show_scalar(&buf, &e);
				sep = true;
				break;
			case WJB_END_ARRAY:
				appendStringInfoChar(&buf, ']');
				sep = true;
				break;
			case WJB_END_OBJECT:
				appendStringInfoChar(&buf, '}');
				sep = true;
				break;
			default:
				break;
		}
	}
	return buf.data;
}


/* "$", "$.a.b", "$.tags[1]": keys clipped to SHOW_LIMIT bytes. */
static char *
path_string(const Path *path)
{
	StringInfoData buf;
	const Path **steps;
	int			n = 0;

	for (const Path *p = path; p->up; p = p->up)
		n++;
	steps = palloc(sizeof(Path *) * (n + 1));
	n = 0;
	for (const Path *p = path; p->up; p = p->up)
		steps[n++] = p;
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '$');
	while (n-- > 0)
	{
		const Path *p = steps[n];

		if (p->key == NULL)
			appendStringInfo(&buf, "[%d]", p->index);
		else
		{
			int			keep = p->keylen > SHOW_LIMIT ?
				pg_mbcliplen(p->key, p->keylen, SHOW_LIMIT) : p->keylen;

			appendStringInfoChar(&buf, '.');
			appendBinaryStringInfo(&buf, p->key, keep);
			if (keep < p->keylen)
				appendStringInfoString(&buf, "...");
		}
	}
	pfree(steps);
	return buf.data;
}

/* ---------------------------------------------------------------------
 * Failures
 * ---------------------------------------------------------------------
 */

/* Whether one more failure is kept; if not, the list is marked truncated. */
static bool
keep_failure(Check *c)
{
	if (list_length(c->errors) >= MAX_ERRORS)
	{
		c->truncated = true;
		return false;
	}
	return true;
}

static void add_failure(Check *c, const Path *path, const char *rule, const char *fmt,...)
			pg_attribute_printf(4, 5);

static void
add_failure(Check *c, const Path *path, const char *rule, const char *fmt,...)
{
	StringInfoData buf;
	va_list		args;
	MemoryContext old;

	initStringInfo(&buf);
	appendStringInfo(&buf, "%s: %s: ", path_string(path), rule);
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
	old = MemoryContextSwitchTo(c->out);
	c->errors = lappend(c->errors, pstrdup(buf.data));
	MemoryContextSwitchTo(old);
	pfree(buf.data);
}

/*
 * Record a failure: the message (and the show() calls in its arguments)
 * is made only when it is kept, so that a value failing a million times
 * costs a million comparisons, not a million messages.  It is made in the
 * scratch context and only the kept text is copied to the caller's.
 */
#define FAIL(c, path, rule, ...) \
	do { \
		if (keep_failure(c)) \
			add_failure((c), (path), (rule), __VA_ARGS__); \
	} while (0)

/* ---------------------------------------------------------------------
 * A check's state: named schemas, read once; scratch contexts per level
 * ---------------------------------------------------------------------
 */

static void
check_begin(Check *c)
{
	HASHCTL		ctl;

	memset(c, 0, sizeof(Check));
	c->out = CurrentMemoryContext;
	c->cxt = AllocSetContextCreate(CurrentMemoryContext, "taskorch schema check",
								   ALLOCSET_DEFAULT_SIZES);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = NAME_KEY;
	ctl.entrysize = sizeof(Named);
	ctl.hcxt = c->cxt;
	c->named = hash_create("taskorch named schemas", 16, &ctl,
						   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
}

static void
check_end(Check *c)
{
	MemoryContextDelete(c->cxt);	/* the levels too */
	c->cxt = NULL;
}

/* The scratch context of depth `depth`, made when first needed. */
static MemoryContext
level(Check *c, int depth)
{
	if (depth >= c->nlevels)
	{
		int			n = Max(depth + 1, c->nlevels * 2);

		c->level = c->level ?
			repalloc(c->level, sizeof(MemoryContext) * n) :
			MemoryContextAlloc(c->cxt, sizeof(MemoryContext) * n);
		for (int i = c->nlevels; i < n; i++)
			c->level[i] = AllocSetContextCreate(c->cxt, "taskorch schema check level",
												ALLOCSET_SMALL_SIZES);
		c->nlevels = n;
	}
	return c->level[depth];
}

/*
 * The schema defined as `name`, or NULL; latest: read with a snapshot
 * taken now (define_schema's cycle check) rather than the statement's.
 * The Jsonb is copied into the current memory context.
 */
static Jsonb *
named_schema(const char *name, bool latest)
{
	SchemaNameArgs args = {pv_text(name)};
	MemoryContext caller = CurrentMemoryContext;
	Jsonb	   *schema = NULL;
	int			n;

	SPI_connect();
	n = latest ? taskorch_execute_args_latest(&definition_plan, &args, 1) :
		taskorch_execute_args(&definition_plan, &args, true, 1);
	if (n == 1)
	{
		DefinitionRow row;
		MemoryContext old;

		taskorch_read_row(&definition_plan, 0, &row);
		old = MemoryContextSwitchTo(caller);
		schema = pv_jsonb_copy(row.schema);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	return schema;
}

static void no_such_schema(const char *name) pg_attribute_noreturn();

static void
no_such_schema(const char *name)
{
	ereport(ERROR,
			errcode(ERRCODE_UNDEFINED_OBJECT),
			errmsg("schema \"%s\" does not exist", name),
			errhint("Define it with taskorch.define_schema('%s', ...); see taskorch.schemas.", name));
}

/* The named schema `ref` (a jbvString) stands for, read once per check. */
static Named *
resolve_ref(Check *c, JsonbValue *ref)
{
	char		name[NAME_KEY];
	Named	   *entry;
	bool		found;
	Jsonb	   *schema;
	MemoryContext old;

	if (ref->val.string.len >= NAME_KEY)	/* not a name: show its start */
		no_such_schema(pnstrdup(ref->val.string.val,
								pg_mbcliplen(ref->val.string.val, ref->val.string.len, SHOW_LIMIT)));
	memcpy(name, ref->val.string.val, ref->val.string.len);
	name[ref->val.string.len] = '\0';
	entry = hash_search(c->named, name, HASH_FIND, NULL);
	if (entry)
		return entry;
	old = MemoryContextSwitchTo(c->cxt);
	schema = named_schema(name, false);
	MemoryContextSwitchTo(old);
	if (schema == NULL)
		no_such_schema(name);
	entry = hash_search(c->named, name, HASH_ENTER, &found);
	entry->root = jsonb_value(schema);
	entry->seen = 0;
	return entry;
}

static int
type_bit(JsonbValue *name)
{
	static const char *const names[] = {"null", "boolean", "number", "integer", "string",
	"object", "array"};

	if (name->type == jbvString)
		for (int i = 0; i < (int) lengthof(names); i++)
			if (is_key(name, names[i]))
				return 1 << i;
	return 0;
}

/* ---------------------------------------------------------------------
 * Checking a value
 * ---------------------------------------------------------------------
 */

static void
set_add(Set *set, JsonbValue *schema)
{
	if (schema->type != jbvBool && !is_object(schema))
		elog(ERROR, "taskorch: a stored schema is neither an object nor true or false");
	if (schema->type == jbvBool)
	{
		if (schema->val.boolean || set->has_false)
			return;				/* true adds nothing; false is there once */
		set->has_false = true;
	}
	if (set->n == set->cap)
	{
		set->cap = set->cap ? set->cap * 2 : 8;
		set->items = set->items ? repalloc(set->items, sizeof(JsonbValue) * set->cap) :
			palloc(sizeof(JsonbValue) * set->cap);
	}
	set->items[set->n++] = *schema;
}

/*
 * Add schema and the chain of schemas its $ref names (and theirs) to the
 * set being built, each $ref's target before the schema naming it (the
 * order failures are reported in).  A named schema already in the set
 * ends the chain: it is there with its own chain.
 */
static void
add_schema(Check *c, Set *set, JsonbValue *schema)
{
	int			start = set->n;
	JsonbValue	cur = *schema;

	for (;;)
	{
		JsonbValue	ref;
		Named	   *named;

		CHECK_FOR_INTERRUPTS();
		set_add(set, &cur);
		if (!is_object(&cur) ||
			!getKeyJsonValueFromContainer(cur.val.binary.data, "$ref", 4, &ref) ||
			ref.type != jbvString)
			break;
		named = resolve_ref(c, &ref);
		if (named->seen == c->stamp)
			break;
		named->seen = c->stamp;
		cur = named->root;
	}
	for (int i = start, j = set->n - 1; i < j; i++, j--)
	{
		JsonbValue	t = set->items[i];

		set->items[i] = set->items[j];
		set->items[j] = t;
	}
}

/* Find the keywords of schema object `schema` (every one is optional). */
static void
keywords_of(JsonbValue *schema, Keywords *kw)
{
	JsonbIterator *it = JsonbIteratorInit(schema->val.binary.data);
	JsonbValue	k;
	JsonbValue	v;
	JsonbIteratorToken tok;

	StaticAssertStmt(jbvNull == 0, "Keywords relies on jbvNull being 0");
	memset(kw, 0, sizeof(Keywords));
	kw->live = true;
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		if (tok != WJB_KEY)
			continue;
		(void) JsonbIteratorNext(&it, &v, true);
		if (is_key(&k, "type"))
			kw->type = v;
		else if (is_key(&k, "enum") && is_array(&v))
			kw->enum_list = v;
		else if (is_key(&k, "const"))
		{
			kw->constant = v;
			kw->has_const = true;
		}
		else if (is_key(&k, "minimum") && v.type == jbvNumeric)
			kw->minimum = v;
		else if (is_key(&k, "maximum") && v.type == jbvNumeric)
			kw->maximum = v;
		else if (is_key(&k, "minLength") && v.type == jbvNumeric)
			kw->min_length = v;
		else if (is_key(&k, "maxLength") && v.type == jbvNumeric)
			kw->max_length = v;
		else if (is_key(&k, "pattern") && v.type == jbvString)
			kw->pattern = v;
		else if (is_key(&k, "required") && is_array(&v))
			kw->required = v;
		else if (is_key(&k, "properties") && is_object(&v))
			kw->properties = v;
		else if (is_key(&k, "additionalProperties"))
			kw->additional = v;
		else if (is_key(&k, "items"))
			kw->items = v;
	}
}

/* What one node's checks need to know of it, computed once. */
typedef struct ValueNode
{
	JsonbValue *v;
	int			chars;			/* string length in characters; -1: not yet */
	pg_wchar   *wide;			/* the string for the regex library */
	int			wlen;
} ValueNode;

static bool
type_ok(JsonbValue *type, JsonbValue *value)
{
	int			want = 0;
	int			have;

	if (type->type == jbvString)
		want = type_bit(type);
	else if (is_array(type))
	{
		JsonbIterator *it = JsonbIteratorInit(type->val.binary.data);
		JsonbValue	name;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &name, true)) != WJB_DONE)
			if (tok == WJB_ELEM)
				want |= type_bit(&name);	/* []: nothing matches */
	}
	switch (value->type)
	{
		case jbvNull:
			have = T_NULL;
			break;
		case jbvBool:
			have = T_BOOLEAN;
			break;
		case jbvNumeric:
			if (want & T_NUMBER)
				return true;
			return (want & T_INTEGER) && is_integral(value->val.numeric);
		case jbvString:
			have = T_STRING;
			break;
		default:
			have = is_object(value) ? T_OBJECT : T_ARRAY;
			break;
	}
	return (want & have) != 0;
}

/* Lists (enum, required) are walked in place: nothing is allocated per element. */
static bool
in_enum(JsonbValue *choices, JsonbValue *value)
{
	JsonbIterator *it = JsonbIteratorInit(choices->val.binary.data);
	JsonbValue	e;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
	{
		CHECK_FOR_INTERRUPTS();
		if (tok == WJB_ELEM && equal_values(&e, value))
			return true;		/* the iterator is scratch memory */
	}
	return false;
}

/* A count keyword's value; out of range (refused when defined) saturates. */
static int64
count_of(JsonbValue *v)
{
	bool		err = false;
	int32		n = numeric_int4_opt_error(v->val.numeric, &err);

	if (!err)
		return n;
	return DatumGetInt32(DirectFunctionCall1(numeric_sign, NumericGetDatum(v->val.numeric))) > 0 ?
		PG_INT64_MAX : -1;
}

static void
check_string(Check *c, Keywords *kw, ValueNode *node, const Path *path)
{
	JsonbValue *value = node->v;

	if (kw->min_length.type != jbvNull || kw->max_length.type != jbvNull)
	{
		if (node->chars < 0)
			node->chars = pg_mbstrlen_with_len(value->val.string.val, value->val.string.len);
		if (kw->min_length.type != jbvNull && node->chars < count_of(&kw->min_length))
			FAIL(c, path, "minLength", "%d characters, fewer than %s",
				 node->chars, show(&kw->min_length));
		if (kw->max_length.type != jbvNull && node->chars > count_of(&kw->max_length))
			FAIL(c, path, "maxLength", "%d characters, more than %s",
				 node->chars, show(&kw->max_length));
	}
	if (kw->pattern.type != jbvNull)
	{
		/* compiled once per backend while it stays among PostgreSQL's cached ones */
		regex_t    *re = RE_compile_and_cache(cstring_to_text_with_len(kw->pattern.val.string.val,
																	   kw->pattern.val.string.len),
											  REG_ADVANCED, DEFAULT_COLLATION_OID);
		int			rc;

		if (node->wide == NULL)
		{
			node->wide = palloc((value->val.string.len + 1) * sizeof(pg_wchar));
			node->wlen = pg_mb2wchar_with_len(value->val.string.val, node->wide,
											  value->val.string.len);
		}
		rc = pg_regexec(re, node->wide, node->wlen, 0, NULL, 0, NULL, 0);
		if (rc == REG_NOMATCH)
			FAIL(c, path, "pattern", "%s does not match %s", show(value), show(&kw->pattern));
		else if (rc != REG_OKAY)
		{
			char		msg[100];

			CHECK_FOR_INTERRUPTS();	/* REG_CANCEL: report the cancel itself */
			pg_regerror(rc, re, msg, sizeof(msg));
			ereport(ERROR,
					errcode(ERRCODE_INVALID_REGULAR_EXPRESSION),
					errmsg("pattern %s failed at %s: %s",
						   show(&kw->pattern), path_string(path), msg),
					errhint("Simplify the schema's pattern."));
		}
	}
}

/*
 * The rules of schema object kw that concern node itself (not its
 * children).  False when the type is wrong: the other rules would only
 * repeat it, and the schema says nothing of the children then.
 */
static bool
check_keywords(Check *c, Keywords *kw, ValueNode *node, const Path *path)
{
	JsonbValue *value = node->v;

	if (kw->type.type != jbvNull && !type_ok(&kw->type, value))
	{
		if (kw->type.type == jbvString)
			FAIL(c, path, "type", "expected %s, got %s", string_of(&kw->type), type_of(value));
		else
			FAIL(c, path, "type", "expected one of %s, got %s", show(&kw->type), type_of(value));
		return false;
	}
	if (kw->enum_list.type != jbvNull && !in_enum(&kw->enum_list, value))
		FAIL(c, path, "enum", "%s is not one of %s", show(value), show(&kw->enum_list));
	if (kw->has_const && !equal_values(&kw->constant, value))
		FAIL(c, path, "const", "%s is not %s", show(value), show(&kw->constant));
	if (value->type == jbvNumeric)
	{
		if (kw->minimum.type != jbvNull &&
			numeric_compare(value->val.numeric, kw->minimum.val.numeric) < 0)
			FAIL(c, path, "minimum", "%s is less than %s", show(value), show(&kw->minimum));
		if (kw->maximum.type != jbvNull &&
			numeric_compare(value->val.numeric, kw->maximum.val.numeric) > 0)
			FAIL(c, path, "maximum", "%s is greater than %s", show(value), show(&kw->maximum));
	}
	else if (value->type == jbvString)
		check_string(c, kw, node, path);
	else if (is_object(value) && kw->required.type != jbvNull)
	{
		JsonbIterator *it = JsonbIteratorInit(kw->required.val.binary.data);
		JsonbValue	name;
		JsonbValue	found;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &name, true)) != WJB_DONE)
		{
			CHECK_FOR_INTERRUPTS();
			if (tok == WJB_ELEM && name.type == jbvString &&
				!getKeyJsonValueFromContainer(value->val.binary.data, name.val.string.val,
											  name.val.string.len, &found))
			{
				Path		missing = {path, name.val.string.val, name.val.string.len, 0};

				FAIL(c, &missing, "required", "missing");
			}
		}
	}
	return true;
}

/*
 * Check value (at depth, in scratch context level(depth)) against every
 * schema of set, then each of its children against the schemas they get.
 * A child is checked in level(depth + 1), reset when it is done.
 */
static void
check_node(Check *c, Set *set, JsonbValue *value, const Path *path, int depth)
{
	MemoryContext here = CurrentMemoryContext;
	MemoryContext below;
	ValueNode	node = {value, -1, NULL, 0};
	Keywords   *kws = palloc(sizeof(Keywords) * set->n);
	bool		any = false;

	CHECK_FOR_INTERRUPTS();
	check_stack_depth();
	Assert(here == level(c, depth));
	for (int i = 0; i < set->n; i++)
	{
		Keywords   *kw = &kws[i];

		if (set->items[i].type == jbvBool)	/* false */
		{
			FAIL(c, path, "false", "no value is allowed");
			memset(kw, 0, sizeof(Keywords));
			continue;
		}
		keywords_of(&set->items[i], kw);
		kw->live = check_keywords(c, kw, &node, path);
		if (kw->live && (kw->properties.type != jbvNull || kw->additional.type != jbvNull ||
						 kw->items.type != jbvNull))
			any = true;
	}
	if (!any || value->type != jbvBinary)
		return;
	below = level(c, depth + 1);
	if (is_object(value))
	{
		JsonbIterator *it = JsonbIteratorInit(value->val.binary.data);
		JsonbValue	k;
		JsonbValue	v;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
		{
			Path		child = {path, k.val.string.val, k.val.string.len, 0};
			Set			childset = {NULL, 0, 0, false};

			if (tok != WJB_KEY)
				continue;
			(void) JsonbIteratorNext(&it, &v, true);
			MemoryContextSwitchTo(below);
			c->stamp++;
			for (int i = 0; i < set->n; i++)
			{
				Keywords   *kw = &kws[i];
				JsonbValue	prop;

				if (!kw->live)
					continue;
				if (kw->properties.type != jbvNull &&
					getKeyJsonValueFromContainer(kw->properties.val.binary.data,
												 k.val.string.val, k.val.string.len, &prop))
					add_schema(c, &childset, &prop);
				else if (kw->additional.type == jbvBool && !kw->additional.val.boolean)
					FAIL(c, &child, "additionalProperties", "not allowed");
				else if (kw->additional.type != jbvNull)
					add_schema(c, &childset, &kw->additional);
			}
			if (childset.n > 0)
				check_node(c, &childset, &v, &child, depth + 1);
			MemoryContextSwitchTo(here);
			MemoryContextReset(below);
		}
	}
	else
	{
		Set			childset = {NULL, 0, 0, false};
		JsonbIterator *it;
		JsonbValue	v;
		JsonbIteratorToken tok;
		int			i = 0;

		c->stamp++;
		for (int j = 0; j < set->n; j++)
			if (kws[j].live && kws[j].items.type != jbvNull)
				add_schema(c, &childset, &kws[j].items);
		if (childset.n == 0)
			return;
		it = JsonbIteratorInit(value->val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			Path		child = {path, NULL, 0, i};

			if (tok != WJB_ELEM)
				continue;
			i++;
			MemoryContextSwitchTo(below);
			check_node(c, &childset, &v, &child, depth + 1);
			MemoryContextSwitchTo(here);
			MemoryContextReset(below);
		}
	}
}

/* Check value against schema: the failures are in c->errors. */
static void
check_run(Check *c, Jsonb *schema, Jsonb *value)
{
	JsonbValue	s = jsonb_value(schema);
	JsonbValue	v = jsonb_value(value);
	Path		root = {NULL, NULL, 0, 0};
	MemoryContext old = MemoryContextSwitchTo(level(c, 0));
	Set			set = {NULL, 0, 0, false};

	c->stamp++;
	add_schema(c, &set, &s);
	check_node(c, &set, &v, &root, 0);
	MemoryContextSwitchTo(old);
	MemoryContextReset(level(c, 0));
}

/*
 * Refuse `value` (what: "payload", "output") of task `task` unless it
 * matches `schema`: the message names the first failure, the detail all.
 */
void
schema_validate(Jsonb *schema, Jsonb *value, const char *what, const char *task)
{
	Check		c;
	StringInfoData detail;
	ListCell   *lc;

	check_begin(&c);
	check_run(&c, schema, value);
	check_end(&c);
	if (c.errors == NIL)
		return;
	initStringInfo(&detail);
	foreach(lc, c.errors)
		appendStringInfo(&detail, "%s%s", detail.len ? "\n" : "", (char *) lfirst(lc));
	if (c.truncated)
		appendStringInfo(&detail, "\n(only the first %d failures are shown)", MAX_ERRORS);
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("%s of task \"%s\" does not match its schema: %s", what, task,
				   (char *) linitial(c.errors)),
			errdetail("%s", detail.data),
			errhint("The task's %s_schema is in taskorch.tasks.", what));
}

/* ---------------------------------------------------------------------
 * Checking a schema when it is defined
 * ---------------------------------------------------------------------
 */

static const char *const keyword_hint =
"Keywords: type, required, properties, additionalProperties, items, enum, const, "
"minimum, maximum, minLength, maxLength, pattern, $ref.";

static void
bad_schema(const Path *path, const char *why)
{
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("invalid schema at %s: %s", path_string(path), why),
			errhint("%s", keyword_hint));
}

/* Refuse v at path: "<v> is not <what>". */
static void
bad_value(const Path *path, JsonbValue *v, const char *what)
{
	bad_schema(path, psprintf("%s is not %s", show(v), what));
}

static void check_definition(Check *c, JsonbValue *schema, const Path *path, int depth);

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
	{
		CHECK_FOR_INTERRUPTS();
		if (tok == WJB_ELEM && !ok(&e))
			return false;
	}
	return true;
}

static bool
is_type_name(JsonbValue *v)
{
	return type_bit(v) != 0;
}

static bool
is_string(JsonbValue *v)
{
	return v->type == jbvString;
}

/* A count (minLength, maxLength): a whole number from 0 to PG_INT32_MAX. */
static bool
is_count(JsonbValue *v)
{
	bool		err = false;

	if (v->type != jbvNumeric || !is_integral(v->val.numeric))
		return false;
	return numeric_int4_opt_error(v->val.numeric, &err) >= 0 && !err;
}

/* Refuse a pattern that does not compile (it is compiled again when used). */
static void
check_pattern(const Path *at, JsonbValue *v)
{
	pg_wchar   *wide = palloc((v->val.string.len + 1) * sizeof(pg_wchar));
	int			wlen = pg_mb2wchar_with_len(v->val.string.val, wide, v->val.string.len);
	regex_t		re;
	int			rc = pg_regcomp(&re, wide, wlen, REG_ADVANCED, DEFAULT_COLLATION_OID);
	char		msg[100];

	pfree(wide);
	if (rc == REG_OKAY)
	{
		pg_regfree(&re);
		return;
	}
	CHECK_FOR_INTERRUPTS();		/* REG_CANCEL: report the cancel itself */
	pg_regerror(rc, &re, msg, sizeof(msg));
	ereport(ERROR,
			errcode(ERRCODE_INVALID_REGULAR_EXPRESSION),
			errmsg("invalid schema at %s: %s is not a regular expression: %s",
				   path_string(at), show(v), msg),
			errhint("A pattern is a PostgreSQL regular expression, searched for in the string."));
}

/* One keyword of a schema object. */
static void
check_keyword(Check *c, JsonbValue *k, JsonbValue *v, const Path *path, int depth)
{
	Path		at = {path, k->val.string.val, k->val.string.len, 0};

	if (is_key(k, "type"))
	{
		if (!is_type_name(v) && !all_elements(v, is_type_name))
			bad_value(&at, v, "a type name (null, boolean, number, integer, string, object, array) or a list of them");
	}
	else if (is_key(k, "required"))
	{
		if (!all_elements(v, is_string))
			bad_value(&at, v, "a list of property names");
	}
	else if (is_key(k, "properties"))
	{
		JsonbIterator *it;
		JsonbValue	name;
		JsonbValue	s;
		JsonbIteratorToken tok;

		if (!is_object(v))
			bad_value(&at, v, "an object of schemas");
		it = JsonbIteratorInit(v->val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &name, true)) != WJB_DONE)
			if (tok == WJB_KEY)
			{
				Path		prop = {&at, name.val.string.val, name.val.string.len, 0};

				(void) JsonbIteratorNext(&it, &s, true);
				check_definition(c, &s, &prop, depth + 1);
			}
	}
	else if (is_key(k, "additionalProperties") || is_key(k, "items"))
		check_definition(c, v, &at, depth + 1);
	else if (is_key(k, "enum"))
	{
		if (!is_array(v))
			bad_value(&at, v, "a list of values");
	}
	else if (is_key(k, "minimum") || is_key(k, "maximum"))
	{
		if (v->type != jbvNumeric)
			bad_value(&at, v, "a number");
	}
	else if (is_key(k, "minLength") || is_key(k, "maxLength"))
	{
		if (!is_count(v))
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("invalid schema at %s: %s is not a whole number from 0 to %d",
						   path_string(&at), show(v), PG_INT32_MAX),
					errhint("%s counts characters: give it a whole number from 0 to %d.",
							string_of(k), PG_INT32_MAX));
	}
	else if (is_key(k, "pattern"))
	{
		if (v->type != jbvString)
			bad_value(&at, v, "a regular expression");
		check_pattern(&at, v);
	}
	else if (is_key(k, "$ref"))
	{
		if (v->type != jbvString)
			bad_value(&at, v, "the name of a schema defined with taskorch.define_schema()");
		(void) resolve_ref(c, v);
	}
	else if (!is_key(k, "const") && !is_key(k, "title") && !is_key(k, "description") &&
			 !is_key(k, "default") && !is_key(k, "examples") && !is_key(k, "$schema") &&
			 !is_key(k, "$id") && !is_key(k, "$comment"))
		bad_schema(&at, psprintf("unsupported keyword %s", show(k)));
}

static void
check_definition(Check *c, JsonbValue *schema, const Path *path, int depth)
{
	JsonbIterator *it;
	JsonbValue	k;
	JsonbValue	v;
	JsonbIteratorToken tok;

	CHECK_FOR_INTERRUPTS();
	check_stack_depth();
	if (depth > MAX_DEPTH)
		bad_schema(path, psprintf("nested more than %d levels", MAX_DEPTH));
	if (schema->type == jbvBool)
		return;
	if (!is_object(schema))
		bad_value(path, schema, "a schema (an object, true or false)");
	it = JsonbIteratorInit(schema->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
		if (tok == WJB_KEY)
		{
			(void) JsonbIteratorNext(&it, &v, true);
			check_keyword(c, &k, &v, path, depth);
		}
}

static void
check_schema_in(Check *c, Jsonb *schema)
{
	JsonbValue	s = jsonb_value(schema);
	Path		root = {NULL, NULL, 0, 0};
	MemoryContext old = MemoryContextSwitchTo(level(c, 0));

	check_definition(c, &s, &root, 0);
	MemoryContextSwitchTo(old);
	MemoryContextReset(level(c, 0));
}

/* Refuse a schema using anything but the supported subset. */
void
schema_check_definition(Jsonb *schema)
{
	Check		c;

	check_begin(&c);
	check_schema_in(&c, schema);
	check_end(&c);
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
	Jsonb	   *value = PG_GETARG_JSONB_P(0);
	Check		c;
	Datum	   *elems;
	int			n = 0;
	ListCell   *lc;

	check_begin(&c);
	check_schema_in(&c, schema);	/* its named schemas are read once, here */
	check_run(&c, schema, value);
	check_end(&c);
	elems = palloc(sizeof(Datum) * (list_length(c.errors) + 1));
	foreach(lc, c.errors)
		elems[n++] = CStringGetTextDatum((char *) lfirst(lc));
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* ---------------------------------------------------------------------
 * Named schemas: define_schema() and drop_schema()
 * ---------------------------------------------------------------------
 */

PG_FUNCTION_INFO_V1(taskorch_define_schema);
PG_FUNCTION_INFO_V1(taskorch_drop_schema);

typedef struct OwnerRow
{
	PlanValue	owner;
} OwnerRow;

static const PlanField owner_columns[] = {
	PLAN_COLUMN(OwnerRow, owner),
};
static NamedPlan owner_plan = {
	.sql = "SELECT owner::oid AS owner FROM taskorch.schema WHERE name = :name FOR UPDATE",
	PLAN_PARAMS(schema_name_params), PLAN_COLUMNS(owner_columns)
};

typedef struct UpsertArgs
{
	PlanValue	name;
	PlanValue	schema;
	PlanValue	owner;
	PlanValue	description;
} UpsertArgs;

static const PlanField upsert_params[] = {
	PLAN_PARAM(UpsertArgs, name, TEXTOID),
	PLAN_PARAM(UpsertArgs, schema, JSONBOID),
	PLAN_PARAM(UpsertArgs, owner, OIDOID),
	PLAN_PARAM(UpsertArgs, description, TEXTOID),
};
static NamedPlan upsert_plan = {
	.sql = "INSERT INTO taskorch.schema (name, schema, owner, description)"
	" VALUES (:name, :schema, :owner::regrole, :description)"
	" ON CONFLICT (name) DO UPDATE SET schema = EXCLUDED.schema,"
	"        description = EXCLUDED.description, updated_at = now()",
	PLAN_PARAMS(upsert_params)
};

typedef struct UserRow
{
	PlanValue	referrer;		/* 'task <id>' or 'schema <name>' */
} UserRow;

static const PlanField user_columns[] = {
	PLAN_COLUMN(UserRow, referrer),
};
/* Who still refers to the schema: a task's schemas, or another named schema. */
static NamedPlan users_plan = {
	.sql = "SELECT 'task ' || id AS referrer FROM taskorch.task"
	" WHERE jsonb_path_exists(coalesce(payload_schema, 'true') || coalesce(output_schema, 'true'),"
	"                         'strict $.** ? (@.\"$ref\" == $n)', jsonb_build_object('n', :name))"
	" UNION ALL"
	" SELECT 'schema ' || name FROM taskorch.schema"
	" WHERE name <> :name AND jsonb_path_exists(schema, 'strict $.** ? (@.\"$ref\" == $n)',"
	"                                           jsonb_build_object('n', :name))"
	" LIMIT 1",
	PLAN_PARAMS(schema_name_params), PLAN_COLUMNS(user_columns)
};

static NamedPlan drop_plan = {
	.sql = "DELETE FROM taskorch.schema WHERE name = :name",
	PLAN_PARAMS(schema_name_params)
};

/* Lock the schema's row; true when it exists (and the caller may change it). */
static bool
lock_own_schema(const char *name)
{
	SchemaNameArgs args = {pv_text(name)};
	OwnerRow	row;
	Oid			owner;

	if (taskorch_execute_args(&owner_plan, &args, false, 1) == 0)
		return false;
	taskorch_read_row(&owner_plan, 0, &row);
	owner = DatumGetObjectId(row.owner.datum);
	if (!acts_for(owner))
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("permission denied for schema \"%s\"", name),
				errdetail("The schema is owned by role %s.", GetUserNameFromId(owner, false)),
				errhint("Only its owner, a member of its role, or taskorch_admin may change it."));
	return true;
}

/* Append the names schema refers to through $ref (in schema positions) to *names. */
static void
refs_of(JsonbValue *schema, List **names)
{
	JsonbIterator *it;
	JsonbValue	k;
	JsonbValue	v;
	JsonbIteratorToken tok;

	CHECK_FOR_INTERRUPTS();
	check_stack_depth();
	if (!is_object(schema))
		return;
	it = JsonbIteratorInit(schema->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		if (tok != WJB_KEY)
			continue;
		(void) JsonbIteratorNext(&it, &v, true);
		if (is_key(&k, "$ref") && v.type == jbvString)
			*names = lappend(*names, string_of(&v));
		else if (is_key(&k, "additionalProperties") || is_key(&k, "items"))
			refs_of(&v, names);
		else if (is_key(&k, "properties") && is_object(&v))
		{
			JsonbIterator *pit = JsonbIteratorInit(v.val.binary.data);
			JsonbValue	p;

			while ((tok = JsonbIteratorNext(&pit, &p, true)) != WJB_DONE)
				if (tok == WJB_VALUE)
					refs_of(&p, names);
		}
	}
}

/*
 * Refuse to define `name` as `schema` if its $refs lead back to `name`:
 * a breadth-first walk of the latest committed definitions (the caller
 * holds the lock that keeps them from changing), each read once; the
 * shortest cycle is named.
 */
static void
refuse_cycle(const char *name, Jsonb *schema)
{
	typedef struct Step
	{
		char	   *name;
		int			from;		/* index of the step that refers to it; -1: name */
	} Step;
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "taskorch schema cycle check",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	JsonbValue	root = jsonb_value(schema);
	List	   *refs = NIL;
	Step	   *steps;
	int			nsteps = 0;
	int			cap = 16;
	HTAB	   *seen;
	HASHCTL		ctl;
	ListCell   *lc;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = NAME_KEY;
	ctl.entrysize = NAME_KEY;
	ctl.hcxt = cxt;
	seen = hash_create("taskorch schema cycle check", 16, &ctl,
					   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	refs_of(&root, &refs);
	cap = Max(cap, list_length(refs));
	steps = palloc(sizeof(Step) * cap);
	foreach(lc, refs)
	{
		steps[nsteps].name = lfirst(lc);
		steps[nsteps++].from = -1;
	}
	for (int i = 0; i < nsteps; i++)
	{
		Jsonb	   *def;
		JsonbValue	v;
		bool		found;

		CHECK_FOR_INTERRUPTS();
		if (strcmp(steps[i].name, name) == 0)
		{
			StringInfoData path;
			List	   *chain = NIL;

			for (int j = i; j >= 0; j = steps[j].from)
				chain = lcons(steps[j].name, chain);
			initStringInfo(&path);
			appendStringInfoString(&path, name);
			foreach(lc, chain)
				appendStringInfo(&path, " -> %s", (char *) lfirst(lc));
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("schema \"%s\" would refer to itself: %s", name, path.data),
					errhint("A schema may not refer to itself, directly or through the schemas "
							"it refers to: remove one $ref of the cycle."));
		}
		if (strlen(steps[i].name) >= NAME_KEY)
			continue;			/* cannot exist */
		(void) hash_search(seen, steps[i].name, HASH_ENTER, &found);
		if (found)
			continue;
		def = named_schema(steps[i].name, true);
		if (def == NULL)
			continue;
		v = jsonb_value(def);
		refs = NIL;
		refs_of(&v, &refs);
		foreach(lc, refs)
		{
			if (nsteps == cap)
			{
				cap *= 2;
				steps = repalloc(steps, sizeof(Step) * cap);
			}
			steps[nsteps].name = lfirst(lc);
			steps[nsteps++].from = i;
		}
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}

/* SQL: taskorch.define_schema(name, schema, description) -> name */
Datum
taskorch_define_schema(PG_FUNCTION_ARGS)
{
	char	   *name;
	UpsertArgs	args;

	require_args(fcinfo, 2, "name and schema", "Pass a name and a JSON Schema object.");
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	check_name("schema", name);
	schema_check_definition(PG_GETARG_JSONB_P(1));
	/*
	 * One definition at a time: two that each add one $ref of a cycle must
	 * not both pass refuse_cycle() (readers are not blocked).
	 */
	LockRelationOid(get_relname_relid("schema", get_namespace_oid("taskorch", false)),
					ShareRowExclusiveLock);
	SPI_connect();
	(void) lock_own_schema(name);
	refuse_cycle(name, PG_GETARG_JSONB_P(1));
	args.name = pv_text(name);
	args.schema = pv_datum(PG_GETARG_DATUM(1));
	args.owner = pv_oid(GetUserId());
	args.description = PG_ARGISNULL(2) ? PV_NULL : pv_datum(PG_GETARG_DATUM(2));
	taskorch_execute_args(&upsert_plan, &args, false, 0);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(name));
}

/* SQL: taskorch.drop_schema(name): refused while a task or schema refers to it */
Datum
taskorch_drop_schema(PG_FUNCTION_ARGS)
{
	char	   *name;
	SchemaNameArgs args;

	require_args(fcinfo, 1, "name", "Pass the name of a schema; see taskorch.schemas.");
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	args.name = pv_text(name);
	SPI_connect();
	if (!lock_own_schema(name))
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("schema \"%s\" does not exist", name),
				errhint("taskorch.schemas lists the schemas."));
	if (taskorch_execute_args(&users_plan, &args, false, 1) == 1)
	{
		UserRow		row;

		taskorch_read_row(&users_plan, 0, &row);
		ereport(ERROR,
				errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				errmsg("schema \"%s\" is still referred to by %s", name,
					   pv_cstring(row.referrer)),
				errhint("Change what refers to it (its {\"$ref\": \"%s\"}) first.", name));
	}
	taskorch_execute_args(&drop_plan, &args, false, 0);
	SPI_finish();
	PG_RETURN_VOID();
}
