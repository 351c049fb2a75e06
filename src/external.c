/*-------------------------------------------------------------------------
 *
 * external.c
 *	  External tasks: runs claimed over an ordinary connection by workers
 *	  outside the server (the `taskorch` command, or any client), under a
 *	  lease.  The protocol is SQL: claim_runs(), heartbeat(),
 *	  complete_run(), fail_run(), release_run(), and the run's metadata by
 *	  its lease; the server side watches the leases.
 *
 * A claim moves each run QUEUED -> EXECUTING in the caller's transaction
 * (commit it at once: call it on its own, in autocommit) and gives it a
 * signed lease (lease.c).  Every call by lease locks the row and checks
 * the lease is the current one; a stale lease (the run was canceled, lost
 * and retried, released and claimed again) is refused with SQLSTATE 55000
 * saying why, and changes nothing, so an attempt has at most one outcome.
 *
 * Outcomes are decided and recorded by the engine's own path (runs.c's
 * decide_outcome, hooks, complete.c's complete_runs), from EXECUTING:
 * retries, hooks, the waits of a parent, tracks and notifications work as
 * for a run a worker executes.
 *
 * The server's side, the leases lost and the runs made due, is
 * external_watch.c's.
 *
 * Queue limits count external runs from claim to outcome (concurrency.c).
 * External workers wait on LISTEN EXTERNAL_CHANNEL: the payload is a task
 * id with runs due now, sent at the commit of a trigger (trigger.c), of a
 * run made due by a worker's maintenance (external_notify_due), and of a
 * run that gave back its queue's slot.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/procarray.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(taskorch_claim_runs);
PG_FUNCTION_INFO_V1(taskorch_heartbeat);
PG_FUNCTION_INFO_V1(taskorch_complete_run);
PG_FUNCTION_INFO_V1(taskorch_fail_run);
PG_FUNCTION_INFO_V1(taskorch_release_run);
PG_FUNCTION_INFO_V1(taskorch_complete_runs);
PG_FUNCTION_INFO_V1(taskorch_lease_metadata);
PG_FUNCTION_INFO_V1(taskorch_lease_metadata_replace);

#define MAX_CLAIM			1000
#define MIN_LEASE_MS		1000
#define MAX_LEASE_MS		(24 * 3600 * 1000)
#define LEASE_HINT			"Pass the lease taskorch.claim_runs() returned for the run."

/* ---------------------------------------------------------------------
 * Plans
 * ---------------------------------------------------------------------
 */

typedef struct TaskArgs
{
	PlanValue	task;
} TaskArgs;

typedef struct TaskRow
{
	PlanValue	external;
	PlanValue	owner;
	PlanValue	executors;
} TaskRow;

static const PlanField task_params[] = {
	PLAN_PARAM(TaskArgs, task, TEXTOID),
};
static const PlanField task_columns[] = {
	PLAN_COLUMN(TaskRow, external),
	PLAN_COLUMN(TaskRow, owner),
	PLAN_COLUMN(TaskRow, executors),
};
static NamedPlan task_plan = {
	.sql = "SELECT external, owner::oid AS owner, executors FROM taskorch.task WHERE id = :task",
	PLAN_PARAMS(task_params), PLAN_COLUMNS(task_columns)
};

typedef struct ClaimArgs
{
	PlanValue	task;
	PlanValue	now;
	PlanValue	limit;
	PlanValue	full_keys;		/* "queue\x1fkey"s found at their limit */
} ClaimArgs;

static const PlanField claim_params[] = {
	PLAN_PARAM(ClaimArgs, task, TEXTOID),
	PLAN_PARAM(ClaimArgs, now, TIMESTAMPTZOID),
	PLAN_PARAM(ClaimArgs, limit, INT4OID),
	PLAN_PARAM(ClaimArgs, full_keys, TEXTARRAYOID),
};
/* a task's due runs, in queue order (run_external_idx) */
static NamedPlan claim_plan = {
	.sql = "SELECT " CLAIMED_RUN_SELECT
	" LEFT JOIN taskorch.queue q ON q.name = r.queue"
	" WHERE r.task_id = :task AND r.status = " SQL_STATUS(QUEUED) " AND r.external"
	"   AND r.run_at <= :now AND NOT coalesce(q.paused, false)"
	"   AND " CLAIM_KEY_NOT_FULL
	" ORDER BY r.run_at, r.id LIMIT :limit"
	"   FOR UPDATE OF r SKIP LOCKED",
	PLAN_PARAMS(claim_params), .columns = claimed_run_columns,
	.ncolumns = CLAIMED_RUN_NCOLUMNS, .shape = PLAN_INDEX_ORDER
};

