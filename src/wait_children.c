/*-------------------------------------------------------------------------
 *
 * wait_children.c
 *	  Child waits: trigger_and_wait(), batch_trigger_and_wait() and
 *	  batch_trigger_and_wait_query() suspend a run until the runs they
 *	  trigger have all finished, and resume it with their Result objects
 *	  in call order (waits.c has the replay mechanism they share).
 *
 * Transactions: a wait call runs in the task's subtransaction; it checks
 * the items and notes them on the run, and the children are triggered
 * after the attempt's rollback, in the batch's top-level transaction, as
 * the task's owner (waits_create_children, through execute_as_owner), so
 * they exist only if the run really waits.  A batch whose runs finish
 * children completes the waits they were the last of, in the same
 * transaction (waits_children_done), locking those waitpoints in a fixed
 * order first, then their runs (skipping one another transaction holds:
 * a cancel() holding a parent waits for the batches that hold its
 * children); the maintenance pass catches the rest (wait_children_resume).  Memory: the run's (batch) context.  Lock: none
 * shared; waitpoint rows, FOR UPDATE.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(taskorch_trigger_and_wait);
PG_FUNCTION_INFO_V1(taskorch_batch_trigger_and_wait);
PG_FUNCTION_INFO_V1(taskorch_batch_trigger_and_wait_query);
PG_FUNCTION_INFO_V1(taskorch_wait_checkpoint);

/*
 * Child-run waits whose children have all finished: complete them with the
 * children's Result objects, in call order, and queue their runs again
 * (but for a batch's track checkpoints, ADVANCE: those are returned, for
 * tracks_advance() to run the next step):
 * some waits (the batch that finished their children), or every pending
 * one of a WAITING run (the maintenance pass, which also catches children
 * that ended outside a batch: canceled, expired).  Whether a wait is over
 * is first asked of the children linked to it (one probe of
 * run_waited_idx, however many there are; a scalar subquery, so that it is
 * never planned as a hash of every unfinished child), and only then of
 * every child in its list, which may include runs it did not make (a
 * debounced or idempotent trigger's).
 */
#define CHILDREN_DONE_SQL(WAITS, ADVANCE) \
	"WITH ready AS (" \
	"  SELECT wp.run_id, wp.seq, wp.kind, wp.children" \
	"    FROM " WAITS \
	"   WHERE wp.completed_at IS NULL AND wp.kind IN ('run', 'batch')" \
	"     AND CASE WHEN (SELECT true FROM taskorch.run c" \
	"                     WHERE c.parent_run_id = wp.run_id COLLATE \"default\"" \
	"                       AND c.parent_wait_seq = wp.seq AND c.parent_run_id IS NOT NULL" \
	"                       AND c.status IN " SQL_UNFINISHED " LIMIT 1)" \
	"              THEN false" \
	"              ELSE NOT EXISTS (SELECT FROM taskorch.run c WHERE c.id = ANY (wp.children)" \
	"                                AND c.status IN " SQL_UNFINISHED ") END" \
	"   ORDER BY wp.run_id, wp.seq LIMIT 1000" \
	"   FOR UPDATE OF wp SKIP LOCKED)," \
	" done AS (UPDATE taskorch.waitpoint wp SET completed_at = :now," \
	"            result = CASE WHEN ready.kind = 'run' THEN results->0" \
	"                          ELSE jsonb_build_object('runs', results) END" \
	"            FROM ready, LATERAL (SELECT coalesce(jsonb_agg(taskorch_internal.result(c.status, c.id," \
	"                                   c.task_id, c.output, c.error) ORDER BY k.ord), '[]') AS results" \
	"                   FROM unnest(ready.children) WITH ORDINALITY AS k(id, ord)" \
	"                   JOIN taskorch.run c ON c.id = k.id) res" \
	"           WHERE wp.run_id = ready.run_id AND wp.seq = ready.seq" \
	"         RETURNING wp.run_id, wp.seq, wp.key IS NOT NULL AND " ADVANCE " AS advance)," \
	" queued AS (UPDATE taskorch.run r" \
	"            SET status = " SQL_STATUS(QUEUED) ", run_at = :now, updated_at = :now" \
	"           FROM (SELECT DISTINCT run_id FROM done WHERE NOT advance) d" \
	"          WHERE r.id = d.run_id AND r.status = " SQL_STATUS(WAITING) ")" \
	" SELECT run_id, seq, advance FROM done"

