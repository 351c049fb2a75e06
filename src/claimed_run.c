/*-------------------------------------------------------------------------
 *
 * claimed_run.c
 *	  Reading a claimed run: the run's row (CLAIMED_RUN_SELECT, selected
 *	  by the claims of claim.c and of external.c, and by the completions
 *	  of external runs) and what it needs of its task and its queue, read
 *	  once per result rather than joined to every row: the runs a claim
 *	  returns are mostly of one task and one queue.  The row comes whole,
 *	  one composite column, and is taken apart here: a plan that carries
 *	  two columns through its nodes starts in a fraction of the time of
 *	  one that carries two dozen (each node builds its row descriptor,
 *	  column by column, at every execution), which was half of a lone
 *	  run's claim.
 *
 * A run executes only if its task is registered by the role that owns the
 * run (task_found); registered again by another role since, it is
 * task_reowned.  Its max_duration is its own, else its task's.
 *
 * Transaction: inside the caller's SPI connection, whose result it reads;
 * the task and queue are read beside it with a snapshot of their own,
 * taken after the claim's (a batch's first snapshot may predate a task
 * registered just before its run was triggered).  Memory: the run's fields in the caller's context;
 * the tasks and queues of the result in a context of this file's, reset
 * when a result's first row is read (so callers read rows in order, from
 * row 0).
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

/* a claimed run, as the claim returns it: the columns claim_read_run() reads */
typedef struct ClaimRow
{
	PlanValue	run;			/* the whole row of taskorch.run */
	PlanValue	tid;
} ClaimRow;

const PlanField claimed_run_columns[CLAIMED_RUN_NCOLUMNS] = {
	PLAN_COLUMN(ClaimRow, run),
	PLAN_COLUMN(ClaimRow, tid),
};
StaticAssertDecl(sizeof(ClaimRow) == CLAIMED_RUN_NCOLUMNS * sizeof(PlanValue),
				 "claimed_run_columns lists every field of ClaimRow");

/* the columns of taskorch.run a claimed run is read from */
#define RUN_FIELDS(X) \
	X(id) X(task_id) X(payload) X(attempts) X(max_attempts) X(run_at) X(owner) \
	X(max_duration) X(expires_at) X(metadata) X(queue) X(concurrency_key) \
	X(parent_run_id) X(parent_wait_seq) X(root_run_id) X(started_at) \
	X(triggered_by) X(external) X(claimed_at) X(holds_slot) X(status) \
	X(lease_expires_at) X(lease_ms)
#define RUN_FIELD_ENUM(f) RF_##f,
enum { RUN_FIELDS(RUN_FIELD_ENUM) RF_COUNT };
#define RUN_FIELD_NAME(f) #f,
static const char *const run_field_names[RF_COUNT] = { RUN_FIELDS(RUN_FIELD_NAME) };

/* what a run needs of its task: its registration (task_plan's row) */
typedef struct TaskOfRun
{
	char	   *id;
	bool		found;			/* false: not registered */
	Oid			owner;
	Oid			fn;
	double		retry_factor;
	int32		retry_min_ms;
	int32		retry_max_ms;
	bool		retry_randomize;
	int32		max_duration_ms;
	Jsonb	   *output_schema;
	char	   *on_success;
	char	   *on_failure;
	char	   *on_start;
} TaskOfRun;

/* ... and of its queue */
typedef struct QueueOfRun
{
	char	   *name;
	int32		concurrency_limit;	/* 0: none (or no row) */
} QueueOfRun;

typedef struct NameArgs
{
	PlanValue	name;
} NameArgs;

typedef struct TaskRow
{
	PlanValue	owner;
	PlanValue	fn;
	PlanValue	retry_factor;
	PlanValue	retry_min_ms;
	PlanValue	retry_max_ms;
	PlanValue	retry_randomize;
	PlanValue	max_duration_ms;
	PlanValue	output_schema;
	PlanValue	on_success;
	PlanValue	on_failure;
	PlanValue	on_start;
} TaskRow;

