/*-------------------------------------------------------------------------
 *
 * registry.c
 *	  The task registry: register_task(), register_external_task(),
 *	  unregister_task(), the trigger grants (grant_trigger(),
 *	  revoke_trigger()) and the execute grants of external tasks
 *	  (grant_execute(), revoke_execute()).
 *
 * A task is a name bound to a function `fn(payload jsonb)` returning jsonb
 * or void, or, for an external task, to no function: workers outside the
 * server claim its runs, as its owner or a role granted execute.  A task
 * keeps its kind: registering it again as the other kind is refused.  Its owner is the role that registered it, and runs execute as
 * that owner, so registering gains a role nothing it did not have: it must
 * be able to execute the function, and only superusers may register
 * C-language functions.  Re-registering (by the owner, a member of the
 * owner role, or a superuser) replaces the definition; the owner stays.
 * A task's queue must be one the caller may use (queues.c): its own, one
 * granted to it, or a name nobody owns yet; a re-registration that keeps
 * the queue is not checked again.  A task id belongs to the role that
 * first registered it, also once unregistered (taskorch.task_name).
 *
 * All checks run as the caller; the writes run as the extension owner
 * (spi_util.c).  A refusal is an error: the call changes nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "access/htup_details.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(taskorch_register_task);
PG_FUNCTION_INFO_V1(taskorch_register_task_v2);
PG_FUNCTION_INFO_V1(taskorch_register_external_task);
PG_FUNCTION_INFO_V1(taskorch_grant_execute);
PG_FUNCTION_INFO_V1(taskorch_revoke_execute);
PG_FUNCTION_INFO_V1(taskorch_unregister_task);
PG_FUNCTION_INFO_V1(taskorch_grant_trigger);
PG_FUNCTION_INFO_V1(taskorch_revoke_trigger);

#define MAX_NAME_LEN 128
#define MAX_DURATION_MS ((int64) PG_INT32_MAX)

typedef struct RetryConfig
{
	int32		max_attempts;
	double		factor;
	int32		min_ms;
	int32		max_ms;
	bool		randomize;
} RetryConfig;

/* a task named by its id; in grant_trigger(), the role and what to do */
typedef struct TaskIdArgs
{
	PlanValue	id;
	PlanValue	role;
	PlanValue	grant;			/* true: grant, false: revoke */
	PlanValue	held;			/* text[]: run ids the caller's batch holds */
} TaskIdArgs;

/* the columns of the task statements' results */
typedef struct TaskRow
{
	PlanValue	owner;
	PlanValue	owner_name;
	PlanValue	queue;
	PlanValue	triggerers;
	PlanValue	external;
} TaskRow;

static const PlanField id_params[] = {
	PLAN_PARAM(TaskIdArgs, id, TEXTOID),
};

static const PlanField owner_columns[] = {
	PLAN_COLUMN(TaskRow, owner),
	PLAN_COLUMN(TaskRow, queue),
	PLAN_COLUMN(TaskRow, external),
};
static NamedPlan owner_plan = {
	.sql = "SELECT owner::oid AS owner, queue, external FROM taskorch.task WHERE id = :id FOR UPDATE",
	PLAN_PARAMS(id_params), PLAN_COLUMNS(owner_columns)
};

/* a task's definition, as register_task() writes it */
typedef struct TaskUpsertArgs
{
	PlanValue	id;
	PlanValue	fn;
	PlanValue	owner;
	PlanValue	queue;
	PlanValue	max_attempts;
	PlanValue	retry_factor;
	PlanValue	retry_min_ms;
	PlanValue	retry_max_ms;
	PlanValue	retry_randomize;
	PlanValue	max_duration;
	PlanValue	description;
	PlanValue	payload_schema;
	PlanValue	output_schema;
	PlanValue	on_success;
	PlanValue	on_failure;
	PlanValue	on_start;
	PlanValue	retention;
	PlanValue	external;
} TaskUpsertArgs;