/* child waits: some (run_ids and seqs, their items side by side), or all */
typedef struct WaitsArgs
{
	PlanValue	run_ids;
	PlanValue	seqs;
	PlanValue	now;
} WaitsArgs;

/* a wait completed: queued, or a track's checkpoint to advance */
typedef struct DoneRow
{
	PlanValue	run_id;
	PlanValue	seq;
	PlanValue	advance;
} DoneRow;

static const PlanField done_columns[] = {
	PLAN_COLUMN(DoneRow, run_id),
	PLAN_COLUMN(DoneRow, seq),
	PLAN_COLUMN(DoneRow, advance),
};

static const PlanField children_done_params[] = {
	PLAN_PARAM(WaitsArgs, run_ids, TEXTARRAYOID),
	PLAN_PARAM(WaitsArgs, seqs, INT4ARRAYOID),
	PLAN_PARAM(WaitsArgs, now, TIMESTAMPTZOID),
};
/* the waits a batch finished children of */
static NamedPlan children_done_plan = {
	.sql = CHILDREN_DONE_SQL("(SELECT DISTINCT * FROM unnest(:run_ids, :seqs)) AS t(run_id, seq)"
							 " JOIN taskorch.waitpoint wp ON wp.run_id = t.run_id AND wp.seq = t.seq",
							 "true"),
	PLAN_PARAMS(children_done_params), PLAN_COLUMNS(done_columns), .shape = PLAN_KEY_LOOKUPS
};

static const PlanField all_children_done_params[] = {
	PLAN_PARAM(WaitsArgs, now, TIMESTAMPTZOID),
};
/*
 * every pending wait: the maintenance pass.  Found from the WAITING runs
 * (run_waiting_idx), so that a pass reads the waits of runs that wait, not
 * every wait the table keeps; a wait whose run no longer waits (canceled)
 * has no one to resume.
 */
static NamedPlan all_children_done_plan = {
	.sql = CHILDREN_DONE_SQL("taskorch.run p JOIN taskorch.waitpoint wp"
							 " ON wp.run_id = p.id AND p.status = " SQL_STATUS(WAITING), "false"),
	PLAN_PARAMS(all_children_done_params), .shape = PLAN_KEY_LOOKUPS
};

static const PlanField lock_waits_params[] = {
	PLAN_PARAM(WaitsArgs, run_ids, TEXTARRAYOID),
	PLAN_PARAM(WaitsArgs, seqs, INT4ARRAYOID),
};
/*
 * The waits a batch finished children of, locked in a fixed order before
 * children_done_plan asks whether they are over.  Two batches finishing
 * the last children of one wait take turns: the second asks after the
 * first committed, so it sees both and resumes the parent at once.
 */
static NamedPlan lock_waits_plan = {
	.sql = "SELECT FROM (SELECT DISTINCT * FROM unnest(:run_ids, :seqs)) AS t(run_id, seq)"
	"  JOIN taskorch.waitpoint wp ON wp.run_id = t.run_id AND wp.seq = t.seq"
	" WHERE wp.completed_at IS NULL"
	" ORDER BY wp.run_id, wp.seq FOR UPDATE OF wp",
	PLAN_PARAMS(lock_waits_params), .shape = PLAN_KEY_LOOKUPS
};

typedef struct ParentsArgs
{
	PlanValue	run_ids;
} ParentsArgs;

typedef struct ParentRow
{
	PlanValue	id;
} ParentRow;