typedef struct StartArgs
{
	PlanValue	ids;
	PlanValue	holds;
	PlanValue	now;
	PlanValue	lease_ms;
	PlanValue	pid;
	PlanValue	backend_start;
} StartArgs;

static const PlanField start_params[] = {
	PLAN_PARAM(StartArgs, ids, TEXTARRAYOID),
	PLAN_PARAM(StartArgs, holds, BOOLARRAYOID),
	PLAN_PARAM(StartArgs, now, TIMESTAMPTZOID),
	PLAN_PARAM(StartArgs, lease_ms, INT4OID),
	PLAN_PARAM(StartArgs, pid, INT4OID),
	PLAN_PARAM(StartArgs, backend_start, TIMESTAMPTZOID),
};
/* the claimed runs: EXECUTING under their lease */
static NamedPlan start_plan = {
	.sql = "UPDATE taskorch.run r SET status = " SQL_STATUS(EXECUTING) ","
	"       started_at = coalesce(r.started_at, :now), claimed_at = :now, updated_at = :now,"
	"       lease_ms = :lease_ms,"
	"       lease_expires_at = :now + :lease_ms * interval '1 millisecond',"
	"       claimed_by_pid = :pid, claimed_by_start = :backend_start,"
	"       holds_slot = u.holds, expires_at = NULL"
	"  FROM unnest(:ids, :holds) AS u(id, holds)"
	" WHERE r.id = u.id",
	PLAN_PARAMS(start_params), .shape = PLAN_KEY_LOOKUPS
};

typedef struct RunIdArgs
{
	PlanValue	id;
} RunIdArgs;

static const PlanField run_id_params[] = {
	PLAN_PARAM(RunIdArgs, id, TEXTOID),
};
/* the run a lease names, locked */
static NamedPlan lease_plan = {
	.sql = "SELECT " CLAIMED_RUN_SELECT " WHERE r.id = :id FOR UPDATE OF r",
	PLAN_PARAMS(run_id_params), .columns = claimed_run_columns,
	.ncolumns = CLAIMED_RUN_NCOLUMNS
};

typedef struct HeartbeatArgs
{
	PlanValue	id;
	PlanValue	now;
	PlanValue	lease_ms;
	PlanValue	pid;
	PlanValue	backend_start;
} HeartbeatArgs;

typedef struct ExpiresRow
{
	PlanValue	lease_expires_at;
} ExpiresRow;

static const PlanField heartbeat_params[] = {
	PLAN_PARAM(HeartbeatArgs, id, TEXTOID),
	PLAN_PARAM(HeartbeatArgs, now, TIMESTAMPTZOID),
	PLAN_PARAM(HeartbeatArgs, lease_ms, INT4OID),
	PLAN_PARAM(HeartbeatArgs, pid, INT4OID),
	PLAN_PARAM(HeartbeatArgs, backend_start, TIMESTAMPTZOID),
};
static const PlanField expires_columns[] = {
	PLAN_COLUMN(ExpiresRow, lease_expires_at),
};
/* the lease goes on, bound to the calling backend */
static NamedPlan heartbeat_plan = {
	.sql = "UPDATE taskorch.run SET lease_ms = :lease_ms,"
	"       lease_expires_at = :now + :lease_ms * interval '1 millisecond',"
	"       claimed_by_pid = :pid, claimed_by_start = :backend_start"
	" WHERE id = :id RETURNING lease_expires_at",
	PLAN_PARAMS(heartbeat_params), PLAN_COLUMNS(expires_columns)
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
/* back to its place in the queue, no attempt spent */
static NamedPlan release_plan = {
	.sql = "UPDATE taskorch.run SET status = " SQL_STATUS(QUEUED) ", updated_at = :now,"
	"       holds_slot = false, lease_expires_at = NULL"
	" WHERE id = :id",
	PLAN_PARAMS(release_params)
};

typedef struct MetadataArgs
{
	PlanValue	id;
	PlanValue	metadata;
} MetadataArgs;

static const PlanField metadata_params[] = {
	PLAN_PARAM(MetadataArgs, id, TEXTOID),
	PLAN_PARAM(MetadataArgs, metadata, JSONBOID),
};
static NamedPlan metadata_plan = {
	.sql = "UPDATE taskorch.run SET metadata = :metadata WHERE id = :id",
	PLAN_PARAMS(metadata_params)
};

/* ---------------------------------------------------------------------
 * Leases (lease.c)
 * ---------------------------------------------------------------------
 */

static void
no_lease(const char *text)
{
	ereport(ERROR,
			errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			errmsg("lease \"%s\" is not valid", text),
			errhint(LEASE_HINT));
}

static void
stale(const Lease *l, const char *why)
{
	ereport(ERROR,
			errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			errmsg("lease of run %s (attempt %d) is no longer current: %s",
				   l->run_id, l->attempt, why),
			errhint("Drop the work of this attempt; the run's outcome is the engine's now."));
}

/*
 * The run `l` leases, read and locked (inside SPI, into the caller's
 * context `cxt`).  Errors unless the lease is the run's current one; with
 * canceled_ok, a run canceled in the lease's attempt is returned instead
 * (heartbeat() reports it).
 */
static ClaimedRun *
lease_run(Lease *l, MemoryContext cxt, bool canceled_ok)
{
	RunIdArgs	args = {pv_text(l->run_id)};
	ClaimedRun *run;
	MemoryContext old;
	const char *why;

	if (taskorch_execute_args(&lease_plan, &args, false, 1) != 1)
		stale(l, "the run was removed");
	old = MemoryContextSwitchTo(cxt);
	run = palloc0(sizeof(ClaimedRun));
	claim_read_run(&lease_plan, 0, run);
	run->cxt = cxt;
	MemoryContextSwitchTo(old);
	if ((why = lease_stale(run, l, canceled_ok)) != NULL)
		stale(l, why);
	return run;
}

static char *
lease_arg(FunctionCallInfo fcinfo, int argno)
{
	require_arg(fcinfo, argno, "lease", LEASE_HINT);
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/* The run the lease names, checked current (inside SPI; see lease_run) */
static ClaimedRun *
leased_run(const char *lease, MemoryContext cxt, bool canceled_ok)
{
	Lease		l;

	if (current_run() != NULL)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("calls by lease cannot be made inside a task"),
				errhint("External runs are worked by workers outside the server."));
	if (!lease_read(lease, &l))
		no_lease(lease);
	return lease_run(&l, cxt, canceled_ok);
}

/* A lease length (taskorch.duration) argument, or dflt when NULL */
static int32
lease_ms_arg(FunctionCallInfo fcinfo, int argno, const char *what, int32 dflt)
{
	int64		ms;

	if (PG_ARGISNULL(argno))
		return dflt;
	ms = duration_ms_from_text(what, TextDatumGetCString(PG_GETARG_DATUM(argno)), false);
	if (ms < MIN_LEASE_MS || ms > MAX_LEASE_MS)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("invalid %s \"%s\": must be between 1s and 24h", what,
					   TextDatumGetCString(PG_GETARG_DATUM(argno))),
				errhint("Pass a lease such as \"30s\" and heartbeat well within it."));
	return (int32) ms;
}