static const PlanField upsert_params[] = {
	PLAN_PARAM(TaskUpsertArgs, id, TEXTOID),
	PLAN_PARAM(TaskUpsertArgs, fn, OIDOID),
	PLAN_PARAM(TaskUpsertArgs, owner, OIDOID),
	PLAN_PARAM(TaskUpsertArgs, queue, TEXTOID),
	PLAN_PARAM(TaskUpsertArgs, max_attempts, INT4OID),
	PLAN_PARAM(TaskUpsertArgs, retry_factor, FLOAT8OID),
	PLAN_PARAM(TaskUpsertArgs, retry_min_ms, INT4OID),
	PLAN_PARAM(TaskUpsertArgs, retry_max_ms, INT4OID),
	PLAN_PARAM(TaskUpsertArgs, retry_randomize, BOOLOID),
	PLAN_PARAM(TaskUpsertArgs, max_duration, INTERVALOID),
	PLAN_PARAM(TaskUpsertArgs, description, TEXTOID),
	PLAN_PARAM(TaskUpsertArgs, payload_schema, JSONBOID),
	PLAN_PARAM(TaskUpsertArgs, output_schema, JSONBOID),
	PLAN_PARAM(TaskUpsertArgs, on_success, TEXTOID),
	PLAN_PARAM(TaskUpsertArgs, on_failure, TEXTOID),
	PLAN_PARAM(TaskUpsertArgs, on_start, TEXTOID),
	PLAN_PARAM(TaskUpsertArgs, retention, INTERVALOID),
	PLAN_PARAM(TaskUpsertArgs, external, BOOLOID),
};
static NamedPlan upsert_plan = {
	.sql = "INSERT INTO taskorch.task AS t (id, fn, owner, queue, max_attempts,"
	"       retry_factor, retry_min_ms, retry_max_ms, retry_randomize,"
	"       max_duration, description, payload_schema, output_schema, on_success, on_failure,"
	"       on_start, retention, external)"
	" VALUES (:id, :fn::regprocedure, :owner::regrole, :queue, :max_attempts,"
	"         :retry_factor, :retry_min_ms, :retry_max_ms, :retry_randomize,"
	"         :max_duration, :description, :payload_schema, :output_schema,"
	"         :on_success, :on_failure, :on_start, :retention, :external)"
	" ON CONFLICT (id) DO UPDATE SET fn = EXCLUDED.fn, queue = EXCLUDED.queue,"
	"       max_attempts = EXCLUDED.max_attempts,"
	"       retry_factor = EXCLUDED.retry_factor,"
	"       retry_min_ms = EXCLUDED.retry_min_ms,"
	"       retry_max_ms = EXCLUDED.retry_max_ms,"
	"       retry_randomize = EXCLUDED.retry_randomize,"
	"       max_duration = EXCLUDED.max_duration,"
	"       description = EXCLUDED.description, payload_schema = EXCLUDED.payload_schema,"
	"       output_schema = EXCLUDED.output_schema, on_success = EXCLUDED.on_success,"
	"       on_failure = EXCLUDED.on_failure, on_start = EXCLUDED.on_start,"
	"       retention = EXCLUDED.retention, updated_at = now()",
	PLAN_PARAMS(upsert_params)
};

static const PlanField name_params[] = {
	PLAN_PARAM(TaskIdArgs, id, TEXTOID),
	PLAN_PARAM(TaskIdArgs, role, OIDOID),
};
static const PlanField name_columns[] = {
	PLAN_COLUMN(TaskRow, owner),
	PLAN_COLUMN(TaskRow, owner_name),
};
/* Claim task id :id for :role, or lock its claim: who owns the id */
static NamedPlan name_plan = {
	.sql = "INSERT INTO taskorch.task_name AS n (id, owner) VALUES (:id, :role::regrole)"
	" ON CONFLICT (id) DO UPDATE SET id = n.id"
	" RETURNING owner::oid AS owner, owner::text AS owner_name",
	PLAN_PARAMS(name_params), PLAN_COLUMNS(name_columns)
};

static const PlanField hook_columns[] = {
	PLAN_COLUMN(TaskRow, owner),
	PLAN_COLUMN(TaskRow, triggerers),
};
/* a hook task: who may trigger it */
static NamedPlan hook_plan = {
	.sql = "SELECT owner, triggerers FROM taskorch.task WHERE id = :id",	/* role_refs */
	PLAN_PARAMS(id_params), PLAN_COLUMNS(hook_columns)
};