typedef struct QueueRow
{
	PlanValue	concurrency_limit;
} QueueRow;

static const PlanField name_params[] = {
	PLAN_PARAM(NameArgs, name, TEXTOID),
};
static const PlanField task_columns[] = {
	PLAN_COLUMN(TaskRow, owner),
	PLAN_COLUMN(TaskRow, fn),
	PLAN_COLUMN(TaskRow, retry_factor),
	PLAN_COLUMN(TaskRow, retry_min_ms),
	PLAN_COLUMN(TaskRow, retry_max_ms),
	PLAN_COLUMN(TaskRow, retry_randomize),
	PLAN_COLUMN(TaskRow, max_duration_ms),
	PLAN_COLUMN(TaskRow, output_schema),
	PLAN_COLUMN(TaskRow, on_success),
	PLAN_COLUMN(TaskRow, on_failure),
	PLAN_COLUMN(TaskRow, on_start),
};
static const PlanField queue_columns[] = {
	PLAN_COLUMN(QueueRow, concurrency_limit),
};
static NamedPlan task_plan = {
	.sql = "SELECT t.owner::oid AS owner, t.fn::oid AS fn, t.retry_factor, t.retry_min_ms,"
	"       t.retry_max_ms, t.retry_randomize,"
	"       (extract(epoch FROM t.max_duration) * 1000)::int4 AS max_duration_ms,"
	"       t.output_schema, t.on_success, t.on_failure, t.on_start"
	"  FROM taskorch.task t WHERE t.id = :name",
	PLAN_PARAMS(name_params), PLAN_COLUMNS(task_columns), .shape = PLAN_KEY_LOOKUPS
};
static NamedPlan queue_plan = {
	.sql = "SELECT q.concurrency_limit FROM taskorch.queue q WHERE q.name = :name",
	PLAN_PARAMS(name_params), PLAN_COLUMNS(queue_columns), .shape = PLAN_KEY_LOOKUPS
};

/*
 * The tasks and queues of one result's runs, each read once (a result's
 * runs are mostly of one task and queue).  Reset when a caller reads a
 * result's first row: what it holds is as fresh as that result.
 */
#define RESULT_CACHE_SIZE 8
static struct
{
	MemoryContext cxt;
	TaskOfRun	tasks[RESULT_CACHE_SIZE];
	int			ntasks;			/* entries filled; past the size, the oldest go */
	QueueOfRun	queues[RESULT_CACHE_SIZE];
	int			nqueues;
} result_cache;

/*
 * Run `p` (one key: `name`) and read its single row, if any, into `out`,
 * inside the caller's SPI connection and without disturbing the result
 * the caller is reading (SPI keeps each result until SPI_finish()) or its
 * memory context.
 */
static bool
lookup_beside(NamedPlan *p, const char *name, void *out)
{
	SPITupleTable *reading = SPI_tuptable;
	uint64		nreading = SPI_processed;
	MemoryContext cxt = CurrentMemoryContext;	/* SPI returns in its own */
	NameArgs	args = {pv_text(name)};
	bool		found = taskorch_execute_args(p, &args, false, 1) == 1;

	MemoryContextSwitchTo(cxt);
	if (found)
		taskorch_read_row(p, 0, out);
	SPI_tuptable = reading;
	SPI_processed = nreading;
	return found;
}