static const PlanField lock_parents_params[] = {
	PLAN_PARAM(ParentsArgs, run_ids, TEXTARRAYOID),
};
static const PlanField lock_parents_columns[] = {
	PLAN_COLUMN(ParentRow, id),
};
/*
 * The waiting runs whose waits a batch may complete, locked (after their
 * waitpoints).  One locked by another transaction is passed over, not
 * waited for: a cancel() holds its run while it waits for the batches
 * that hold its children, this one among them; the maintenance pass
 * completes that run's wait later if it is still waiting.
 */
static NamedPlan lock_parents_plan = {
	.sql = "SELECT id FROM taskorch.run WHERE id = ANY (:run_ids)"
	" ORDER BY id FOR UPDATE SKIP LOCKED",
	PLAN_PARAMS(lock_parents_params), PLAN_COLUMNS(lock_parents_columns),
	.shape = PLAN_KEY_LOOKUPS
};

static int
compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * Lock the parents of the waits ids[0..k) (see lock_parents_plan) and keep,
 * in place, only the waits whose parent is now locked; returns how many.
 */
static int
keep_locked_parents(PlanItems *ids, PlanItems *seqs, PlanItems *child_ids, PlanItems *statuses,
					PlanItems *tasks, PlanItems *outputs, PlanItems *errors, int k)
{
	ParentsArgs args = {plan_items_array(*ids, k, TEXTOID)};
	int			nlocked = taskorch_execute_args(&lock_parents_plan, &args, false, 0);
	char	  **locked = palloc(sizeof(char *) * Max(nlocked, 1));
	int			kept = 0;

	for (int i = 0; i < nlocked; i++)
	{
		ParentRow	row;

		taskorch_read_row(&lock_parents_plan, i, &row);
		locked[i] = pv_cstring(row.id);
	}
	if (nlocked == k)
		return k;				/* each parent once: all of them */
	qsort(locked, nlocked, sizeof(char *), compare_strings);
	for (int i = 0; i < k; i++)
	{
		char	   *id = TextDatumGetCString(ids->values[i]);

		if (!bsearch(&id, locked, nlocked, sizeof(char *), compare_strings))
			continue;
#define KEEP(items) ((items)->values[kept] = (items)->values[i], (items)->nulls[kept] = (items)->nulls[i])
		KEEP(ids);
		KEEP(seqs);
		KEEP(child_ids);
		KEEP(statuses);
		KEEP(tasks);
		KEEP(outputs);
		KEEP(errors);
#undef KEEP
		kept++;
	}
	return kept;
}

/* the batch's finished children, each beside its parent's wait */
typedef struct ChildEndsArgs
{
	PlanValue	run_ids;
	PlanValue	seqs;
	PlanValue	child_ids;
	PlanValue	statuses;
	PlanValue	tasks;
	PlanValue	outputs;
	PlanValue	errors;
	PlanValue	now;
} ChildEndsArgs;

static const PlanField child_ends_params[] = {
	PLAN_PARAM(ChildEndsArgs, run_ids, TEXTARRAYOID),
	PLAN_PARAM(ChildEndsArgs, seqs, INT4ARRAYOID),
	PLAN_PARAM(ChildEndsArgs, child_ids, TEXTARRAYOID),
	PLAN_PARAM(ChildEndsArgs, statuses, TEXTARRAYOID),
	PLAN_PARAM(ChildEndsArgs, tasks, TEXTARRAYOID),
	PLAN_PARAM(ChildEndsArgs, outputs, JSONBARRAYOID),
	PLAN_PARAM(ChildEndsArgs, errors, JSONBARRAYOID),
	PLAN_PARAM(ChildEndsArgs, now, TIMESTAMPTZOID),
};
/*
 * The waits for one child (trigger_and_wait, a track's step) that a child
 * of this batch ended: over now, with its Result made from what the batch
 * knows of it, without asking the runs table whether it has finished.
 * The same rows as children_done_plan's.
 */