/* A hook (on_success, on_failure, on_start) of task `id` names another registered task. */
static void
check_hook(FunctionCallInfo fcinfo, int arg, const char *kind, const char *id)
{
	char	   *hook;
	TaskIdArgs	args = {0};
	TaskRow		row;

	if (PG_ARGISNULL(arg))
		return;
	hook = text_to_cstring(PG_GETARG_TEXT_PP(arg));
	args.id = pv_text(hook);
	if (strcmp(hook, id) == 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("task \"%s\" cannot be its own %s hook", id, kind),
				errhint("A hook is another task, triggered with the run's Result."));
	if (taskorch_execute_args(&hook_plan, &args, true, 0) == 0)
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("%s hook \"%s\" of task \"%s\" is not a registered task", kind, hook, id),
				errhint("Register the hook task first; taskorch.tasks lists the tasks."));
	/* the hook is triggered as this task's owner, who must be allowed to */
	taskorch_read_row(&hook_plan, 0, &row);
	if (!granted_to_user(role_ref_oid(row.owner.datum), DatumGetArrayTypeP(row.triggerers.datum)))
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("permission denied to use task \"%s\" as the %s hook of task \"%s\"", hook, kind, id),
				errdetail("A hook is triggered as the owner of the task, who may not trigger \"%s\".", hook),
				errhint("Its owner can allow you with taskorch.grant_trigger('%s', <role>).", hook));
}

typedef struct CanceledRow
{
	PlanValue	queue;
} CanceledRow;

static const PlanField canceled_columns[] = {
	PLAN_COLUMN(CanceledRow, queue),
};

static const PlanField delete_params[] = {
	PLAN_PARAM(TaskIdArgs, id, TEXTOID),
	PLAN_PARAM(TaskIdArgs, held, TEXTARRAYOID),
};
/* :held: runs left as they are (held by the caller's batch) */
static NamedPlan delete_plan = {
	.sql = "WITH gone AS (DELETE FROM taskorch.task WHERE id = :id RETURNING id)"
	" UPDATE taskorch.run r SET status = " SQL_STATUS(CANCELED) ", finished_at = now(),"
	"        updated_at = now(),"
	"        error = jsonb_build_object('message', 'task ' || r.task_id || ' was unregistered')"
	"   FROM gone WHERE r.task_id = gone.id AND r.status IN " SQL_NOT_STARTED
	"    AND r.id <> ALL (:held)"
	" RETURNING r.queue",
	PLAN_PARAMS(delete_params), PLAN_COLUMNS(canceled_columns)
};

typedef struct QueuedRow
{
	PlanValue	id;
	PlanValue	xmax;
} QueuedRow;

static const PlanField queued_columns[] = {
	PLAN_COLUMN(QueuedRow, id),
	PLAN_COLUMN(QueuedRow, xmax),
};
/* the task's claimable runs, and who locks them */
static NamedPlan queued_plan = {
	.sql = "SELECT id, xmax FROM taskorch.run WHERE task_id = :id AND status = " SQL_STATUS(QUEUED),
	PLAN_PARAMS(id_params), PLAN_COLUMNS(queued_columns)
};

static const PlanField grant_params[] = {
	PLAN_PARAM(TaskIdArgs, id, TEXTOID),
	PLAN_PARAM(TaskIdArgs, role, OIDOID),
	PLAN_PARAM(TaskIdArgs, grant, BOOLOID),
};
static NamedPlan grant_plan = {
	.sql = "UPDATE taskorch.task SET updated_at = now(), triggerers ="
	"   taskorch_internal.role_list(triggerers, :role, :grant)"
	" WHERE id = :id",
	PLAN_PARAMS(grant_params)
};
static NamedPlan grant_execute_plan = {
	.sql = "UPDATE taskorch.task SET updated_at = now(), executors ="
	"   taskorch_internal.role_list(executors, :role, :grant)"
	" WHERE id = :id",
	PLAN_PARAMS(grant_params)
};

/* Task ids and queue names: a letter or digit, then [A-Za-z0-9_.:/-]. */
void
check_name(const char *kind, const char *name)
{
	size_t		len = strlen(name);
	bool		ok = len > 0 && len <= MAX_NAME_LEN && isalnum((unsigned char) name[0]);

	for (size_t i = 1; ok && i < len; i++)
		ok = isalnum((unsigned char) name[i]) || strchr("_.:/-", name[i]) != NULL;
	if (!ok)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_NAME),
				errmsg("invalid %s id: \"%s\"", kind, name),
				errdetail("An id starts with a letter or digit and contains only letters, digits and _ . : / -, at most %d characters.",
						  MAX_NAME_LEN),
				errhint("Use a slug such as \"send-welcome-email\"."));
}