/* ---------------------------------------------------------------------
 * The protocol
 * ---------------------------------------------------------------------
 */

/* Tell external workers of `task` it has due runs (at commit, once per task). */
void
external_notify_task(const char *task)
{
	Async_Notify(EXTERNAL_CHANNEL, task);
}

/* The tasks of a claim, checked: registered, external, executable by the caller */
static char **
claim_tasks(ArrayType *array, int *ntasks)
{
	Datum	   *items;
	bool	   *nulls;
	int			n;
	char	  **tasks;
	int			k = 0;

	deconstruct_array(array, TEXTOID, -1, false, TYPALIGN_INT, &items, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("tasks must name at least one task"),
				errhint("Pass the external tasks to claim runs of, e.g. ARRAY['extract_audio']."));
	tasks = palloc(sizeof(char *) * n);
	for (int i = 0; i < n; i++)
	{
		TaskArgs	args;
		TaskRow		row;
		char	   *task;
		bool		dup = false;

		if (nulls[i])
			ereport(ERROR,
					errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					errmsg("tasks must not contain NULL"),
					errhint("Pass the ids of external tasks."));
		task = TextDatumGetCString(items[i]);
		for (int j = 0; j < k; j++)
			dup |= strcmp(tasks[j], task) == 0;
		if (dup)
			continue;
		args.task = pv_text(task);
		if (taskorch_execute_args(&task_plan, &args, true, 1) == 0)
			ereport(ERROR,
					errcode(ERRCODE_UNDEFINED_OBJECT),
					errmsg("task \"%s\" is not registered", task),
					errhint("Register it with taskorch.register_external_task()."));
		taskorch_read_row(&task_plan, 0, &row);
		if (!DatumGetBool(row.external.datum))
			ereport(ERROR,
					errcode(ERRCODE_WRONG_OBJECT_TYPE),
					errmsg("task \"%s\" is not an external task", task),
					errdetail("Its runs are executed by the server's workers."),
					errhint("Register external tasks with taskorch.register_external_task()."));
		if (!granted_to_user(DatumGetObjectId(row.owner.datum),
							 DatumGetArrayTypeP(row.executors.datum)))
			ereport(ERROR,
					errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					errmsg("permission denied to execute task \"%s\"", task),
					errdetail("The task is owned by role %s.",
							  GetUserNameFromId(DatumGetObjectId(row.owner.datum), false)),
					errhint("Its owner can allow you with taskorch.grant_execute('%s', <role>).", task));
		tasks[k++] = task;
	}
	*ntasks = k;
	return tasks;
}

