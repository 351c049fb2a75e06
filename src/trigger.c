/*-------------------------------------------------------------------------
 *
 * trigger.c
 *	  taskorch.trigger(): checks a trigger request, inserts the run in the
 *	  caller's transaction, and wakes a worker when that transaction commits.
 *
 * Transactional enqueue: the run row is written by the caller's own
 * transaction, so a rolled-back trigger leaves nothing and a committed one
 * is durable with the caller's other writes.  Workers cannot see the run
 * before the commit, so the wake-up is sent from the commit callback, not
 * at insert time.
 *
 * Privilege: the caller may trigger a task when it has the privileges of
 * the task's owner, of a role the owner granted it to (grant_trigger), or
 * of taskorch_admin.  That right includes the task's own queue; a run put
 * into another queue (the queue option) also needs the right to use that
 * queue (queues.c).  A task whose owner does not exist (restored into a
 * cluster without the role, or the role dropped: role_ref.c) cannot be
 * triggered: its runs could execute as no one.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(taskorch_trigger);
PG_FUNCTION_INFO_V1(taskorch_trigger_v2);
PG_FUNCTION_INFO_V1(taskorch_wake_launcher_sql);

static bool wake_at_commit = false;
static bool installed_at_commit = false;
static bool requeued_at_commit = false;

static TaskorchPlan task_plan = {
	"SELECT owner, queue, max_attempts, triggerers, payload_schema"	/* role_refs */
	"  FROM taskorch.task WHERE id = $1",
	1, {TEXTOID},
	NULL
};

static TaskorchPlan insert_plan = {
	"INSERT INTO taskorch.run (task_id, payload, max_attempts, queue, owner,"
	"       triggered_by, run_at, created_at, status, priority, ttl, expires_at,"
	"       delayed_until, tags, metadata, idempotency_key,"
	"       idempotency_key_expires_at, concurrency_key, max_duration, replayed_from,"
	"       batch_id, batch_index, debounce_key, parent_run_id, parent_wait_seq)"
	" VALUES ($1, $2, $3, $4, $5::regrole, $6::regrole, $7, $8,"
	"         $9::taskorch.run_status, $10, $11 * interval '1 millisecond', $12,"
	"         $13, $14, coalesce($15, '{}'), $16, $17, $18,"
	"         $19 * interval '1 millisecond', $20, $21, $22, $23, $24, $25)"
	" RETURNING id",
	25, {TEXTOID, JSONBOID, INT4OID, TEXTOID, OIDOID, OIDOID, TIMESTAMPTZOID,
		TIMESTAMPTZOID, TEXTOID, INT4OID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID,
		TEXTARRAYOID, JSONBOID, TEXTOID, TIMESTAMPTZOID, TEXTOID, INT8OID, TEXTOID,
	TEXTOID, INT4OID, TEXTOID, TEXTOID, INT4OID},
	NULL
};

static TaskorchPlan idempotent_plan = {
	"SELECT id FROM taskorch.run"
	" WHERE task_id = $1 AND idempotency_key = $2 AND idempotency_key_expires_at > $3"
	"   AND triggered_by = $4::regrole"
	" ORDER BY created_at DESC LIMIT 1",
	4, {TEXTOID, TEXTOID, TIMESTAMPTZOID, OIDOID},
	NULL
};


/* the latest DELAYED run of a debounce group, locked */
static TaskorchPlan debounced_plan = {
	"SELECT id, created_at, run_at FROM taskorch.run"
	" WHERE task_id = $1 AND debounce_key = $2 AND status = " SQL_STATUS(DELAYED)
	"   AND triggered_by = $3::regrole"
	" ORDER BY created_at DESC LIMIT 1 FOR UPDATE",
	3, {TEXTOID, TEXTOID, OIDOID},
	NULL
};