/*
 * Refuse a function that cannot be a task, or that the caller may not
 * make one of.  Accepted: a plain function taking exactly (jsonb) and
 * returning jsonb or void.
 */
static void
check_task_function(Oid fn, Oid caller)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	Form_pg_proc proc;
	char	   *name = format_procedure(fn);

	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_FUNCTION),
				errmsg("function with OID %u does not exist", fn),
				errhint("Pass the function as 'name(jsonb)'::regprocedure."));
	proc = (Form_pg_proc) GETSTRUCT(tup);
	if (proc->prokind != PROKIND_FUNCTION || proc->proretset ||
		proc->pronargs != 1 || proc->proargtypes.values[0] != JSONBOID ||
		(proc->prorettype != JSONBOID && proc->prorettype != VOIDOID))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				errmsg("function %s cannot be a task", name),
				errdetail("A task function takes exactly one jsonb argument and returns jsonb or void; it is not a procedure, aggregate or set-returning function."),
				errhint("Define it as CREATE FUNCTION %s(payload jsonb) RETURNS jsonb.",
						get_func_name(fn)));
	if (proc->prolang == ClanguageId && !superuser_arg(caller))
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("permission denied to register C-language function %s as a task", name),
				errhint("Only superusers may register C-language functions; wrap it in a SQL function owned by a superuser."));
	ReleaseSysCache(tup);
	if (pg_proc_aclcheck(fn, caller, ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("permission denied for function %s", name),
				errdetail("A task runs as its owner, who must be allowed to execute its function."),
				errhint("Ask the function's owner to GRANT EXECUTE on it to role %s.",
						GetUserNameFromId(caller, false)));
}

static void
bad_retry(const char *key, const char *why)
{
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("invalid retry option \"%s\": %s", key, why),
			errhint("retry takes {\"maxAttempts\": int >= 1, \"factor\": number from 1 to 100, \"minTimeoutInMs\": int >= 0, \"maxTimeoutInMs\": int >= minTimeoutInMs, \"randomize\": bool}."));
}

static int32
retry_int(const char *key, JsonbValue *v, int32 min)
{
	int64		n;

	if (v->type != jbvNumeric)
		bad_retry(key, "not a number");
	n = DatumGetInt64(DirectFunctionCall1(numeric_int8,
										  NumericGetDatum(v->val.numeric)));
	if (n < min || n > PG_INT32_MAX)
		bad_retry(key, psprintf("%lld is out of range", (long long) n));
	return (int32) n;
}

/* Parse Trigger.dev's retry object over the defaults in *cfg. */
static void
parse_retry(Jsonb *retry, RetryConfig *cfg)
{
	JsonbIterator *it;
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;

	if (!JB_ROOT_IS_OBJECT(retry))
		bad_retry("retry", "not a JSON object");
	it = JsonbIteratorInit(&retry->root);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *key;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(k.val.string.val, k.val.string.len);
		tok = JsonbIteratorNext(&it, &v, true);
		if (strcmp(key, "maxAttempts") == 0)
			cfg->max_attempts = retry_int(key, &v, 1);
		else if (strcmp(key, "minTimeoutInMs") == 0)
			cfg->min_ms = retry_int(key, &v, 0);
		else if (strcmp(key, "maxTimeoutInMs") == 0)
			cfg->max_ms = retry_int(key, &v, 0);
		else if (strcmp(key, "factor") == 0)
		{
			if (v.type != jbvNumeric)
				bad_retry(key, "not a number");
			cfg->factor = DatumGetFloat8(DirectFunctionCall1(numeric_float8,
															 NumericGetDatum(v.val.numeric)));
			if (!(cfg->factor >= 1.0 && cfg->factor <= 100.0))
				bad_retry(key, "must be between 1 and 100");
		}
		else if (strcmp(key, "randomize") == 0)
		{
			if (v.type != jbvBool)
				bad_retry(key, "not a boolean");
			cfg->randomize = v.val.boolean;
		}
		else
			bad_retry(key, "unknown key");
	}
	if (cfg->max_ms < cfg->min_ms)
		bad_retry("maxTimeoutInMs", "less than minTimeoutInMs");
}