/*
 * Claim up to `limit` due runs of `task` into runs[] (in cxt); runs that
 * cannot start (expired, task gone) are decided and put in settled[].
 * A run whose queue key is full stays QUEUED, the key is passed over, and
 * the claim looks further.
 */
static int
claim_task(const char *task, int limit, List **full_keys, ClaimedRun *runs,
		   ClaimedRun *settled, int *nsettled, MemoryContext cxt)
{
	int			n = 0;
	TimestampTz now = GetCurrentTimestamp();

	for (;;)
	{
		ClaimArgs	args;
		int			want = limit - n;
		int			got;
		bool		found_full = false;

		args.task = pv_text(task);
		args.now = pv_timestamptz(now);
		args.limit = pv_int4(want);
		args.full_keys = claim_full_keys(*full_keys);
		got = taskorch_execute_args(&claim_plan, &args, false, 0);
		for (int i = 0; i < got; i++)
		{
			MemoryContext old = MemoryContextSwitchTo(cxt);
			ClaimedRun	run = {0};
			char	   *key;

			claim_read_run(&claim_plan, i, &run);
			run.cxt = cxt;
			run.started_at = run.finished_at = now;
			run.expired = run.expires_at != 0 && now >= run.expires_at;
			key = claim_full_key(&run);
			if (!run.task_found || run.expired)
			{
				decide_outcome(&run);
				settled[(*nsettled)++] = run;
			}
			else if (list_member(*full_keys, makeString(key)))
				;				/* its key was found full by a run before it */
			else if (run.concurrency_limit > 0 &&
					 !concurrency_reserve(concurrency_key_hash(run.queue, run.concurrency_key),
										  run.concurrency_limit))
			{
				*full_keys = lappend(*full_keys, makeString(key));
				found_full = true;
			}
			else
			{
				run.holds_slot = run.concurrency_limit > 0;
				runs[n++] = run;
			}
			MemoryContextSwitchTo(old);
		}
		/* drained, or filled: done; runs passed over: look past them */
		if (got < want || n == limit || !found_full)
			return n;
	}
}

/*
 * SQL: taskorch.claim_runs(tasks text[], max_runs int, lease duration)
 * -> (run_id, task, payload, attempt, max_attempts, metadata, lease,
 * lease_expires_at): due runs of the tasks, EXECUTING under a lease once
 * the caller's transaction commits.  The tasks are served in turn, each
 * claim starting with the next one, and each task's runs in queue order.
 */
