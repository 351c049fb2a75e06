/*-------------------------------------------------------------------------
 *
 * tracks.c
 *	  A track advanced by the engine between its steps.
 *
 * A track's run (taskorch.run_track, sql/parts/code/tracks.sql) waits for
 * each step at a checkpoint: a wait recorded under the step's name,
 * carrying the track's state (what the steps so far gave).  When a batch
 * finishes a step's run, the batch runs the next step itself if no user
 * code is needed to make its input (no input_mapper): it triggers the next
 * child as the track's owner, under a new checkpoint, and the track stays
 * WAITING.  After the last step (or a failure that stops the track), the
 * batch finishes the track itself with its output, when nothing of the
 * track's own is left to run (no hook, no output schema, no retry).
 * Otherwise (a mapper, a next step that cannot be triggered, a hook...)
 * the track's run is queued and its runner goes on from the checkpoint.
 * So a track's runner executes once, to start it, and never replays its
 * earlier steps: a step costs the same at any position.
 *
 * What a step's end does to the state, what the next step's input is and
 * what a finished track returns are decided in SQL once
 * (taskorch_internal.track_fold, _step_declared_input, _track_output), for the
 * runner and for this file alike.
 *
 * Transaction: the batch's, inside SPI, after the waits the batch's runs
 * finished were completed (wait_children.c), which locked those
 * waitpoints and then the tracks' run rows, passing over a track a
 * cancel() holds; next_plan reads the tracks under those locks and skips
 * one that has finished, so a canceled track starts no further step.
 * Memory: the batch context.  Lock: no shared lock.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

typedef struct NextArgs
{
	PlanValue	run_ids;
	PlanValue	seqs;
} NextArgs;

/* a track whose next step the engine runs */
typedef struct NextRow
{
	PlanValue	run_id;
	PlanValue	action;			/* 'step', 'finish' or 'runner' */
	PlanValue	seq;
	PlanValue	key;
	PlanValue	task;
	PlanValue	input;
	PlanValue	state;
	PlanValue	output;
	PlanValue	track;
	PlanValue	owner;
	PlanValue	fn;
	PlanValue	attempts;
	PlanValue	parent_run_id;
	PlanValue	parent_wait_seq;
	PlanValue	root_run_id;
	PlanValue	queue;
} NextRow;

static const PlanField next_params[] = {
	PLAN_PARAM(NextArgs, run_ids, TEXTARRAYOID),
	PLAN_PARAM(NextArgs, seqs, INT4ARRAYOID),
};
static const PlanField next_columns[] = {
	PLAN_COLUMN(NextRow, run_id),
	PLAN_COLUMN(NextRow, action),
	PLAN_COLUMN(NextRow, seq),
	PLAN_COLUMN(NextRow, key),
	PLAN_COLUMN(NextRow, task),
	PLAN_COLUMN(NextRow, input),
	PLAN_COLUMN(NextRow, state),
	PLAN_COLUMN(NextRow, output),
	PLAN_COLUMN(NextRow, track),
	PLAN_COLUMN(NextRow, owner),
	PLAN_COLUMN(NextRow, fn),
	PLAN_COLUMN(NextRow, attempts),
	PLAN_COLUMN(NextRow, parent_run_id),
	PLAN_COLUMN(NextRow, parent_wait_seq),
	PLAN_COLUMN(NextRow, root_run_id),
	PLAN_COLUMN(NextRow, queue),
};
/*
 * For each track whose step `seq` just ended, what comes next (action):
 *   'step'    the next step, which the engine starts itself: no failure
 *             stopped the track and no mapper (user code) makes its input;
 *   'finish'  no step is left (or a failure stopped the track): its output,
 *             when nothing of the track's own is left to run either (no
 *             hook, no output schema, no retry of an FP failure);
 *   'runner'  otherwise: the track's run is queued and its runner goes on.
 * The tracks are locked, and one that ended meanwhile (canceled) is passed
 * over.  What a step's end does to the state, a step's input and a
 * track's output are the SQL functions the runner uses too.
 */