/* push it later; in trailing mode it takes this trigger's data too */
static TaskorchPlan push_plan = {
	"UPDATE taskorch.run SET run_at = $2, delayed_until = $2, updated_at = $3,"
	"       payload = CASE WHEN $4 THEN $5 ELSE payload END,"
	"       metadata = CASE WHEN $4 AND $6 IS NOT NULL THEN $6 ELSE metadata END,"
	"       tags = CASE WHEN $4 AND cardinality($7) > 0 THEN $7 ELSE tags END,"
	"       max_attempts = CASE WHEN $4 AND $8 > 0 THEN $8 ELSE max_attempts END,"
	"       max_duration = CASE WHEN $4 AND $9 > 0 THEN $9 * interval '1 millisecond'"
	"                      ELSE max_duration END"
	" WHERE id = $1 AND status = " SQL_STATUS(DELAYED),
	9, {TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, BOOLOID, JSONBOID, JSONBOID,
	TEXTARRAYOID, INT4OID, INT8OID},
	NULL
};

/* past its maxDelay: the run goes to the queue now, and a new one is made */
static TaskorchPlan release_plan = {
	"UPDATE taskorch.run SET status = " SQL_STATUS(QUEUED) ", run_at = $2 - priority * interval '1 second',"
	"       expires_at = $2 + ttl, updated_at = $2"
	" WHERE id = $1 AND status = " SQL_STATUS(DELAYED),
	2, {TEXTOID, TIMESTAMPTZOID},
	NULL
};

static void
xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (requeued_at_commit && taskorch_shared)
				pg_atomic_fetch_add_u32(&taskorch_shared->requeued, 1);
			if (wake_at_commit)
				taskorch_wake_database(MyDatabaseId);
			if (installed_at_commit)
				taskorch_database_installed(MyDatabaseId);
			wake_at_commit = installed_at_commit = requeued_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			/* a prepared trigger is found by the workers' idle poll */
			wake_at_commit = installed_at_commit = requeued_at_commit = false;
			break;
		default:
			break;
	}
}

/* Runs changed: have a worker look at the queue once this transaction commits. */
void
taskorch_wake_at_commit(void)
{
	wake_at_commit = true;
}

/* Runs were queued ahead of now: workers must look from the queue's head. */
void
taskorch_requeued_at_commit(void)
{
	requeued_at_commit = true;
	wake_at_commit = true;
}

void
taskorch_xact_callback_init(void)
{
	RegisterXactCallback(xact_callback, NULL);
}

/* May the current user trigger a task of `owner` granted to `triggerers`? */
bool
may_trigger(Oid owner, ArrayType *triggerers)
{
	Datum	   *roles;
	int			n;

	if (acts_for(owner))
		return true;
	deconstruct_array(triggerers, ARR_ELEMTYPE(triggerers), -1, false, TYPALIGN_INT,
					  &roles, NULL, &n);
	for (int i = 0; i < n; i++)
		if (has_privs_of_role(GetUserId(), role_ref_oid(roles[i])))
			return true;
	return false;
}

static void
check_payload(Jsonb *payload)
{
	if (!JB_ROOT_IS_OBJECT(payload))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("payload must be a JSON object, not %s",
					   TextDatumGetCString(DirectFunctionCall1(jsonb_typeof,
															   JsonbPGetDatum(payload)))),
				errhint("Wrap the value in an object, e.g. {\"value\": ...}."));
	if (VARSIZE(payload) > (Size) taskorch_max_payload_bytes)
		ereport(ERROR,
				errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("payload of %zu bytes exceeds the limit of %d bytes",
					   (Size) VARSIZE(payload), taskorch_max_payload_bytes),
				errhint("Store large data in a table and pass its key; the limit is taskorch.max_payload_size."));
}

/* Copy the first column of SPI's first row into the caller's context. */
static Datum
first_value_out(void)
{
	bool		isnull;

	/* returned as is: it may be a short-header varlena */
	return SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull),
							 false, -1);
}

/*
 * Lock (task, key, the triggering role) until the transaction ends, so
 * that concurrent triggers with one key queue up and the second sees the
 * first's run.
 */