/*
 * Lock the task row and check the caller may change it.  Returns false
 * when the task does not exist; else sets *owner_out and *queue_out (each
 * when not NULL).  Caller is inside SPI.
 */
static bool
lock_own_task(const char *id, Oid caller, Oid *owner_out, char **queue_out,
			  bool *external_out)
{
	TaskIdArgs	args = {.id = pv_text(id)};
	TaskRow		row;
	Oid			owner;

	if (taskorch_execute_args(&owner_plan, &args, false, 1) == 0)
		return false;
	taskorch_read_row(&owner_plan, 0, &row);
	owner = DatumGetObjectId(row.owner.datum);
	if (!has_privs_of_role(caller, owner))
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("permission denied for task \"%s\"", id),
				errdetail("The task is owned by role %s.", GetUserNameFromId(owner, false)),
				errhint("Only the owner of a task, a member of its role, or a superuser may change it."));
	if (owner_out)
		*owner_out = owner;
	if (queue_out)
		*queue_out = pv_cstring(row.queue);
	if (external_out)
		*external_out = DatumGetBool(row.external.datum);
	return true;
}

/*
 * A task id belongs to the role that first registered it, for good: after
 * unregister_task() only that role (a member, a superuser) may register it
 * again.  Otherwise another role could register its own function under
 * the id and receive what was meant for the first: the runs still waiting
 * or retrying, the hooks and track steps that name it, the triggers of
 * applications that know it by name.  The claim's row lock also orders two
 * registrations of one new id.  Caller is inside SPI.
 */
static void
claim_task_name(const char *id, Oid caller)
{
	TaskIdArgs	args = {.id = pv_text(id), .role = pv_oid(caller)};
	TaskRow		row;
	Oid			owner;

	taskorch_execute_args(&name_plan, &args, false, 1);
	taskorch_read_row(&name_plan, 0, &row);
	owner = DatumGetObjectId(row.owner.datum);
	if (!has_privs_of_role(caller, owner))
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("task id \"%s\" belongs to role %s", id, pv_cstring(row.owner_name)),
				errdetail("A task id stays with the role that first registered it, also after unregister_task(), so that nothing made for that role's task reaches another role's function."),
				errhint("Pick another id."));
}

/* lock_own_task() for a task that must exist */
static void
lock_existing_task(const char *id)
{
	if (!lock_own_task(id, GetUserId(), NULL, NULL, NULL))
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("task \"%s\" is not registered", id),
				errhint("taskorch.tasks lists the registered tasks."));
}

static char *
required_name(FunctionCallInfo fcinfo, int argno, const char *kind)
{
	char	   *name;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("%s must not be null", kind),
				errhint("Pass the id of the task."));
	name = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	check_name("task", name);
	return name;
}

/* The 0.1 entry point: its SQL definition belongs to an older schema. */
Datum
taskorch_register_task(PG_FUNCTION_ARGS)
{
	schema_older_than_library();
}

/*
 * Where the arguments of a registration are: register_task() and
 * register_external_task() take the same ones in different orders (-1:
 * not taken).
 */
typedef struct RegisterArgs
{
	int			fn;
	int			queue;
	int			max_attempts;
	int			retry;
	int			max_duration;
	int			description;
	int			payload_schema;
	int			output_schema;
	int			on_success;
	int			on_failure;
	int			on_start;
	int			retention;
} RegisterArgs;

static const RegisterArgs task_args = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
static const RegisterArgs external_args = {-1, 1, 2, 3, 4, 9, 5, 6, 7, 8, 10, 11};

/* A duration argument as an interval, up to max_ms */
static PlanValue
interval_arg(FunctionCallInfo fcinfo, int argno, const char *what, int64 max_ms,
			 const char *max_text)
{
	char	   *given;
	int64		ms;
	Interval   *iv;

	if (argno >= PG_NARGS() || PG_ARGISNULL(argno))
		return PV_NULL;
	given = TextDatumGetCString(PG_GETARG_DATUM(argno));
	ms = duration_ms_from_text(what, given, false);
	if (ms > max_ms)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("invalid %s \"%s\": is longer than %s", what, given, max_text),
				errhint("Pass a duration such as \"5m\", or NULL for no limit."));
	iv = palloc0(sizeof(Interval));
	iv->time = ms * 1000;
	return pv_datum(IntervalPGetDatum(iv));
}