static NamedPlan one_child_done_plan = {
	.sql = "WITH done AS ("
	"  UPDATE taskorch.waitpoint wp SET completed_at = :now,"
	"         result = taskorch_internal.result(u.status::taskorch.run_status, u.child_id, u.task,"
	"                                   u.output, u.error)"
	"    FROM unnest(:run_ids, :seqs, :child_ids, :statuses, :tasks, :outputs, :errors)"
	"         AS u(run_id, seq, child_id, status, task, output, error)"
	"   WHERE wp.run_id = u.run_id AND wp.seq = u.seq AND wp.kind = 'run'"
	"     AND wp.completed_at IS NULL AND wp.children[1] = u.child_id"
	"  RETURNING wp.run_id, wp.seq, wp.key IS NOT NULL AS advance),"
	" queued AS (UPDATE taskorch.run r"
	"            SET status = " SQL_STATUS(QUEUED) ", run_at = :now, updated_at = :now"
	"           FROM (SELECT DISTINCT run_id FROM done WHERE NOT advance) d"
	"          WHERE r.id = d.run_id AND r.status = " SQL_STATUS(WAITING) ")"
	" SELECT run_id, seq, advance FROM done",
	PLAN_PARAMS(child_ends_params), PLAN_COLUMNS(done_columns), .shape = PLAN_KEY_LOOKUPS
};

/*
 * The waits a statement completed (one_child_done_plan's or
 * children_done_plan's rows): the track checkpoints among them are added
 * to ids/seqs from *nadvance on; returns whether it queued any run.
 */
static bool
waits_done(NamedPlan *p, int done, Datum *ids, Datum *seqs, int *nadvance)
{
	bool		queued = false;

	for (int i = 0; i < done; i++)
	{
		DoneRow		row;

		taskorch_read_row(p, i, &row);
		if (DatumGetBool(row.advance.datum))
		{
			ids[*nadvance] = PointerGetDatum(PG_DETOAST_DATUM_COPY(row.run_id.datum));
			seqs[(*nadvance)++] = row.seq.datum;
		}
		else
			queued = true;
	}
	return queued;
}

/*
 * Runs of this batch that reached an end and are waited for: complete the
 * waits they were the last of (inside SPI, in the batch's transaction).
 */
void
waits_children_done(ClaimedRun *runs, int n)
{
	PlanItems	ids = plan_items_new(2 * n),
				seqs = plan_items_new(2 * n),
				child_ids = plan_items_new(2 * n),
				statuses = plan_items_new(2 * n),
				tasks = plan_items_new(2 * n),
				outputs = plan_items_new(2 * n),
				errors = plan_items_new(2 * n);
	Datum	   *advance_ids = palloc(sizeof(Datum) * 2 * Max(n, 1));
	Datum	   *advance_seqs = palloc(sizeof(Datum) * 2 * Max(n, 1));
	WaitsArgs	args;
	ChildEndsArgs ends;
	int			k = 0;
	int			nadvance = 0;
	bool		queued;

	for (int i = 0; i < n; i++)
	{
		/* a wait for no children at all (a query that returned no rows) is over now */
		if (runs[i].suspended && runs[i].wait_children_ids && runs[i].wait_children_ids[0] == '\0')
		{
			ids.values[k] = CStringGetTextDatum(runs[i].id);
			seqs.values[k] = Int32GetDatum(runs[i].wait_seq);
			child_ids.nulls[k] = statuses.nulls[k] = tasks.nulls[k] = true;
			outputs.nulls[k] = errors.nulls[k] = true;
			k++;
		}
		if (runs[i].parent_run_id == NULL || !run_status_finished(runs[i].status))
			continue;
		ids.values[k] = CStringGetTextDatum(runs[i].parent_run_id);
		seqs.values[k] = Int32GetDatum(runs[i].parent_wait_seq);
		child_ids.values[k] = CStringGetTextDatum(runs[i].id);
		statuses.values[k] = CStringGetTextDatum(run_status_name(runs[i].status));
		tasks.values[k] = CStringGetTextDatum(runs[i].task_id);
		outputs.values[k] = runs[i].output ? JsonbPGetDatum(runs[i].output) : (Datum) 0;
		outputs.nulls[k] = runs[i].output == NULL;
		errors.values[k] = runs[i].error ? JsonbPGetDatum(runs[i].error) : (Datum) 0;
		errors.nulls[k] = runs[i].error == NULL;
		k++;
	}
	if (k == 0)
		return;
	args.run_ids = plan_items_array(ids, k, TEXTOID);
	args.seqs = plan_items_array(seqs, k, INT4OID);
	taskorch_execute_args(&lock_waits_plan, &args, false, 0);
	k = keep_locked_parents(&ids, &seqs, &child_ids, &statuses, &tasks, &outputs, &errors, k);
	if (k == 0)
		return;
	args.run_ids = plan_items_array(ids, k, TEXTOID);
	args.seqs = plan_items_array(seqs, k, INT4OID);
	/* statements of their own: their snapshots are taken once the locks are held */
	args.now = pv_timestamptz(GetCurrentTimestamp());
	(void) run_transition(RUN_WAITING, RUN_QUEUED, BY_WAITS);
	ends.run_ids = args.run_ids;
	ends.seqs = args.seqs;
	ends.child_ids = plan_items_array(child_ids, k, TEXTOID);
	ends.statuses = plan_items_array(statuses, k, TEXTOID);
	ends.tasks = plan_items_array(tasks, k, TEXTOID);
	ends.outputs = plan_items_array(outputs, k, JSONBOID);
	ends.errors = plan_items_array(errors, k, JSONBOID);
	ends.now = args.now;
	queued = waits_done(&one_child_done_plan,
						taskorch_execute_args(&one_child_done_plan, &ends, false, 0),
						advance_ids, advance_seqs, &nadvance);
	/* the other waits (a batch's, ...), over once all their children are */
	queued |= waits_done(&children_done_plan,
						 taskorch_execute_args(&children_done_plan, &args, false, 0),
						 advance_ids, advance_seqs, &nadvance);
	if (queued)
		taskorch_requeued_at_commit();
	if (nadvance > 0)
		(void) tracks_advance(advance_ids, advance_seqs, nadvance);
}

