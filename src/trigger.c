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

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "commands/async.h"
#include "miscadmin.h"
#include "parser/parse_relation.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(taskorch_trigger);
PG_FUNCTION_INFO_V1(taskorch_trigger_v2);
PG_FUNCTION_INFO_V1(taskorch_wake_launcher_sql);
PG_FUNCTION_INFO_V1(taskorch_task_visible);
PG_FUNCTION_INFO_V1(taskorch_idempotency_key_reset);

static bool wake_at_commit = false;
static bool installed_at_commit = false;
static bool requeued_at_commit = false;

/* the task a trigger names: the columns of taskorch.task it reads (task_read()) */
typedef struct TaskRow
{
	PlanValue	owner;			/* a role_ref */
	PlanValue	queue;
	PlanValue	max_attempts;
	PlanValue	triggerers;
	PlanValue	payload_schema;
	PlanValue	external;
} TaskRow;

/* the new run: a field per column of taskorch.run that a trigger sets (insert_run()) */
typedef struct RunInsertArgs
{
	PlanValue	task_id;
	PlanValue	payload;
	PlanValue	max_attempts;
	PlanValue	queue;
	PlanValue	owner;			/* an oid */
	PlanValue	triggered_by;	/* an oid */
	PlanValue	run_at;
	PlanValue	created_at;
	PlanValue	status;			/* its name, a text */
	PlanValue	priority;
	PlanValue	ttl_ms;
	PlanValue	expires_at;
	PlanValue	delayed_until;
	PlanValue	tags;
	PlanValue	metadata;		/* NULL: '{}' */
	PlanValue	idempotency_key;
	PlanValue	idempotency_key_expires_at;
	PlanValue	concurrency_key;
	PlanValue	max_duration_ms;
	PlanValue	replayed_from;
	PlanValue	batch_id;
	PlanValue	batch_index;
	PlanValue	debounce_key;
	PlanValue	parent_run_id;
	PlanValue	parent_wait_seq;
	PlanValue	root_run_id;
	PlanValue	external;
} RunInsertArgs;

typedef struct RunIdRow
{
	PlanValue	id;
} RunIdRow;

static const PlanField run_id_columns[] = {
	PLAN_COLUMN(RunIdRow, id),
};

/* the run's column `name` from a value of the trigger's (NULL when absent) */
#define RUN_COLUMN(name, v) ((RunColumn) {(name), (v).datum, !(v).present, false})

/* An interval of `ms` milliseconds (NULL when absent) */
static PlanValue
pv_interval_ms(PlanValue ms)
{
	Interval   *i;

	if (!ms.present)
		return ms;
	i = palloc0(sizeof(Interval));
	i->time = DatumGetInt64(ms.datum) * 1000;
	return pv_datum(IntervalPGetDatum(i));
}

/* A role_ref of the role `oid` (an existing role) */
static PlanValue
pv_role_ref(PlanValue oid)
{
	return pv_datum(DirectFunctionCall1(taskorch_role_ref_from_oid, oid.datum));
}

/* Insert the new run a describes (run_insert.c), inside SPI; returns its id */
static Datum
insert_run(const RunInsertArgs *a)
{
	RunColumn	c[] = {
		RUN_COLUMN("task_id", a->task_id),
		RUN_COLUMN("payload", a->payload),
		RUN_COLUMN("max_attempts", a->max_attempts),
		RUN_COLUMN("queue", a->queue),
		RUN_COLUMN("owner", pv_role_ref(a->owner)),
		RUN_COLUMN("triggered_by", pv_role_ref(a->triggered_by)),
		RUN_COLUMN("run_at", a->run_at),
		RUN_COLUMN("created_at", a->created_at),
		{"status", CStringGetDatum(TextDatumGetCString(a->status.datum)), false, true},
		RUN_COLUMN("priority", a->priority),
		RUN_COLUMN("ttl", pv_interval_ms(a->ttl_ms)),
		RUN_COLUMN("expires_at", a->expires_at),
		RUN_COLUMN("delayed_until", a->delayed_until),
		RUN_COLUMN("tags", a->tags),
		a->metadata.present ? RUN_COLUMN("metadata", a->metadata)
		: (RunColumn) {"metadata", CStringGetDatum("{}"), false, true},
		RUN_COLUMN("idempotency_key", a->idempotency_key),
		RUN_COLUMN("idempotency_key_expires_at", a->idempotency_key_expires_at),
		RUN_COLUMN("concurrency_key", a->concurrency_key),
		RUN_COLUMN("max_duration", pv_interval_ms(a->max_duration_ms)),
		RUN_COLUMN("replayed_from", a->replayed_from),
		RUN_COLUMN("batch_id", a->batch_id),
		RUN_COLUMN("batch_index", a->batch_index),
		RUN_COLUMN("debounce_key", a->debounce_key),
		RUN_COLUMN("parent_run_id", a->parent_run_id),
		RUN_COLUMN("parent_wait_seq", a->parent_wait_seq),
		RUN_COLUMN("root_run_id", a->root_run_id),
		RUN_COLUMN("external", a->external),
	};

	/* into the memory of SPI's caller, as the run's id outlives the connection */
	return SPI_datumTransfer(run_insert(c, lengthof(c)), false, -1);
}