/* A JSON Schema argument, checked */
static PlanValue
schema_arg(FunctionCallInfo fcinfo, int argno)
{
	if (PG_ARGISNULL(argno))
		return PV_NULL;
	schema_check_definition(PG_GETARG_JSONB_P(argno));
	return pv_datum(PG_GETARG_DATUM(argno));
}

static PlanValue
datum_arg(FunctionCallInfo fcinfo, int argno)
{
	return PG_ARGISNULL(argno) ? PV_NULL : pv_datum(PG_GETARG_DATUM(argno));
}

/* Register (or register again) task `id`; external: its runs are claimed over libpq */
static Datum
register_task(FunctionCallInfo fcinfo, const RegisterArgs *pos, bool external)
{
	char	   *id = required_name(fcinfo, 0, "id");
	Oid			caller = GetUserId();
	Oid			fn = InvalidOid;
	char	   *queue;
	RetryConfig cfg = {3, 2.0, 1000, 10000, true};
	TaskUpsertArgs a = {0};		/* fields left unset are NULL */
	Oid			owner = caller;
	char	   *old_queue = NULL;
	bool		was_external = external;
	bool		registered;

	if (!external)
	{
		require_arg(fcinfo, pos->fn, "fn", "Pass the task function as 'name(jsonb)'::regprocedure.");
		fn = PG_GETARG_OID(pos->fn);
	}
	queue = PG_ARGISNULL(pos->queue) ? id : text_to_cstring(PG_GETARG_TEXT_PP(pos->queue));
	check_name("queue", queue);
	if (!PG_ARGISNULL(pos->max_attempts))
		cfg.max_attempts = PG_GETARG_INT32(pos->max_attempts);
	if (!PG_ARGISNULL(pos->retry))
		parse_retry(PG_GETARG_JSONB_P(pos->retry), &cfg);
	if (cfg.max_attempts < 1)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("max_attempts must be at least 1, not %d", cfg.max_attempts),
				errhint("Use 1 for a task that is never retried."));
	a.max_duration = interval_arg(fcinfo, pos->max_duration, "max_duration", MAX_DURATION_MS,
							  "24 days");
	a.description = datum_arg(fcinfo, pos->description);
	a.payload_schema = schema_arg(fcinfo, pos->payload_schema);
	a.output_schema = schema_arg(fcinfo, pos->output_schema);
	a.on_success = datum_arg(fcinfo, pos->on_success);
	a.on_failure = datum_arg(fcinfo, pos->on_failure);
	a.on_start = datum_arg(fcinfo, pos->on_start);
	/* how long its finished runs are kept (retention.c) */
	a.retention = interval_arg(fcinfo, pos->retention, "retention", PG_INT64_MAX / 1000,
							"a timestamp can say");

	SPI_connect();
	registered = lock_own_task(id, caller, &owner, &old_queue, &was_external);
	if (registered && was_external != external)
		ereport(ERROR,
				errcode(ERRCODE_WRONG_OBJECT_TYPE),
				errmsg("task \"%s\" is registered as %s task", id,
					   was_external ? "an external" : "a SQL"),
				errhint("Unregister it first with taskorch.unregister_task('%s'), or use %s.", id,
						was_external ? "taskorch.register_external_task()" :
						"taskorch.register_task()"));
	claim_task_name(id, caller);
	if (!registered || strcmp(old_queue, queue) != 0)
		queue_check_register(id, queue);
	check_hook(fcinfo, pos->on_success, "on_success", id);
	check_hook(fcinfo, pos->on_failure, "on_failure", id);
	check_hook(fcinfo, pos->on_start, "on_start", id);
	if (!external)
	{
		check_task_function(fn, caller);
		if (owner != caller)
			check_task_function(fn, owner);
		a.fn = pv_oid(fn);
	}

	a.id = pv_text(id);
	a.owner = pv_oid(owner);
	a.queue = pv_text(queue);
	a.max_attempts = pv_int4(cfg.max_attempts);
	a.retry_factor = pv_datum(Float8GetDatum(cfg.factor));
	a.retry_min_ms = pv_int4(cfg.min_ms);
	a.retry_max_ms = pv_int4(cfg.max_ms);
	a.retry_randomize = pv_bool(cfg.randomize);
	a.external = pv_bool(external);
	taskorch_execute_args(&upsert_plan, &a, false, 0);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(id));
}