/* ---------------------------------------------------------------------
 * trigger_and_wait and batch_trigger_and_wait
 * ---------------------------------------------------------------------
 */

/*
 * A wait call for children, in two halves.  next_wait(): the call's number
 * (its order in the execution); true, with its memoized result, if an
 * earlier execution got past it.  Otherwise wait_for_children(): note the
 * children to trigger and suspend.  The children are made by the worker
 * after the attempt's rollback (waits_create_children), so they exist only
 * if the run really waits.  Items are checked now (an array's every item, a
 * query's columns), so a bad one fails the attempt as an error in the task
 * would.
 */
static bool
next_wait(const char *function, const char *kind, const char *target, int32 *seq, Jsonb **result)
{
	ClaimedRun *run = run_in_task(function,
								  "Outside a task, trigger the run and CALL taskorch.wait_for_run().");

	*seq = run->wait_calls++;
	return wait_completed(run, *seq, kind, target, result);
}

/*
 * What a wait for children waits for, recorded with it and compared on
 * replay: the task, and how many items of an array.  Not the payloads:
 * they may hold what differs from one execution to the next (a time, a
 * random id) without the code having changed.
 */
static char *
children_target(const char *task, const BatchItems *src)
{
	const char *who = task ? psprintf("task %s", task) : "tasks of the items";

	if (src->query)
		return psprintf("%s, the rows of a query", who);
	if (src->items && JB_ROOT_IS_ARRAY(src->items) && !JB_ROOT_IS_SCALAR(src->items))
		return psprintf("%s, %d item%s", who, (int) JB_ROOT_COUNT(src->items),
						JB_ROOT_COUNT(src->items) == 1 ? "" : "s");
	return (char *) who;
}

/* Suspend at `call`, a wait for the children of src, kept in the run's context. */
static void
wait_for_children(WaitCall *call, const BatchItems *src)
{
	ClaimedRun *run = current_run();
	BatchItems *keep;

	batch_items_check(src);
	keep = MemoryContextAlloc(run->cxt, sizeof(BatchItems));
	keep->task = src->task ? MemoryContextStrdup(run->cxt, src->task) : NULL;
	keep->query = src->query ? MemoryContextStrdup(run->cxt, src->query) : NULL;
	keep->items = NULL;
	if (src->items)
	{
		keep->items = MemoryContextAlloc(run->cxt, VARSIZE(src->items));
		memcpy(keep->items, src->items, VARSIZE(src->items));
	}
	call->resume_at = DT_NOEND;
	call->children = keep;
	wait_suspend(run, call, src->query ? "the child runs of a query" : "child runs");
}