/* a run named by a key (idempotency, debounce) of a task and the triggering role */
typedef struct KeyArgs
{
	PlanValue	task_id;
	PlanValue	key;
	PlanValue	now;
	PlanValue	triggered_by;
} KeyArgs;

static const PlanField idempotent_params[] = {
	PLAN_PARAM(KeyArgs, task_id, TEXTOID),
	PLAN_PARAM(KeyArgs, key, TEXTOID),
	PLAN_PARAM(KeyArgs, now, TIMESTAMPTZOID),
	PLAN_PARAM(KeyArgs, triggered_by, OIDOID),
};
static NamedPlan idempotent_plan = {
	.sql = "SELECT id FROM taskorch.run"
	" WHERE task_id = :task_id AND idempotency_key = :key"
	"   AND idempotency_key_expires_at > :now"
	"   AND triggered_by = :triggered_by::regrole"
	"   AND NOT taskorch.failed(status)"
	" ORDER BY created_at DESC LIMIT 1",
	PLAN_PARAMS(idempotent_params), PLAN_COLUMNS(run_id_columns)
};

/* the runs a key of the triggering role names: it names them no more */
static NamedPlan key_reset_plan = {
	.sql = "UPDATE taskorch.run SET idempotency_key_expires_at = '-infinity'"
	" WHERE task_id = :task_id AND idempotency_key = :key"
	"   AND idempotency_key_expires_at > :now"
	"   AND triggered_by = :triggered_by::regrole",
	PLAN_PARAMS(idempotent_params)
};

typedef struct DebouncedRow
{
	PlanValue	id;
	PlanValue	created_at;
	PlanValue	run_at;
} DebouncedRow;

static const PlanField debounced_params[] = {
	PLAN_PARAM(KeyArgs, task_id, TEXTOID),
	PLAN_PARAM(KeyArgs, key, TEXTOID),
	PLAN_PARAM(KeyArgs, triggered_by, OIDOID),
};
static const PlanField debounced_columns[] = {
	PLAN_COLUMN(DebouncedRow, id),
	PLAN_COLUMN(DebouncedRow, created_at),
	PLAN_COLUMN(DebouncedRow, run_at),
};
/* the latest DELAYED run of a debounce group, locked */
static NamedPlan debounced_plan = {
	.sql = "SELECT id, created_at, run_at FROM taskorch.run"
	" WHERE task_id = :task_id AND debounce_key = :key"
	"   AND status = " SQL_STATUS(DELAYED)
	"   AND triggered_by = :triggered_by::regrole"
	" ORDER BY created_at DESC LIMIT 1 FOR UPDATE",
	PLAN_PARAMS(debounced_params), PLAN_COLUMNS(debounced_columns)
};

typedef struct PushArgs
{
	PlanValue	id;
	PlanValue	due;
	PlanValue	now;
	PlanValue	trailing;
	PlanValue	payload;
	PlanValue	metadata;
	PlanValue	tags;
	PlanValue	max_attempts;
	PlanValue	max_duration_ms;
} PushArgs;