static const TaskOfRun *
task_of_run(const char *task_id)
{
	TaskOfRun  *t;
	TaskRow		row;
	MemoryContext old;

	for (int i = 0; i < Min(result_cache.ntasks, RESULT_CACHE_SIZE); i++)
		if (strcmp(result_cache.tasks[i].id, task_id) == 0)
			return &result_cache.tasks[i];
	t = &result_cache.tasks[result_cache.ntasks++ % RESULT_CACHE_SIZE];
	old = MemoryContextSwitchTo(result_cache.cxt);
	memset(t, 0, sizeof(*t));
	t->id = pstrdup(task_id);
	t->found = lookup_beside(&task_plan, task_id, &row);
	if (t->found)
	{
		t->owner = DatumGetObjectId(row.owner.datum);
		t->fn = row.fn.present ? DatumGetObjectId(row.fn.datum) : InvalidOid;
		t->retry_factor = DatumGetFloat8(row.retry_factor.datum);
		t->retry_min_ms = DatumGetInt32(row.retry_min_ms.datum);
		t->retry_max_ms = DatumGetInt32(row.retry_max_ms.datum);
		t->retry_randomize = DatumGetBool(row.retry_randomize.datum);
		t->max_duration_ms = row.max_duration_ms.present ?
			DatumGetInt32(row.max_duration_ms.datum) : 0;
		t->output_schema = pv_jsonb_copy(row.output_schema);
		t->on_success = pv_cstring(row.on_success);
		t->on_failure = pv_cstring(row.on_failure);
		t->on_start = pv_cstring(row.on_start);
	}
	MemoryContextSwitchTo(old);
	return t;
}

static int32
queue_limit(const char *queue)
{
	QueueOfRun *q;
	QueueRow	row;

	for (int i = 0; i < Min(result_cache.nqueues, RESULT_CACHE_SIZE); i++)
		if (strcmp(result_cache.queues[i].name, queue) == 0)
			return result_cache.queues[i].concurrency_limit;
	q = &result_cache.queues[result_cache.nqueues++ % RESULT_CACHE_SIZE];
	q->name = MemoryContextStrdup(result_cache.cxt, queue);
	q->concurrency_limit = lookup_beside(&queue_plan, queue, &row) && row.concurrency_limit.present ?
		DatumGetInt32(row.concurrency_limit.datum) : 0;
	return q->concurrency_limit;
}

/*
 * The fields of a whole row of taskorch.run, by name: their positions are
 * found once per version of the row type (an ALTER TABLE makes another).
 */
static void
read_fields(Datum row, PlanValue *f)
{
	static uint64 identifier = 0;
	static int	attnos[RF_COUNT];
	HeapTupleHeader th = DatumGetHeapTupleHeader(row);
	TypeCacheEntry *tc = lookup_type_cache(HeapTupleHeaderGetTypeId(th), TYPECACHE_TUPDESC);
	TupleDesc	desc = tc->tupDesc;
	HeapTupleData tuple;
	Datum	   *values;
	bool	   *nulls;

	if (identifier != tc->tupDesc_identifier)
	{
		for (int k = 0; k < RF_COUNT; k++)
		{
			attnos[k] = SPI_fnumber(desc, run_field_names[k]);	/* not a dropped one */
			if (attnos[k] <= 0)
				elog(ERROR, "taskorch: taskorch.run has no column \"%s\"", run_field_names[k]);
		}
		identifier = tc->tupDesc_identifier;
	}
	tuple.t_len = HeapTupleHeaderGetDatumLength(th);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = th;
	taskorch_deform(&tuple, desc, &values, &nulls);
	for (int k = 0; k < RF_COUNT; k++)
	{
		f[k].datum = values[attnos[k] - 1];
		f[k].present = !nulls[attnos[k] - 1];
	}
}

/* a duration (interval) in milliseconds, at most PG_INT32_MAX; 0 for NULL */
static int32
duration_ms(PlanValue d)
{
	return d.present ? (int32) Min(interval_to_ms(DatumGetIntervalP(d.datum)), PG_INT32_MAX) : 0;
}

/*
 * Copy row `i` of plan p (whose columns are CLAIMED_RUN_SELECT's) into
 * `run`, in the current context, with what it needs of its task and
 * queue.  Inside the SPI connection that ran p; rows are read in order,
 * from row 0.
 */