Datum
taskorch_claim_runs(PG_FUNCTION_ARGS)
{
	static uint32 turn = 0;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext cxt = CurrentMemoryContext;
	int32		max_runs;
	int32		lease_ms;
	char	  **tasks;
	int			ntasks;
	ClaimedRun *runs;
	ClaimedRun *settled;
	int			n = 0;
	int			nsettled = 0;
	List	   *full_keys = NIL;	/* String nodes: "queue\x1fkey" */
	char	  **leases;
	PlanItems	ids,
				holds;
	StartArgs	args;
	TimestampTz now;

	require_arg(fcinfo, 0, "tasks", "Pass the external tasks to claim runs of, e.g. ARRAY['extract_audio'].");
	max_runs = PG_ARGISNULL(1) ? 1 : PG_GETARG_INT32(1);
	if (max_runs < 1 || max_runs > MAX_CLAIM)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("max_runs must be between 1 and %d, not %d", MAX_CLAIM, max_runs),
				errhint("Claim as many runs as the worker will start now."));
	lease_ms = lease_ms_arg(fcinfo, 2, "lease", 30000);
	if (current_run() != NULL)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("taskorch.claim_runs() cannot be called inside a task"),
				errhint("External runs are claimed by workers outside the server."));
	InitMaterializedSRF(fcinfo, 0);
	concurrency_counts_ready();
	external_claimer_register();
	/*
	 * A claim on its own (autocommit) need not wait for its commit to reach
	 * the disk: a claim a crash loses leaves its runs QUEUED, and the
	 * worker's leases are refused; its runs are done again, as any run a
	 * crash interrupts.  (In a transaction block the caller's other writes
	 * keep their durability.)
	 */
	if (!IsTransactionBlock())
		(void) set_config_option("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);

	SPI_connect();
	tasks = claim_tasks(PG_GETARG_ARRAYTYPE_P(0), &ntasks);
	runs = MemoryContextAllocZero(cxt, sizeof(ClaimedRun) * max_runs);
	settled = MemoryContextAllocZero(cxt, sizeof(ClaimedRun) * max_runs * ntasks);
	turn++;
	for (int t = 0; t < ntasks && n < max_runs; t++)
		n += claim_task(tasks[(turn + t) % ntasks], max_runs - n, &full_keys,
						runs + n, settled, &nsettled, cxt);

	now = GetCurrentTimestamp();
	leases = MemoryContextAlloc(cxt, sizeof(char *) * Max(n, 1));	/* read after SPI_finish */
	ids = plan_items_new(Max(n, 1));
	holds = plan_items_new(Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		run_transition(RUN_QUEUED, RUN_EXECUTING, BY_EXTERNAL);
		leases[i] = MemoryContextStrdup(cxt, lease_make(runs[i].id, runs[i].attempts + 1, now));
		ids.values[i] = CStringGetTextDatum(runs[i].id);
		holds.values[i] = BoolGetDatum(runs[i].holds_slot);
	}
	if (n > 0)
	{
		args.ids = plan_items_array(ids, n, TEXTOID);
		args.holds = plan_items_array(holds, n, BOOLOID);
		args.now = pv_timestamptz(now);
		args.lease_ms = pv_int4(lease_ms);
		args.pid = pv_int4(MyProcPid);
		args.backend_start = pv_timestamptz(MyStartTimestamp);
		taskorch_execute_args(&start_plan, &args, false, 0);
	}
	/* a run's first start fires its task's on_start hook */
	for (int i = 0; i < n; i++)
	{
		runs[i].status = RUN_EXECUTING;
		if (runs[i].unstarted)
			hooks_fire(&runs[i]);
	}
	if (nsettled > 0)
		complete_runs(settled, nsettled);
	logs_flush();
	SPI_finish();

	for (int i = 0; i < n; i++)
	{
		Datum		values[8];
		bool		nulls[8] = {0};

		values[0] = CStringGetTextDatum(runs[i].id);
		values[1] = CStringGetTextDatum(runs[i].task_id);
		values[2] = JsonbPGetDatum(runs[i].payload);
		values[3] = Int32GetDatum(runs[i].attempts + 1);
		values[4] = Int32GetDatum(runs[i].max_attempts);
		values[5] = JsonbPGetDatum(runs[i].metadata);
		values[6] = CStringGetTextDatum(leases[i]);
		values[7] = TimestampTzGetDatum(TimestampTzPlusMilliseconds(now, lease_ms));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * SQL: taskorch.heartbeat(lease, extend duration) -> (canceled,
 * lease_expires_at): the lease goes on for `extend` (default: the length
 * it was claimed with) from now, and the run is bound to the calling
 * backend (a worker that reconnected after a restart heartbeats to keep its
 * runs).  canceled: the run was canceled meanwhile; stop its work.
 */
Datum
taskorch_heartbeat(PG_FUNCTION_ARGS)
{
	MemoryContext caller = CurrentMemoryContext;	/* the run outlives SPI */
	char	   *lease = lease_arg(fcinfo, 0);
	ClaimedRun *run;
	TupleDesc	desc;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	HeartbeatArgs args;
	ExpiresRow	row;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "taskorch: heartbeat() must return a record");
	desc = BlessTupleDesc(desc);
	concurrency_counts_ready();
	external_claimer_register();
	SPI_connect();
	run = leased_run(lease, caller, true);
	values[0] = BoolGetDatum(run->row_status == RUN_CANCELED);
	if (run->row_status == RUN_CANCELED)
		nulls[1] = true;
	else
	{
		args.id = pv_text(run->id);
		args.now = pv_timestamptz(GetCurrentTimestamp());
		args.lease_ms = pv_int4(lease_ms_arg(fcinfo, 1, "extend", run->lease_ms));
		args.pid = pv_int4(MyProcPid);
		args.backend_start = pv_timestamptz(MyStartTimestamp);
		taskorch_execute_args(&heartbeat_plan, &args, false, 1);
		taskorch_read_row(&heartbeat_plan, 0, &row);
		values[1] = row.lease_expires_at.datum;
	}
	SPI_finish();
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/* Check the output against the task's schema; a mismatch fails the attempt. */
static void
check_output(ClaimedRun *run)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;

	if (run->output_schema == NULL || is_failed_result(run->output))
		return;
	BeginInternalSubTransaction(NULL);
	PG_TRY();
	{
		schema_validate(run->output_schema,
						run->output ? run->output : jsonb_from_cstring("null"),
						"output", run->task_id);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(run->cxt);
		run->edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		run->succeeded = false;
		run->output = NULL;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
}

/*
 * The worker's outcome of a run's attempt: succeeded with `value` as its
 * output (checked against the task's schema), or failed with `value` as
 * its error (an object), retried per the task or not.
 */
static void
set_outcome(ClaimedRun *run, bool succeeded, Jsonb *value, bool retry)
{
	run->finished_at = GetCurrentTimestamp();
	run->succeeded = succeeded;
	if (succeeded)
	{
		run->output = value;
		check_output(run);
	}
	else
	{
		run->reported_error = value;
		run->no_retry = !retry;
	}
}

/* The run's outcome is recorded (complete.c): its queue slot goes at commit */
static void
after_outcome(ClaimedRun *run)
{
	if (run->holds_slot)
	{
		concurrency_release_at_commit(concurrency_key_hash(run->queue, run->concurrency_key));
		external_notify_task(run->task_id);	/* its queue has room again */
	}
}

/* An error as fail_run() takes it: an object, or a string that is its message; else NULL */
static Jsonb *
error_object_or_null(Jsonb *error)
{
	if (JB_ROOT_IS_SCALAR(error) && jsonb_value(error).type == jbvString)
	{
		JsonbValue	v = jsonb_value(error);
		JsonObject	o;

		json_begin(&o);
		json_string(&o, "message", pnstrdup(v.val.string.val, v.val.string.len));
		return json_end(&o);
	}
	return JB_ROOT_IS_OBJECT(error) ? error : NULL;
}

#define ERROR_HINT "Pass {\"message\": \"...\", \"name\": \"...\"} or a message."

static Jsonb *
error_object(Jsonb *error)
{
	Jsonb	   *object = error_object_or_null(error);

	if (object == NULL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("error must be a JSON object or string"),
				errhint(ERROR_HINT));
	return object;
}

/*
 * The attempt of the run `lease` holds ends: succeeded with `value` as its
 * output, or failed with `value` as its error (retried or not).  Returns
 * the run's status.
 */
static RunStatus
finish(const char *lease, bool succeeded, Jsonb *value, bool retry)
{
	MemoryContext caller = CurrentMemoryContext;	/* the run outlives SPI */
	ClaimedRun *run;

	concurrency_counts_ready();
	SPI_connect();
	run = leased_run(lease, caller, false);
	if (!succeeded)
		value = error_object(value);
	set_outcome(run, succeeded, value, retry);
	decide_outcome(run);
	hooks_fire(run);
	complete_runs(run, 1);
	after_outcome(run);
	SPI_finish();
	return run->status;
}

/* The run goes back to its place in the queue, no attempt spent (inside SPI) */
static void
give_back(ClaimedRun *run)
{
	ReleaseArgs args = {pv_text(run->id), pv_timestamptz(GetCurrentTimestamp())};

	run_transition(RUN_EXECUTING, RUN_QUEUED, BY_EXTERNAL);
	taskorch_execute_args(&release_plan, &args, false, 0);
	run->status = RUN_QUEUED;
	after_outcome(run);
	external_notify_task(run->task_id);
}

/*
 * SQL: taskorch.complete_run(lease, output) -> the run's status:
 * COMPLETED, or (an FP Result with "success": false, an output its schema
 * refuses) QUEUED for a retry or FAILED.
 */
Datum
taskorch_complete_run(PG_FUNCTION_ARGS)
{
	char	   *lease = lease_arg(fcinfo, 0);
	Jsonb	   *output = PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P_COPY(1);

	PG_RETURN_TEXT_P(cstring_to_text(run_status_name(finish(lease, true, output, true))));
}

/*
 * SQL: taskorch.fail_run(lease, error, retry) -> the run's status: QUEUED
 * for a retry per its task's policy, or FAILED (retry false: at once).
 */
Datum
taskorch_fail_run(PG_FUNCTION_ARGS)
{
	char	   *lease = lease_arg(fcinfo, 0);

	require_arg(fcinfo, 1, "error", "Pass {\"message\": \"...\"} or a message.");
	PG_RETURN_TEXT_P(cstring_to_text(run_status_name(
		finish(lease, false, PG_GETARG_JSONB_P_COPY(1), PG_ARGISNULL(2) || PG_GETARG_BOOL(2)))));
}

/*
 * SQL: taskorch.release_run(lease) -> 'QUEUED': the worker gives the run
 * back unfinished (it is stopping), at its place in the queue, without
 * spending an attempt.
 */
Datum
taskorch_release_run(PG_FUNCTION_ARGS)
{
	MemoryContext caller = CurrentMemoryContext;	/* the run outlives SPI */
	char	   *lease = lease_arg(fcinfo, 0);

	concurrency_counts_ready();
	SPI_connect();
	give_back(leased_run(lease, caller, false));
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(run_status_name(RUN_QUEUED)));
}

/* The string value of `key` of object `item`, or NULL */
static char *
item_text(JsonbContainer *item, const char *key)
{
	JsonbValue *v = getKeyJsonValueFromContainer(item, key, strlen(key), NULL);

	if (v == NULL || v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* The JSON value of `key` of object `item` (or its text, `key`_text, parsed), or NULL */
static Jsonb *
item_json(JsonbContainer *item, const char *key)
{
	JsonbValue *v = getKeyJsonValueFromContainer(item, key, strlen(key), NULL);
	char	   *text;

	if (v != NULL)
		return JsonbValueToJsonb(v);
	text = item_text(item, psprintf("%s_text", key));
	if (text == NULL)
		return NULL;
	{
		Datum		parsed;
		char	   *why;

		if (!try_input(F_JSONB_IN, text, InvalidOid, &parsed, &why))
		{
			/* not JSON: the attempt fails, saying what came */
			JsonObject	o;

			json_begin(&o);
			json_string(&o, "message", psprintf("the worker's %s is not JSON: %.200s", key, text));
			json_string(&o, "name", "OutputError");
			return json_end(&o);
		}
		return DatumGetJsonbP(parsed);
	}
}

/* One item of complete_runs() */
typedef struct Outcome
{
	Lease		lease;
	bool		release;
	bool		succeeded;
	Jsonb	   *value;			/* the output, or the error (an object) */
	bool		retry;
	ClaimedRun *run;			/* the run it settles, or NULL */
	const char *problem;		/* why it settles nothing, or NULL */
} Outcome;

/* Read item `i` of complete_runs()'s outcomes into *o (inside SPI) */
static void
read_outcome(JsonbValue *v, int i, Outcome *o)
{
	JsonbContainer *item;
	char	   *lease;
	JsonbValue *rel;
	JsonbValue *retry;
	Jsonb	   *error;

	memset(o, 0, sizeof(Outcome));
	if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data) ||
		(lease = item_text(v->val.binary.data, "lease")) == NULL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("outcome %d is not an object with a \"lease\"", i + 1),
				errhint("Pass {\"lease\", \"output\"} or {\"lease\", \"error\"}."));
	item = v->val.binary.data;
	o->lease.text = lease;
	if (!lease_read(lease, &o->lease))
	{
		o->problem = psprintf("lease \"%s\" is not valid", lease);
		return;
	}
	rel = getKeyJsonValueFromContainer(item, "release", 7, NULL);
	retry = getKeyJsonValueFromContainer(item, "retry", 5, NULL);
	o->release = rel && rel->type == jbvBool && rel->val.boolean;
	o->retry = !(retry && retry->type == jbvBool && !retry->val.boolean);
	error = item_json(item, "error");
	o->succeeded = error == NULL;
	o->value = o->succeeded ? item_json(item, "output") : error_object_or_null(error);
	if (!o->succeeded && o->value == NULL)
		o->problem = "error must be a JSON object or string";
}

typedef struct RunIdsArgs
{
	PlanValue	ids;
} RunIdsArgs;

static const PlanField run_ids_params[] = {
	PLAN_PARAM(RunIdsArgs, ids, TEXTARRAYOID),
};
/* the runs some leases name, locked in one order (no deadlock between batches) */
static NamedPlan leases_plan = {
	.sql = "SELECT " CLAIMED_RUN_SELECT " WHERE r.id = ANY (:ids) ORDER BY r.id FOR UPDATE OF r",
	PLAN_PARAMS(run_ids_params), .columns = claimed_run_columns,
	.ncolumns = CLAIMED_RUN_NCOLUMNS, .shape = PLAN_KEY_LOOKUPS
};

/*
 * SQL: taskorch.complete_runs(outcomes jsonb) -> (lease, status, error):
 * several outcomes in one transaction and one write (complete.c), each
 * checked on its own: a lease no longer current is reported in `error` and
 * spoils no other.  Each item is {"lease", "output"}, {"lease", "error",
 * "retry"}, or {"lease", "release": true}; "output_text" and "error_text"
 * give the JSON as text, which, when it is not JSON, fails the attempt.
 */
Datum
taskorch_complete_runs(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext cxt = CurrentMemoryContext;
	Jsonb	   *outcomes;
	Outcome    *items;
	ClaimedRun *done;
	Datum	   *ids;
	int			n,
				nids = 0,
				ndone = 0,
				found;

	require_arg(fcinfo, 0, "outcomes", "Pass a JSON array of {\"lease\", \"output\"} or {\"lease\", \"error\"}.");
	outcomes = PG_GETARG_JSONB_P(0);
	if (!JB_ROOT_IS_ARRAY(outcomes) || JB_ROOT_IS_SCALAR(outcomes))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("outcomes must be a JSON array"),
				errhint("Pass a JSON array of {\"lease\", \"output\"} or {\"lease\", \"error\"}."));
	if (current_run() != NULL)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("calls by lease cannot be made inside a task"),
				errhint("External runs are worked by workers outside the server."));
	InitMaterializedSRF(fcinfo, 0);
	n = JB_ROOT_COUNT(outcomes);
	items = palloc0(sizeof(Outcome) * Max(n, 1));
	ids = palloc(sizeof(Datum) * Max(n, 1));
	done = palloc0(sizeof(ClaimedRun) * Max(n, 1));
	concurrency_counts_ready();
	SPI_connect();
	for (int i = 0; i < n; i++)
	{
		read_outcome(getIthJsonbValueFromContainer(&outcomes->root, i), i, &items[i]);
		for (int j = 0; j < i && items[i].problem == NULL; j++)
			if (items[j].problem == NULL && strcmp(items[j].lease.run_id, items[i].lease.run_id) == 0)
				items[i].problem = "another outcome of this call settles the run";
		if (items[i].problem == NULL)
			ids[nids++] = CStringGetTextDatum(items[i].lease.run_id);
	}
	{
		RunIdsArgs	args = {pv_datum(PointerGetDatum(construct_array(ids, nids, TEXTOID, -1,
																	  false, TYPALIGN_INT)))};

		found = nids > 0 ? taskorch_execute_args(&leases_plan, &args, false, 0) : 0;
	}
	for (int k = 0; k < found; k++)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);
		ClaimedRun *run = palloc0(sizeof(ClaimedRun));

		claim_read_run(&leases_plan, k, run);
		run->cxt = cxt;
		MemoryContextSwitchTo(old);
		for (int i = 0; i < n; i++)
			if (items[i].problem == NULL && strcmp(items[i].lease.run_id, run->id) == 0)
				items[i].run = run;
	}
	for (int i = 0; i < n; i++)
	{
		Outcome    *o = &items[i];

		if (o->problem != NULL)
			continue;
		if (o->run == NULL)
			o->problem = "the run was removed";
		else
			o->problem = lease_stale(o->run, &o->lease, false);
		if (o->problem != NULL)
		{
			o->problem = psprintf("lease of run %s (attempt %d) is no longer current: %s",
								  o->lease.run_id, o->lease.attempt, o->problem);
			continue;
		}
		if (o->release)
		{
			give_back(o->run);
			continue;
		}
		set_outcome(o->run, o->succeeded, o->value, o->retry);
		decide_outcome(o->run);
		hooks_fire(o->run);
		done[ndone++] = *o->run;
	}
	if (ndone > 0)
		complete_runs(done, ndone);
	for (int i = 0; i < ndone; i++)
		after_outcome(&done[i]);
	for (int i = 0, d = 0; i < n; i++)
	{
		Outcome    *o = &items[i];
		Datum		values[3];
		bool		nulls[3] = {false, o->problem != NULL, o->problem == NULL};

		values[0] = CStringGetTextDatum(o->lease.text);
		if (o->problem != NULL)
			values[2] = CStringGetTextDatum(o->problem);
		else if (o->release)
			values[1] = CStringGetTextDatum(run_status_name(RUN_QUEUED));
		else
			values[1] = CStringGetTextDatum(run_status_name(done[d++].status));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}