static NamedPlan next_plan = {
	.sql = "WITH ended AS ("
	"  SELECT r.id, r.task_id, r.queue, r.payload, r.attempts, r.max_attempts, r.parent_run_id,"
	"         r.parent_wait_seq, r.root_run_id, r.owner::oid AS owner, t.fn::oid AS fn,"
	"         t.on_success IS NULL AND t.on_failure IS NULL AND t.output_schema IS NULL AS plain,"
	"         d AS def, w.key, w.seq, w.result,"
	"         taskorch_internal.track_fold(w.state, w.key, w.result, d.continue_on_failure) AS state"
	"    FROM unnest(:run_ids, :seqs) AS u(run_id, seq)"
	"    JOIN taskorch.waitpoint w ON w.run_id = u.run_id AND w.seq = u.seq AND w.key IS NOT NULL"
	"    JOIN taskorch.run r ON r.id = u.run_id"
	"    JOIN taskorch.task t ON t.id = r.task_id AND t.owner::oid = r.owner::oid"
	"    JOIN taskorch.composite d ON d.name = r.task_id AND d.kind = 'track'"
	"   WHERE NOT taskorch.finished(r.status)"
	"   ORDER BY r.id"
	"     FOR UPDATE OF r),"
	" decided AS ("
	"  SELECT e.*, s.step,"
	"         CASE WHEN s.step IS NOT NULL AND NOT (e.state->>'stop')::bool"
	"              THEN CASE WHEN s.step ? 'input_mapper' THEN 'runner' ELSE 'step' END"
	"              WHEN e.plain AND (jsonb_array_length(e.state->'errors') = 0"
	"                                OR e.attempts + 1 >= e.max_attempts) THEN 'finish'"
	"              ELSE 'runner' END AS action"
	"    FROM ended e, LATERAL (SELECT (e.def).steps->((e.state->>'n')::int) AS step) s)"
	" SELECT d.id AS run_id, d.action, (d.state->>'n')::int AS seq, d.step->>'name' AS key,"
	"        d.step->>'task' AS task,"
	"        CASE WHEN d.action = 'step'"
	"             THEN taskorch_internal.step_declared_input(d.step, d.state->'prev', d.payload,"
	"                                                d.state->'tramp', false) END AS input,"
	"        d.state,"
	"        CASE WHEN d.action = 'finish'"
	"             THEN taskorch_internal.track_output(d.def, d.state, d.payload, d.id) END AS output,"
	"        d.task_id AS track, d.owner, d.fn, d.attempts, d.parent_run_id, d.parent_wait_seq,"
	"        d.root_run_id, d.queue"
	"   FROM decided d",
	PLAN_PARAMS(next_params), PLAN_COLUMNS(next_columns), .shape = PLAN_KEY_LOOKUPS
};

typedef struct QueueArgs
{
	PlanValue	run_ids;
	PlanValue	now;
} QueueArgs;

static const PlanField queue_params[] = {
	PLAN_PARAM(QueueArgs, run_ids, TEXTARRAYOID),
	PLAN_PARAM(QueueArgs, now, TIMESTAMPTZOID),
};
/* tracks whose runner goes on */
static NamedPlan queue_plan = {
	.sql = "UPDATE taskorch.run SET status = " SQL_STATUS(QUEUED) ", run_at = :now, updated_at = :now"
	" WHERE id = ANY (:run_ids) AND status = " SQL_STATUS(WAITING),
	PLAN_PARAMS(queue_params)
};

typedef enum NextAction
{
	NEXT_STEP,					/* the engine starts the next step */
	NEXT_FINISH,				/* the engine finishes the track */
	NEXT_RUNNER					/* the track's runner goes on */
} NextAction;

/*
 * The track of next_plan's row i, with what comes next: noted as waiting
 * for its next step, or finished with its output.
 */
static NextAction
read_next(ClaimedRun *track, int i)
{
	NextRow		row;
	char	   *action;

	taskorch_read_row(&next_plan, i, &row);
	memset(track, 0, sizeof(ClaimedRun));
	track->id = pv_cstring(row.run_id);
	action = pv_cstring(row.action);
	if (strcmp(action, "runner") == 0)
		return NEXT_RUNNER;
	track->task_id = pv_cstring(row.track);
	track->task_found = true;
	track->owner = DatumGetObjectId(row.owner.datum);
	track->fn = DatumGetObjectId(row.fn.datum);
	track->attempts = DatumGetInt32(row.attempts.datum);
	track->cxt = CurrentMemoryContext;
	track->parent_run_id = pv_cstring(row.parent_run_id);
	track->parent_wait_seq = row.parent_wait_seq.present ?
		DatumGetInt32(row.parent_wait_seq.datum) : 0;
	track->root_run_id = pv_cstring(row.root_run_id);
	track->queue = pv_cstring(row.queue);
	if (strcmp(action, "finish") == 0)
	{
		/* its output, judged as any run's (an FP failure fails it) */
		track->started_at = track->finished_at = GetCurrentTimestamp();
		track->output = pv_jsonb_copy(row.output);
		track->error = result_failure(track->output);
		if (track->error)
			track->output = NULL;
		track->status = run_transition(RUN_WAITING, track->error ? RUN_FAILED : RUN_COMPLETED,
									   BY_WAITS);
		return NEXT_FINISH;
	}
	{
		BatchItems *step = palloc0(sizeof(BatchItems));

		track->suspended = true;
		track->wait_seq = DatumGetInt32(row.seq.datum);
		track->wait_kind = "run";
		track->wait_key = pv_cstring(row.key);
		track->wait_state = pv_jsonb_copy(row.state);
		step->task = pv_cstring(row.task);
		step->items = batch_single_item(pv_jsonb_copy(row.input), NULL);
		track->wait_children = step;
		track->wait_target = psprintf("task %s", step->task);
	}
	return NEXT_STEP;
}