/* SQL: taskorch.trigger_and_wait(task, payload, options) -> Result object */
Datum
taskorch_trigger_and_wait(PG_FUNCTION_ARGS)
{
	BatchItems	src = {NULL, NULL, NULL};
	int32		seq;
	Jsonb	   *result = NULL;
	char	   *target;

	require_args(fcinfo, 2, "task and payload",
				 "Pass the child task's id and a payload object.");
	src.task = text_to_cstring(PG_GETARG_TEXT_PP(0));
	target = children_target(src.task, &src);
	if (next_wait("taskorch.trigger_and_wait()", "run", target, &seq, &result))
		PG_RETURN_JSONB_P(result);
	src.items = batch_single_item(PG_GETARG_JSONB_P(1), PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2));
	{
		WaitCall	call = {.seq = seq, .kind = "run", .target = target};

		wait_for_children(&call, &src);
	}
	PG_RETURN_NULL();
}

/*
 * SQL: taskorch.batch_trigger_and_wait(task, items) and (items), items
 * as batch_trigger's -> {"runs": [Result, ...]} in item order.
 */
Datum
taskorch_batch_trigger_and_wait(PG_FUNCTION_ARGS)
{
	bool		mixed = PG_NARGS() == 1;
	BatchItems	src = {NULL, NULL, NULL};
	int32		seq;
	Jsonb	   *result = NULL;
	char	   *target;

	require_args(fcinfo, PG_NARGS(), mixed ? "items" : "task and items",
				 "Pass a JSON array of {\"payload\": ..., \"options\": ...} items.");
	src.task = mixed ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	src.items = PG_GETARG_JSONB_P(mixed ? 0 : 1);
	target = children_target(src.task, &src);
	if (next_wait("taskorch.batch_trigger_and_wait()", "batch", target, &seq, &result))
		PG_RETURN_JSONB_P(result);
	{
		WaitCall	call = {.seq = seq, .kind = "batch", .target = target};

		wait_for_children(&call, &src);
	}
	PG_RETURN_NULL();
}

/*
 * SQL: taskorch.batch_trigger_and_wait_query(query, task): the query's rows
 * are the items, streamed when the children are made (after the attempt's
 * rollback, so the query sees committed data, not the task's own writes).
 */
Datum
taskorch_batch_trigger_and_wait_query(PG_FUNCTION_ARGS)
{
	BatchItems	src = {NULL, NULL, NULL};
	int32		seq;
	Jsonb	   *result = NULL;
	char	   *target;

	require_args(fcinfo, 1, "query",
				 "Pass a query returning a payload column, such as SELECT jsonb_build_object('id', id) AS payload FROM records.");
	src.query = text_to_cstring(PG_GETARG_TEXT_PP(0));
	src.task = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	target = children_target(src.task, &src);
	if (next_wait("taskorch.batch_trigger_and_wait_query()", "batch", target, &seq, &result))
		PG_RETURN_JSONB_P(result);
	{
		WaitCall	call = {.seq = seq, .kind = "batch", .target = target};

		wait_for_children(&call, &src);
	}
	PG_RETURN_NULL();
}

/*
 * SQL: taskorch_internal.wait_checkpoint(step, key, state, task, payload, query),
 * inside a composite's run: run step number `step` and wait for it, at a
 * checkpoint under `key` carrying `state`.  The step is task with payload
 * (a track's step, kind 'run'), or task over the rows of query (a
 * traverse orchestrator's page, kind 'batch').  It never returns: the run
 * resumes from the checkpoint (_last_checkpoint), or the engine goes on
 * itself (tracks.c).
 */