static const PlanField push_params[] = {
	PLAN_PARAM(PushArgs, id, TEXTOID),
	PLAN_PARAM(PushArgs, due, TIMESTAMPTZOID),
	PLAN_PARAM(PushArgs, now, TIMESTAMPTZOID),
	PLAN_PARAM(PushArgs, trailing, BOOLOID),
	PLAN_PARAM(PushArgs, payload, JSONBOID),
	PLAN_PARAM(PushArgs, metadata, JSONBOID),
	PLAN_PARAM(PushArgs, tags, TEXTARRAYOID),
	PLAN_PARAM(PushArgs, max_attempts, INT4OID),
	PLAN_PARAM(PushArgs, max_duration_ms, INT8OID),
};
/* push it later; in trailing mode it takes this trigger's data too */
static NamedPlan push_plan = {
	.sql = "UPDATE taskorch.run SET run_at = :due, delayed_until = :due, updated_at = :now,"
	"       payload = CASE WHEN :trailing THEN :payload ELSE payload END,"
	"       metadata = CASE WHEN :trailing AND :metadata IS NOT NULL THEN :metadata"
	"                  ELSE metadata END,"
	"       tags = CASE WHEN :trailing AND cardinality(:tags) > 0 THEN :tags ELSE tags END,"
	"       max_attempts = CASE WHEN :trailing AND :max_attempts > 0 THEN :max_attempts"
	"                      ELSE max_attempts END,"
	"       max_duration = CASE WHEN :trailing AND :max_duration_ms > 0"
	"                      THEN :max_duration_ms * interval '1 millisecond'"
	"                      ELSE max_duration END"
	" WHERE id = :id AND status = " SQL_STATUS(DELAYED),
	PLAN_PARAMS(push_params)
};

typedef struct ReleaseArgs
{
	PlanValue	id;
	PlanValue	now;
} ReleaseArgs;