/* SQL: taskorch.lease_metadata(lease) -> the run's metadata */
Datum
taskorch_lease_metadata(PG_FUNCTION_ARGS)
{
	MemoryContext caller = CurrentMemoryContext;	/* the run outlives SPI */
	char	   *lease = lease_arg(fcinfo, 0);
	ClaimedRun *run;

	SPI_connect();
	run = leased_run(lease, caller, false);
	SPI_finish();
	PG_RETURN_JSONB_P(run->metadata);
}

/* SQL: taskorch.lease_metadata_replace(lease, metadata) -> it, written now */
Datum
taskorch_lease_metadata_replace(PG_FUNCTION_ARGS)
{
	MemoryContext caller = CurrentMemoryContext;	/* the run outlives SPI */
	char	   *lease = lease_arg(fcinfo, 0);
	Jsonb	   *metadata;
	ClaimedRun *run;
	MetadataArgs args;

	require_arg(fcinfo, 1, "metadata", "Pass '{}' to clear it.");
	metadata = PG_GETARG_JSONB_P(1);
	metadata_check(metadata);
	SPI_connect();
	run = leased_run(lease, caller, false);
	args.id = pv_text(run->id);
	args.metadata = pv_jsonb(metadata);
	taskorch_execute_args(&metadata_plan, &args, false, 0);
	SPI_finish();
	PG_RETURN_JSONB_P(metadata);
}

/*
 * The run a lease names, for logs.c's lease_log(): checked current, read
 * into the current context (inside SPI).
 */
ClaimedRun *
external_run_by_lease(const char *lease, MemoryContext cxt)
{
	return leased_run(lease, cxt, false);
}