static void
lock_key(TaskorchLockKind kind, const char *task, const char *key)
{
	StringInfoData k;

	initStringInfo(&k);
	appendBinaryStringInfo(&k, task, strlen(task) + 1);	/* with its '\0' */
	appendBinaryStringInfo(&k, key, strlen(key) + 1);
	appendStringInfo(&k, "%u", GetUserId());
	lock_name(kind, k.data, k.len);
}

/*
 * The run already triggered with this idempotency key, or (Datum) 0.  Takes
 * a transaction-level advisory lock on (task, key) first, so concurrent
 * triggers with the key queue up here and the second sees the first's run.
 */
static Datum
idempotent_run(const char *task, TriggerOptions *o)
{
	Datum		values[4];

	lock_key(LOCK_IDEMPOTENCY_KEY, task, o->idempotency_key);
	values[0] = CStringGetTextDatum(task);
	values[1] = CStringGetTextDatum(o->idempotency_key);
	values[2] = TimestampTzGetDatum(o->now);
	values[3] = ObjectIdGetDatum(GetUserId());
	if (taskorch_execute_latest(&idempotent_plan, values, NULL, 1) == 0)
		return (Datum) 0;
	return first_value_out();
}

/*
 * Debounce (Trigger.dev's rules): a DELAYED run of the same task and key
 * is pushed to now + delay and its id returned (with trailing mode taking
 * this trigger's payload, metadata, tags and limits).  Once the run is
 * already due later than maxDelay after its creation, it is not pushed
 * again: it is queued now, and (Datum) 0 is returned so the caller makes a
 * new run; likewise when there is none.  (This is the rule of Trigger.dev's
 * timeline with delay 5s and maxDelay 30s: the trigger at 26s still pushes
 * the run from 29s to 31s, the one at 28s queues it and starts run B.)
 */
static Datum
debounced_run(const char *task, Jsonb *payload, TriggerOptions *o)
{
	Datum		values[9];
	char		nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	TimestampTz due = TimestampTzPlusMilliseconds(o->now, o->debounce_delay_ms);
	TimestampTz created;
	TimestampTz current_due;
	Datum		run_id;
	bool		isnull;

	lock_key(LOCK_DEBOUNCE_KEY, task, o->debounce_key);
	values[0] = CStringGetTextDatum(task);
	values[1] = CStringGetTextDatum(o->debounce_key);
	values[2] = ObjectIdGetDatum(GetUserId());
	if (taskorch_execute_latest(&debounced_plan, values, NULL, 1) == 0)
		return (Datum) 0;
	run_id = first_value_out();
	created = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 2, &isnull));
	current_due = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 3, &isnull));
	values[0] = run_id;
	if (o->debounce_max_delay_ms >= 0 &&
		current_due > TimestampTzPlusMilliseconds(created, o->debounce_max_delay_ms))
	{
		values[1] = TimestampTzGetDatum(o->now);
		(void) run_transition(RUN_DELAYED, RUN_QUEUED, BY_TRIGGER);
		taskorch_execute_as_owner(&release_plan, values, NULL, false, 0);
		taskorch_requeued_at_commit();
		return (Datum) 0;
	}
	values[1] = TimestampTzGetDatum(due);
	values[2] = TimestampTzGetDatum(o->now);
	values[3] = BoolGetDatum(o->debounce_trailing);
	values[4] = JsonbPGetDatum(payload);
	values[5] = o->metadata ? JsonbPGetDatum(o->metadata) : (Datum) 0;
	nulls[5] = o->metadata ? ' ' : 'n';
	values[6] = trigger_options_tags(o);
	values[7] = Int32GetDatum(o->max_attempts);
	values[8] = Int64GetDatum(o->max_duration_ms);
	(void) run_transition(RUN_DELAYED, RUN_DELAYED, BY_TRIGGER);
	if (taskorch_execute_as_owner(&push_plan, values, nulls, false, 0) == 0)
		return (Datum) 0;		/* a worker queued it meanwhile */
	taskorch_wake_at_commit();	/* sleeping workers must see the new due time */
	return run_id;
}