static const PlanField release_params[] = {
	PLAN_PARAM(ReleaseArgs, id, TEXTOID),
	PLAN_PARAM(ReleaseArgs, now, TIMESTAMPTZOID),
};
/* past its maxDelay: the run goes to the queue now, and a new one is made */
static NamedPlan release_plan = {
	.sql = "UPDATE taskorch.run SET status = " SQL_STATUS(QUEUED) ","
	"       run_at = :now - priority * interval '1 second',"
	"       expires_at = :now + ttl, updated_at = :now"
	" WHERE id = :id AND status = " SQL_STATUS(DELAYED),
	PLAN_PARAMS(release_params)
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
			if (wake_at_commit && taskorch_shared)
			{
				/* busy workers look for the queues of the new runs (claim.c) */
				pg_atomic_fetch_add_u32(&taskorch_shared->queued, 1);
				taskorch_wake_database(MyDatabaseId);
			}
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

/*
 * May the current user act on a task of `owner` that granted it to the roles
 * `granted` (its triggerers, or its executors)?  The owner, and whoever has
 * the privileges of one of those roles, may.
 */
bool
granted_to_user(Oid owner, ArrayType *granted)
{
	Datum	   *roles;
	int			n;

	if (acts_for(owner))
		return true;
	deconstruct_array(granted, ARR_ELEMTYPE(granted), -1, false, TYPALIGN_INT,
					  &roles, NULL, &n);
	for (int i = 0; i < n; i++)
		if (has_privs_of_role(GetUserId(), role_ref_oid(roles[i])))
			return true;
	return false;
}

/*
 * taskorch.task_visible(owner, triggerers), the policy of taskorch.task:
 * a role sees the tasks it may trigger.
 */
Datum
taskorch_task_visible(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(granted_to_user(role_ref_oid(PG_GETARG_DATUM(0)), PG_GETARG_ARRAYTYPE_P(1)));
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

/* The run id of a plan's first row (RunIdRow), copied into the caller's context. */
static Datum
run_id_out(NamedPlan *p)
{
	RunIdRow	row;

	taskorch_read_row(p, 0, &row);
	/* returned as is: it may be a short-header varlena */
	return SPI_datumTransfer(row.id.datum, false, -1);
}

/*
 * Lock (task, key, the triggering role) until the transaction ends, so
 * that concurrent triggers with one key queue up and the second sees the
 * first's run.
 */
void
lock_role_key(TaskorchLockKind kind, const char *task, const char *key)
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
	KeyArgs		args = {0};

	lock_role_key(LOCK_IDEMPOTENCY_KEY, task, o->idempotency_key);
	args.task_id = pv_text(task);
	args.key = pv_text(o->idempotency_key);
	args.now = pv_timestamptz(o->now);
	args.triggered_by = pv_oid(GetUserId());
	if (taskorch_execute_args_latest(&idempotent_plan, &args, 1) == 0)
		return (Datum) 0;
	return run_id_out(&idempotent_plan);
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
	KeyArgs		key = {0};
	DebouncedRow row;
	TimestampTz due = TimestampTzPlusMilliseconds(o->now, o->debounce_delay_ms);
	TimestampTz created;
	TimestampTz current_due;
	Datum		run_id;

	lock_role_key(LOCK_DEBOUNCE_KEY, task, o->debounce_key);
	key.task_id = pv_text(task);
	key.key = pv_text(o->debounce_key);
	key.triggered_by = pv_oid(GetUserId());
	if (taskorch_execute_args_latest(&debounced_plan, &key, 1) == 0)
		return (Datum) 0;
	run_id = run_id_out(&debounced_plan);
	taskorch_read_row(&debounced_plan, 0, &row);
	created = DatumGetTimestampTz(row.created_at.datum);
	current_due = DatumGetTimestampTz(row.run_at.datum);
	if (o->debounce_max_delay_ms >= 0 &&
		current_due > TimestampTzPlusMilliseconds(created, o->debounce_max_delay_ms))
	{
		ReleaseArgs release = {0};

		release.id = pv_datum(run_id);
		release.now = pv_timestamptz(o->now);
		(void) run_transition(RUN_DELAYED, RUN_QUEUED, BY_TRIGGER);
		taskorch_execute_args(&release_plan, &release, false, 0);
		taskorch_requeued_at_commit();
		return (Datum) 0;
	}
	{
		PushArgs	push = {0};

		push.id = pv_datum(run_id);
		push.due = pv_timestamptz(due);
		push.now = pv_timestamptz(o->now);
		push.trailing = pv_bool(o->debounce_trailing);
		push.payload = pv_jsonb(payload);
		push.metadata = pv_jsonb(o->metadata);
		push.tags = pv_datum(trigger_options_tags(o));
		push.max_attempts = pv_int4(o->max_attempts);
		push.max_duration_ms = pv_int8(o->max_duration_ms);
		(void) run_transition(RUN_DELAYED, RUN_DELAYED, BY_TRIGGER);
		if (taskorch_execute_args(&push_plan, &push, false, 0) == 0)
			return (Datum) 0;	/* a worker queued it meanwhile */
	}
	taskorch_wake_at_commit();	/* sleeping workers must see the new due time */
	return run_id;
}

/* A column of the task's row `tup` of taskorch.task (rel) */
static PlanValue
task_column(Relation rel, HeapTuple tup, const char *name)
{
	AttrNumber	attnum = attnameAttNum(rel, name, false);
	PlanValue	v;
	bool		isnull;

	if (attnum <= 0)
		elog(ERROR, "taskorch: column \"%s\" of taskorch.task is missing", name);
	v.datum = heap_getattr(tup, attnum, RelationGetDescr(rel), &isnull);
	v.present = !isnull;
	return v;
}

/*
 * Read the task `task` into *t (in the current memory context) by its
 * primary key, with the statement's snapshot; false if not registered.
 * An index scan, not a statement: a new connection's first trigger would
 * otherwise parse and plan one (a millisecond on a 2-core machine), and
 * every trigger would start an executor for it.  As the extension's
 * own statements, it reads the row whatever the policies on the table;
 * the caller's right to trigger the task is checked by the caller.
 */
static bool
task_read(const char *task, TaskRow *t)
{
	Relation	rel = table_open(get_relname_relid("task", get_namespace_oid("taskorch", false)),
								 AccessShareLock);
	Oid			pkey = RelationGetPrimaryKeyIndex(rel);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	if (!OidIsValid(pkey))
		elog(ERROR, "taskorch: taskorch.task has no primary key");
	/* compared as the index compares: in the collation of its column, id */
	ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   TupleDescAttr(RelationGetDescr(rel), 0)->attcollation,
						   F_TEXTEQ, CStringGetTextDatum(task));
	scan = systable_beginscan(rel, pkey, true, GetActiveSnapshot(), 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		tup = heap_copytuple(tup);
		t->owner = task_column(rel, tup, "owner");
		t->queue = task_column(rel, tup, "queue");
		t->max_attempts = task_column(rel, tup, "max_attempts");
		t->triggerers = task_column(rel, tup, "triggerers");
		t->payload_schema = task_column(rel, tup, "payload_schema");
		t->external = task_column(rel, tup, "external");
	}
	systable_endscan(scan);
	table_close(rel, NoLock);	/* locked until the transaction ends, as a statement's read */
	return HeapTupleIsValid(tup);
}