Datum
taskorch_wait_checkpoint(PG_FUNCTION_ARGS)
{
	ClaimedRun *run;
	BatchItems	src = {NULL, NULL, NULL};
	WaitCall	call = {0};

	require_args(fcinfo, 4, "step, key, state and task", "taskorch.run_track() calls it.");
	run = run_in_task("taskorch_internal.wait_checkpoint()", "Only a track's or an orchestrator's run waits at checkpoints.");
	call.seq = PG_GETARG_INT32(0);
	call.key = text_to_cstring(PG_GETARG_TEXT_PP(1));
	call.state = PG_GETARG_JSONB_P(2);
	src.task = text_to_cstring(PG_GETARG_TEXT_PP(3));
	call.target = children_target(src.task, &src);
	if (!PG_ARGISNULL(5))
	{
		call.kind = "batch";
		src.query = text_to_cstring(PG_GETARG_TEXT_PP(5));
	}
	else
	{
		require_arg(fcinfo, 4, "payload", "A step without a query has a payload.");
		call.kind = "run";
		src.items = batch_single_item(PG_GETARG_JSONB_P(4), NULL);
	}
	run->wait_calls = Max(run->wait_calls, call.seq + 1);
	wait_for_children(&call, &src);
	PG_RETURN_NULL();
}

typedef struct ChildTrigger
{
	ClaimedRun *parent;
	StringInfoData ids;			/* the children's, space-separated */
} ChildTrigger;

/* Trigger one child of a wait, linked to it. */
static void
trigger_child(const char *task, Jsonb *payload, Jsonb *options, int index, void *arg)
{
	ChildTrigger *ct = (ChildTrigger *) arg;
	TriggerOptions o;
	Datum		id;

	trigger_options_init(&o);
	o.now = GetCurrentTimestamp();
	if (options)
		trigger_options_jsonb(&o, options, false);
	trigger_options_finish(&o);
	o.parent_run_id = ct->parent->id;
	o.parent_wait_seq = ct->parent->wait_seq;
	o.root_run_id = run_root(ct->parent);
	id = create_run(task, payload, &o, NULL);
	if (ct->ids.len > 0)
		appendStringInfoChar(&ct->ids, ' ');
	appendStringInfoString(&ct->ids, TextDatumGetCString(id));
}

/*
 * Trigger the children of the run's wait, each linked to it, into
 * run->wait_children_ids: as the run's owner, in the caller's sandbox
 * (execute_as_owner).
 */
void
waits_trigger_children(ClaimedRun *run)
{
	ChildTrigger ct;
	MemoryContext old;

	ct.parent = run;
	old = MemoryContextSwitchTo(run->cxt);	/* the ids are kept until recorded */
	initStringInfo(&ct.ids);
	MemoryContextSwitchTo(old);
	(void) batch_items_foreach(run->wait_children, trigger_child, &ct);
	run->wait_children_ids = ct.ids.data;
}

static void
trigger_children(ClaimedRun *run, void *arg)
{
	waits_trigger_children(run);
}

/*
 * The run stopped at a wait for children: trigger them now, in the batch's
 * transaction (the attempt's own work was rolled back), as the task's
 * owner, each linked to the wait.  A child that cannot be triggered fails
 * the attempt instead, like an error in the task.
 */
void
waits_create_children(ClaimedRun *run)
{
	if (!run->suspended || run->wait_children == NULL)
		return;
	if (!execute_as_owner(run, trigger_children, NULL, &run->edata))
	{
		run->wait_children_ids = NULL;
		run->suspended = false;		/* an error of the attempt after all */
	}
}

/*
 * Every pending child wait whose children have all finished, including
 * children that ended outside a batch (canceled, expired): complete them
 * and queue their runs (maintenance pass, inside SPI).
 */
int
wait_children_resume(TimestampTz now)
{
	WaitsArgs	args = {.now = pv_timestamptz(now)};

	(void) run_transition(RUN_WAITING, RUN_QUEUED, BY_WAITS);
	return taskorch_execute_args(&all_children_done_plan, &args, false, 0);
}