void
claim_read_run(NamedPlan *p, int i, ClaimedRun *run)
{
	ClaimRow	r;
	PlanValue	f[RF_COUNT];
	int32		own_max_duration_ms;
	const TaskOfRun *t;

	if (i == 0)
	{
		if (result_cache.cxt == NULL)
			result_cache.cxt = AllocSetContextCreate(TopMemoryContext, "taskorch claimed runs' tasks",
													 ALLOCSET_SMALL_SIZES);
		MemoryContextReset(result_cache.cxt);
		result_cache.ntasks = result_cache.nqueues = 0;
	}
	taskorch_read_row(p, i, &r);
	read_fields(r.run.datum, f);
	run->id = pv_cstring(f[RF_id]);
	run->task_id = pv_cstring(f[RF_task_id]);
	run->payload = pv_jsonb_copy(f[RF_payload]);
	run->attempts = DatumGetInt32(f[RF_attempts].datum);
	run->max_attempts = DatumGetInt32(f[RF_max_attempts].datum);
	run->run_at = DatumGetTimestampTz(f[RF_run_at].datum);
	run->owner = role_ref_oid(f[RF_owner].datum);
	run->expires_at = f[RF_expires_at].present ? DatumGetTimestampTz(f[RF_expires_at].datum) : 0;
	run->metadata = pv_jsonb_copy(f[RF_metadata]);
	run->metadata_changed = false;
	run->queue = pv_cstring(f[RF_queue]);
	run->concurrency_key = pv_cstring(f[RF_concurrency_key]);
	run->skipped = false;
	run->parent_run_id = pv_cstring(f[RF_parent_run_id]);
	run->parent_wait_seq = f[RF_parent_wait_seq].present ?
		DatumGetInt32(f[RF_parent_wait_seq].datum) : 0;
	run->root_run_id = pv_cstring(f[RF_root_run_id]);
	run->unstarted = !f[RF_started_at].present;
	run->triggered_by = role_ref_oid(f[RF_triggered_by].datum);
	run->external = DatumGetBool(f[RF_external].datum);
	run->started_at = f[RF_claimed_at].present ? DatumGetTimestampTz(f[RF_claimed_at].datum) : 0;
	run->holds_slot = DatumGetBool(f[RF_holds_slot].datum);
	run->row_status = run_status_parse(DatumGetCString(DirectFunctionCall1(enum_out, f[RF_status].datum)));
	run->lease_expires_at = f[RF_lease_expires_at].present ?
		DatumGetTimestampTz(f[RF_lease_expires_at].datum) : 0;
	run->lease_ms = f[RF_lease_ms].present ? DatumGetInt32(f[RF_lease_ms].datum) : 0;
	run->tid = *(ItemPointer) DatumGetPointer(r.tid.datum);
	own_max_duration_ms = duration_ms(f[RF_max_duration]);
	run->concurrency_limit = queue_limit(run->queue);

	/* its task: registered by the role that owns the run (else another's now) */
	t = task_of_run(run->task_id);
	run->task_found = t->found && t->owner == run->owner;
	run->task_reowned = t->found && t->owner != run->owner;
	if (!run->task_found)
		return;
	run->fn = t->fn;
	run->retry_factor = t->retry_factor;
	run->retry_min_ms = t->retry_min_ms;
	run->retry_max_ms = t->retry_max_ms;
	run->retry_randomize = t->retry_randomize;
	/* the run's own max_duration, else its task's */
	run->max_duration_ms = own_max_duration_ms > 0 ? own_max_duration_ms : t->max_duration_ms;
	run->output_schema = t->output_schema ?
		(Jsonb *) pg_detoast_datum_copy((struct varlena *) t->output_schema) : NULL;
	run->on_success = t->on_success ? pstrdup(t->on_success) : NULL;
	run->on_failure = t->on_failure ? pstrdup(t->on_failure) : NULL;
	run->on_start = t->on_start ? pstrdup(t->on_start) : NULL;
}