/*
 * The task `task` (*t) and its owner, for the current user to trigger: an
 * error unless it is registered, its owner exists (else its runs could
 * execute as no one) and the user may trigger it.
 */
static Oid
triggerable_task(const char *task, TaskRow *t)
{
	Oid			owner;

	if (!task_read(task, t))
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("task \"%s\" is not registered", task),
				errhint("Register it with taskorch.register_task(); taskorch.tasks lists the registered tasks."));
	owner = role_ref_oid(t->owner.datum);
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(owner)))
		task_owner_missing(task);
	if (!granted_to_user(owner, DatumGetArrayTypeP(t->triggerers.datum)))
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("permission denied to trigger task \"%s\"", task),
				errdetail("The task is owned by role %s.", GetUserNameFromId(owner, false)),
				errhint("Its owner can allow you with taskorch.grant_trigger('%s', <role>).", task));
	return owner;
}

/* An error unless the current user may trigger `task` now (schedule()). */
void
trigger_check_task(const char *task)
{
	TaskRow		t;

	SPI_connect();
	(void) triggerable_task(task, &t);
	SPI_finish();
}

/*
 * Create a run of `task` (checked: exists, the caller may trigger it) with
 * `payload` and options, or return the run an idempotency key already
 * names.  Returns the run id in the caller's memory context.
 */