/*
 * SQL: taskorch.register_task(id, fn, queue, max_attempts, retry,
 * max_duration, description, payload_schema, output_schema, on_success,
 * on_failure, on_start, retention) -> id
 */
Datum
taskorch_register_task_v2(PG_FUNCTION_ARGS)
{
	return register_task(fcinfo, &task_args, false);
}

/*
 * SQL: taskorch.register_external_task(id, queue, max_attempts, retry,
 * max_duration, payload_schema, output_schema, on_success, on_failure,
 * description, on_start, retention) -> id: a task whose runs workers
 * outside the server claim (external.c).
 */
Datum
taskorch_register_external_task(PG_FUNCTION_ARGS)
{
	return register_task(fcinfo, &external_args, true);
}

/*
 * Inside a task, the runs of task `id` the worker's batch holds (the
 * task's own run, if it unregisters its own task), as a text[]: they will
 * be written by the batch, whatever we set (manage.c).
 */
static PlanValue
runs_held_by_batch(const char *id)
{
	Datum	   *held = NULL;
	int			n = 0;

	if (current_run() != NULL)
	{
		TaskIdArgs	args = {.id = pv_text(id)};
		int			rows = taskorch_execute_args(&queued_plan, &args, true, 0);

		held = palloc(sizeof(Datum) * Max(rows, 1));
		for (int i = 0; i < rows; i++)
		{
			QueuedRow	row;

			taskorch_read_row(&queued_plan, i, &row);
			if (run_held_by_batch(DatumGetTransactionId(row.xmax.datum)))
				held[n++] = row.id.datum;
		}
	}
	return pv_datum(PointerGetDatum(construct_array(held, n, TEXTOID, -1, false, TYPALIGN_INT)));
}

/*
 * SQL: taskorch.unregister_task(id) -> runs canceled.  Runs not yet
 * started are canceled; finished runs keep their history.  Inside a task,
 * the runs its worker's batch holds are not: they finish as they would
 * have, and are not counted.
 */
Datum
taskorch_unregister_task(PG_FUNCTION_ARGS)
{
	char	   *id = required_name(fcinfo, 0, "id");
	TaskIdArgs	args = {.id = pv_text(id)};
	int			canceled;

	SPI_connect();
	lock_existing_task(id);
	args.held = runs_held_by_batch(id);
	run_transitions(RUN_SET_NOT_STARTED, RUN_CANCELED, BY_REGISTRY);
	canceled = taskorch_execute_args(&delete_plan, &args, false, 0);
	for (int i = 0; i < canceled; i++)
	{
		CanceledRow row;

		taskorch_read_row(&delete_plan, i, &row);
		stats_note_end(id, TextDatumGetCString(row.queue.datum), RUN_CANCELED);
	}
	SPI_finish();
	PG_RETURN_INT64(canceled);
}

static Datum
change_grant(FunctionCallInfo fcinfo, NamedPlan *plan, bool grant)
{
	char	   *id = required_name(fcinfo, 0, "task");
	TaskIdArgs	args = {0};

	require_arg(fcinfo, 1, "role", "Pass a role name, e.g. 'app_user'.");
	SPI_connect();
	lock_existing_task(id);
	args.id = pv_text(id);
	args.role = pv_datum(PG_GETARG_DATUM(1));
	args.grant = pv_bool(grant);
	taskorch_execute_args(plan, &args, false, 0);
	SPI_finish();
	PG_RETURN_VOID();
}

/* SQL: taskorch.grant_trigger(task, role): role may trigger the task. */
Datum
taskorch_grant_trigger(PG_FUNCTION_ARGS)
{
	return change_grant(fcinfo, &grant_plan, true);
}

/* SQL: taskorch.revoke_trigger(task, role) */
Datum
taskorch_revoke_trigger(PG_FUNCTION_ARGS)
{
	return change_grant(fcinfo, &grant_plan, false);
}

/* SQL: taskorch.grant_execute(task, role): role may claim the task's runs (external.c). */
Datum
taskorch_grant_execute(PG_FUNCTION_ARGS)
{
	return change_grant(fcinfo, &grant_execute_plan, true);
}

/* SQL: taskorch.revoke_execute(task, role) */
Datum
taskorch_revoke_execute(PG_FUNCTION_ARGS)
{
	return change_grant(fcinfo, &grant_execute_plan, false);
}