/*
 * Create a run of `task` (checked: exists, the caller may trigger it) with
 * `payload` and options, or return the run an idempotency key already
 * names.  Returns the run id in the caller's memory context.
 */
Datum
create_run(const char *task, Jsonb *payload, TriggerOptions *o, const char *replayed_from)
{
	Datum		values[25];
	char		nulls[25];
	bool		isnull;
	Oid			owner;
	Datum		run_id;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		delayed;
	Datum		d;

	if (o->debounce_key)
	{
		o->has_delay = true;
		o->delay_until = TimestampTzPlusMilliseconds(o->now, o->debounce_delay_ms);
	}
	delayed = o->has_delay && o->delay_until > o->now;
	check_payload(payload);
	SPI_connect();
	values[0] = CStringGetTextDatum(task);
	if (taskorch_execute_as_owner(&task_plan, values, NULL, true, 1) == 0)
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("task \"%s\" is not registered", task),
				errhint("Register it with taskorch.register_task(); taskorch.tasks lists the registered tasks."));
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	owner = role_ref_oid(SPI_getbinval(tup, desc, 1, &isnull));
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(owner)))
		task_owner_missing(task);	/* its runs could not execute */
	if (!may_trigger(owner, DatumGetArrayTypeP(SPI_getbinval(tup, desc, 4, &isnull))))
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("permission denied to trigger task \"%s\"", task),
				errdetail("The task is owned by role %s.", GetUserNameFromId(owner, false)),
				errhint("Its owner can allow you with taskorch.grant_trigger('%s', <role>).", task));
	if (o->queue && strcmp(o->queue, SPI_getvalue(tup, desc, 2)) != 0)
		queue_check_trigger(o->queue);
	d = SPI_getbinval(tup, desc, 5, &isnull);
	if (!isnull)
		schema_validate(DatumGetJsonbP(d), payload, "payload", task);

	memset(nulls, ' ', sizeof(nulls));
	values[1] = JsonbPGetDatum(payload);
	values[2] = o->max_attempts > 0 ? Int32GetDatum(o->max_attempts) :
		SPI_getbinval(tup, desc, 3, &isnull);
	values[3] = o->queue ? CStringGetTextDatum(o->queue) : SPI_getbinval(tup, desc, 2, &isnull);
	values[4] = ObjectIdGetDatum(owner);
	values[5] = ObjectIdGetDatum(GetUserId());
	/* a QUEUED run's place in the queue: priority seconds ahead */
	values[6] = TimestampTzGetDatum(delayed ? o->delay_until :
									o->now - (TimestampTz) o->priority * USECS_PER_SEC);
	values[7] = TimestampTzGetDatum(o->now);
	values[8] = CStringGetTextDatum(run_status_name(run_transition(RUN_CREATED,
																   delayed ? RUN_DELAYED : RUN_QUEUED,
																   BY_TRIGGER)));
	values[9] = Int32GetDatum(o->priority);
	values[10] = Int64GetDatum(o->ttl_ms);
	nulls[10] = o->ttl_ms > 0 ? ' ' : 'n';
	/* the ttl counts from when the run is queued: for a delayed run, later */
	values[11] = TimestampTzGetDatum(TimestampTzPlusMilliseconds(o->now, o->ttl_ms));
	nulls[11] = o->ttl_ms > 0 && !delayed ? ' ' : 'n';
	values[12] = TimestampTzGetDatum(o->delay_until);
	nulls[12] = delayed ? ' ' : 'n';
	values[13] = trigger_options_tags(o);
	values[14] = o->metadata ? JsonbPGetDatum(o->metadata) : (Datum) 0;
	nulls[14] = o->metadata ? ' ' : 'n';
	values[15] = o->idempotency_key ? CStringGetTextDatum(o->idempotency_key) : (Datum) 0;
	nulls[15] = o->idempotency_key ? ' ' : 'n';
	values[16] = TimestampTzGetDatum(TimestampTzPlusMilliseconds(o->now, o->idempotency_ttl_ms));
	nulls[16] = nulls[15];
	values[17] = o->concurrency_key ? CStringGetTextDatum(o->concurrency_key) : (Datum) 0;
	nulls[17] = o->concurrency_key ? ' ' : 'n';
	values[18] = Int64GetDatum(o->max_duration_ms);
	nulls[18] = o->max_duration_ms > 0 ? ' ' : 'n';
	values[19] = replayed_from ? CStringGetTextDatum(replayed_from) : (Datum) 0;
	nulls[19] = replayed_from ? ' ' : 'n';
	values[20] = o->batch_id ? CStringGetTextDatum(o->batch_id) : (Datum) 0;
	nulls[20] = o->batch_id ? ' ' : 'n';
	values[21] = Int32GetDatum(o->batch_index);
	nulls[21] = nulls[20];
	values[22] = o->debounce_key ? CStringGetTextDatum(o->debounce_key) : (Datum) 0;
	nulls[22] = o->debounce_key ? ' ' : 'n';
	values[23] = o->parent_run_id ? CStringGetTextDatum(o->parent_run_id) : (Datum) 0;
	nulls[23] = o->parent_run_id ? ' ' : 'n';
	values[24] = Int32GetDatum(o->parent_wait_seq);
	nulls[24] = nulls[23];

	/* idempotency wins over debounce */
	if ((o->idempotency_key && (run_id = idempotent_run(task, o)) != (Datum) 0) ||
		(o->debounce_key && (run_id = debounced_run(task, payload, o)) != (Datum) 0))
	{
		SPI_finish();
		return run_id;
	}
	taskorch_execute_as_owner(&insert_plan, values, nulls, false, 1);
	run_id = first_value_out();
	SPI_finish();

	wake_at_commit = true;
	if (o->priority > 0 && !delayed)
		requeued_at_commit = true;
	return run_id;
}