/* the tracks of one owner whose next steps are triggered together */
typedef struct OwnerSteps
{
	ClaimedRun *tracks;
	NextAction *actions;
	int			n;
	Oid			owner;
} OwnerSteps;

static void
trigger_owner_steps(ClaimedRun *first, void *arg)
{
	OwnerSteps *g = (OwnerSteps *) arg;

	for (int i = 0; i < g->n; i++)
		if (g->actions[i] == NEXT_STEP && g->tracks[i].owner == g->owner)
			waits_trigger_children(&g->tracks[i]);
}

/*
 * Trigger the next steps of tracks[0..n), each as its track's owner: all
 * of one owner's in one subtransaction (one per step would overflow the
 * backend's cache of subtransaction ids, which slows every snapshot in the
 * server).  If one of them cannot be triggered, each is tried again in its
 * own; a step that cannot be is left to the track's runner.
 */
static void
trigger_next_steps(ClaimedRun *tracks, NextAction *actions, int n)
{
	for (int i = 0; i < n; i++)
	{
		OwnerSteps	g = {tracks, actions, n, tracks[i].owner};
		ErrorData  *edata;
		bool		seen = false;

		for (int j = 0; j < i && !seen; j++)
			seen = actions[j] == NEXT_STEP && tracks[j].owner == g.owner;
		if (actions[i] != NEXT_STEP || seen)
			continue;
		if (execute_as_owner(&tracks[i], trigger_owner_steps, &g, &edata))
			continue;
		for (int j = i; j < n; j++)
			if (actions[j] == NEXT_STEP && tracks[j].owner == g.owner)
			{
				tracks[j].wait_children_ids = NULL;
				waits_create_children(&tracks[j]);
			}
	}
}

/*
 * The runs run_ids[0..n) each finished the step of their checkpoint
 * seqs[i] (inside SPI): run the next steps of tracks, finish tracks, or
 * queue the runs (a canceled one stays as it is).  Returns the number
 * queued.
 */
int
tracks_advance(Datum *run_ids, Datum *seqs, int n)
{
	NextArgs	args;
	int			nrows;
	ClaimedRun *tracks;
	NextAction *actions;
	ClaimedRun *finished;
	int			nfinished = 0;
	PlanItems	queue;
	int			nqueue = 0;
	QueueArgs	qargs;
	int			queued = 0;

	args.run_ids = pv_datum(PointerGetDatum(construct_array(run_ids, n, TEXTOID, -1, false,
															TYPALIGN_INT)));
	args.seqs = pv_datum(PointerGetDatum(construct_array(seqs, n, INT4OID, 4, true,
														 TYPALIGN_INT)));
	nrows = taskorch_execute_args(&next_plan, &args, false, 0);
	tracks = palloc(sizeof(ClaimedRun) * Max(nrows, 1));
	actions = palloc(sizeof(NextAction) * Max(nrows, 1));
	finished = palloc(sizeof(ClaimedRun) * Max(nrows, 1));
	queue = plan_items_new(n);
	for (int i = 0; i < nrows; i++)
		actions[i] = read_next(&tracks[i], i);

	trigger_next_steps(tracks, actions, nrows);
	waits_record(tracks, nrows);

	/* the tracks not advanced here, and checkpoints of other composites: their runners go on */
	for (int i = 0; i < n; i++)
	{
		char	   *id = TextDatumGetCString(run_ids[i]);
		bool		advanced = false;

		for (int j = 0; j < nrows && !advanced; j++)
			advanced = strcmp(tracks[j].id, id) == 0 &&
				(actions[j] == NEXT_FINISH || (actions[j] == NEXT_STEP && tracks[j].suspended));
		if (!advanced)
			queue.values[nqueue++] = run_ids[i];
	}
	for (int j = 0; j < nrows; j++)
		if (actions[j] == NEXT_FINISH)
			finished[nfinished++] = tracks[j];
	if (nqueue > 0)
	{
		qargs.run_ids = plan_items_array(queue, nqueue, TEXTOID);
		qargs.now = pv_timestamptz(GetCurrentTimestamp());
		(void) run_transition(RUN_WAITING, RUN_QUEUED, BY_WAITS);
		queued = taskorch_execute_args(&queue_plan, &qargs, false, 0);
		if (queued > 0)
			taskorch_requeued_at_commit();
	}
	/* the finished tracks' outcomes, as a batch's (their parents' waits, NOTIFY...) */
	if (nfinished > 0)
		complete_runs(finished, nfinished);
	return queued;
}