Datum
create_run(const char *task, Jsonb *payload, TriggerOptions *o, const char *replayed_from)
{
	TaskRow		t;
	RunInsertArgs a = {0};		/* fields left unset are NULL */
	Oid			owner;
	Datum		run_id;
	bool		delayed;

	if (o->debounce_key)
	{
		o->has_delay = true;
		o->delay_until = TimestampTzPlusMilliseconds(o->now, o->debounce_delay_ms);
	}
	delayed = o->has_delay && o->delay_until > o->now;
	check_payload(payload);
	SPI_connect();
	owner = triggerable_task(task, &t);
	/* a queue object defines or changes its queue: the caller owns it then */
	if (o->queue && o->queue_limit >= 0)
		queue_set_limit_inline(o->queue, o->queue_limit);
	else if (o->queue && strcmp(o->queue, TextDatumGetCString(t.queue.datum)) != 0)
		queue_check_trigger(o->queue);
	if (t.payload_schema.present)
		schema_validate(DatumGetJsonbP(t.payload_schema.datum), payload, "payload", task);

	a.task_id = pv_text(task);
	a.payload = pv_jsonb(payload);
	a.max_attempts = o->max_attempts > 0 ? pv_int4(o->max_attempts) : t.max_attempts;
	a.queue = o->queue ? pv_text(o->queue) : t.queue;
	a.owner = pv_oid(owner);
	a.triggered_by = pv_oid(GetUserId());
	/* a QUEUED run's place in the queue: priority seconds ahead */
	a.run_at = pv_timestamptz(delayed ? o->delay_until :
							  o->now - (TimestampTz) o->priority * USECS_PER_SEC);
	a.created_at = pv_timestamptz(o->now);
	a.status = pv_text(run_status_name(run_transition(RUN_CREATED,
													  delayed ? RUN_DELAYED : RUN_QUEUED,
													  BY_TRIGGER)));
	a.priority = pv_int4(o->priority);
	if (o->ttl_ms > 0)
	{
		a.ttl_ms = pv_int8(o->ttl_ms);
		/* the ttl counts from when the run is queued: for a delayed run, later */
		if (!delayed)
			a.expires_at = pv_timestamptz(TimestampTzPlusMilliseconds(o->now, o->ttl_ms));
	}
	if (delayed)
		a.delayed_until = pv_timestamptz(o->delay_until);
	a.tags = pv_datum(trigger_options_tags(o));
	a.metadata = pv_jsonb(o->metadata);
	if (o->idempotency_key)
	{
		/* a raw key given inside a task is the run's (idempotency.c) */
		o->idempotency_key = unconstify(char *, idempotency_key_of_trigger(o->idempotency_key));
		a.idempotency_key = pv_text(o->idempotency_key);
		a.idempotency_key_expires_at =
			pv_timestamptz(TimestampTzPlusMilliseconds(o->now, o->idempotency_ttl_ms));
	}
	a.concurrency_key = pv_text(o->concurrency_key);
	if (o->max_duration_ms > 0)
		a.max_duration_ms = pv_int8(o->max_duration_ms);
	a.replayed_from = pv_text(replayed_from);
	if (o->batch_id)
	{
		a.batch_id = pv_text(o->batch_id);
		a.batch_index = pv_int4(o->batch_index);
	}
	a.debounce_key = pv_text(o->debounce_key);
	if (o->parent_run_id)
	{
		a.parent_run_id = pv_text(o->parent_run_id);
		a.parent_wait_seq = pv_int4(o->parent_wait_seq);
	}
	/* a run triggered by a task joins that task's run's tree */
	a.root_run_id = pv_text(o->root_run_id ? o->root_run_id :
							current_run() ? run_root(current_run()) : NULL);
	a.external = t.external;
	/* an external task's workers hear of a run due now (external.c) */
	if (DatumGetBool(t.external.datum) && (!delayed || o->debounce_key))
		external_notify_task(task);

	/* idempotency wins over debounce */
	if ((o->idempotency_key && (run_id = idempotent_run(task, o)) != (Datum) 0) ||
		(o->debounce_key && (run_id = debounced_run(task, payload, o)) != (Datum) 0))
	{
		SPI_finish();
		return run_id;
	}
	run_id = insert_run(&a);
	notice_if_starved();
	SPI_finish();

	if (DatumGetBool(t.external.datum))
		return run_id;			/* no worker of the server's executes it */
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

/* trigger()'s arguments after `options` are options, each known by its name (options.c) */
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
	trigger_options_args(&o, fcinfo, FIRST_OPTION_ARG);
	trigger_options_finish(&o);
	PG_RETURN_DATUM(create_run(text_to_cstring(PG_GETARG_TEXT_PP(0)),
							   PG_GETARG_JSONB_P(1), &o, NULL));
}

/*
 * SQL: taskorch_internal.wake_launcher(), run by the install script: once this
 * transaction commits, the launcher starts this database's workers.
 */
Datum
taskorch_wake_launcher_sql(PG_FUNCTION_ARGS)
{
	installed_at_commit = true;
	PG_RETURN_VOID();
}

/*
 * SQL: taskorch.idempotency_key_reset(task, key, scope) -> bigint,
 * Trigger.dev's idempotencyKeys.reset(): the key (of the caller's role, as
 * trigger() keys are; in `scope`, idempotency.c) names no run any more, so
 * the next trigger with it makes a new one.  Returns how many runs it
 * named (0 or 1).  Serialized with triggers that use the key.
 */
Datum
taskorch_idempotency_key_reset(PG_FUNCTION_ARGS)
{
	KeyArgs		args = {0};
	char	   *task;
	char	   *key;
	int			n;

	require_args(fcinfo, 2, "task and key", "Pass the task's id and the idempotency key to reset.");
	require_arg(fcinfo, 2, "scope", "The scope is 'run', 'attempt' or 'global'.");
	task = text_to_cstring(PG_GETARG_TEXT_PP(0));
	key = text_to_cstring(PG_GETARG_TEXT_PP(1));
	check_key("idempotency_key", key, strlen(key));
	key = unconstify(char *, idempotency_key_to_reset(key, text_to_cstring(PG_GETARG_TEXT_PP(2))));
	SPI_connect();
	lock_role_key(LOCK_IDEMPOTENCY_KEY, task, key);
	args.task_id = pv_text(task);
	args.key = pv_text(key);
	args.now = pv_timestamptz(trigger_now());
	args.triggered_by = pv_oid(GetUserId());
	n = taskorch_execute_args(&key_reset_plan, &args, false, 0);
	SPI_finish();
	PG_RETURN_INT64(n);
}