/* Now, or taskorch.test_clock when a test set it. */
TimestampTz
trigger_now(void)
{
	if (taskorch_test_clock == NULL || taskorch_test_clock[0] == '\0')
		return GetCurrentTimestamp();
	return DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
												   CStringGetDatum(taskorch_test_clock),
												   ObjectIdGetDatum(InvalidOid),
												   Int32GetDatum(-1)));
}

/* The 0.1 entry point: its SQL definition belongs to an older schema. */
Datum
taskorch_trigger(PG_FUNCTION_ARGS)
{
	schema_older_than_library();
	PG_RETURN_NULL();
}

/* trigger()'s arguments after `options`, in order, are the options in TriggerOptions order */
#define FIRST_OPTION_ARG 3

/*
 * SQL: taskorch.trigger(task, payload, options, delay, ttl, idempotency_key,
 * idempotency_key_ttl, queue, concurrency_key, priority, max_attempts,
 * max_duration, tags, metadata, machine, region) -> run id
 */
Datum
taskorch_trigger_v2(PG_FUNCTION_ARGS)
{
	TriggerOptions o;

	require_arg(fcinfo, 0, "task", "Pass the id of a registered task; see taskorch.tasks.");
	require_arg(fcinfo, 1, "payload", "Pass '{}' for an empty payload.");
	trigger_options_init(&o);
	o.now = trigger_now();
	if (!PG_ARGISNULL(2))
		trigger_options_jsonb(&o, PG_GETARG_JSONB_P(2), false);
	for (int argno = FIRST_OPTION_ARG; argno < PG_NARGS(); argno++)
		if (!PG_ARGISNULL(argno))
			trigger_option_arg(&o, argno - FIRST_OPTION_ARG, fcinfo, argno);
	trigger_options_finish(&o);
	PG_RETURN_DATUM(create_run(text_to_cstring(PG_GETARG_TEXT_PP(0)),
							   PG_GETARG_JSONB_P(1), &o, NULL));
}

/*
 * SQL: taskorch._wake_launcher(), run by the install script: once this
 * transaction commits, the launcher starts this database's workers.
 */
Datum
taskorch_wake_launcher_sql(PG_FUNCTION_ARGS)
{
	installed_at_commit = true;
	PG_RETURN_VOID();
}
