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
 * WAITING.  Otherwise (the last step, a failure that stops the track, a
 * mapper, a next step that cannot be triggered) the track's run is queued
 * and its runner goes on from the checkpoint.  So a track executes its
 * runner at its start and its end, not once per step, and never replays
 * its earlier steps: a step costs the same at any position.
 *
 * What a step's end does to the state, and what the next step's input is,
 * is decided in SQL once (taskorch._track_fold, taskorch._step_input),
 * for the runner and for this file alike.
 *
 * Transaction: the batch's, inside SPI, after the waits the batch's runs
 * finished were completed (wait_children.c), which locked those
 * waitpoints; taskorch._track_next then locks the tracks' run rows, in id
 * order, so a cancel() cannot slip in between (it locks the run row
 * first and finds it WAITING, or comes after and cancels the new step with
 * the rest).  Memory: the batch context.  Lock: no shared lock.
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
	PlanValue	seq;
	PlanValue	key;
	PlanValue	task;
	PlanValue	input;
	PlanValue	state;
	PlanValue	track;
	PlanValue	owner;
	PlanValue	fn;
	PlanValue	attempts;
	PlanValue	ended_level;
	PlanValue	ended_message;
	PlanValue	ended_data;
	PlanValue	started_message;
	PlanValue	started_data;
} NextRow;

/* what the engine logs of a track it advanced: the step that ended, the next */
typedef struct StepLogs
{
	char	   *ended_level;
	char	   *ended_message;
	Jsonb	   *ended_data;
	char	   *started_message;
	Jsonb	   *started_data;
} StepLogs;

static const PlanField next_params[] = {
	PLAN_PARAM(NextArgs, run_ids, TEXTARRAYOID),
	PLAN_PARAM(NextArgs, seqs, INT4ARRAYOID),
};
static const PlanField next_columns[] = {
	PLAN_COLUMN(NextRow, run_id),
	PLAN_COLUMN(NextRow, seq),
	PLAN_COLUMN(NextRow, key),
	PLAN_COLUMN(NextRow, task),
	PLAN_COLUMN(NextRow, input),
	PLAN_COLUMN(NextRow, state),
	PLAN_COLUMN(NextRow, track),
	PLAN_COLUMN(NextRow, owner),
	PLAN_COLUMN(NextRow, fn),
	PLAN_COLUMN(NextRow, attempts),
	PLAN_COLUMN(NextRow, ended_level),
	PLAN_COLUMN(NextRow, ended_message),
	PLAN_COLUMN(NextRow, ended_data),
	PLAN_COLUMN(NextRow, started_message),
	PLAN_COLUMN(NextRow, started_data),
};
static NamedPlan next_plan = {
	.sql = "SELECT * FROM taskorch._track_next(:run_ids, :seqs)",
	PLAN_PARAMS(next_params), PLAN_COLUMNS(next_columns)
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

/* The track of next_plan's row i, noted as waiting for its next step. */
static void
read_next(ClaimedRun *track, StepLogs *logs, int i)
{
	NextRow		row;
	BatchItems *step = palloc0(sizeof(BatchItems));

	taskorch_read_row(&next_plan, i, &row);
	memset(track, 0, sizeof(ClaimedRun));
	track->id = pv_cstring(row.run_id);
	track->task_id = pv_cstring(row.track);
	track->task_found = true;
	track->owner = DatumGetObjectId(row.owner.datum);
	track->fn = DatumGetObjectId(row.fn.datum);
	track->attempts = DatumGetInt32(row.attempts.datum);
	track->cxt = CurrentMemoryContext;
	track->suspended = true;
	track->wait_seq = DatumGetInt32(row.seq.datum);
	track->wait_kind = "run";
	track->wait_key = pv_cstring(row.key);
	track->wait_state = pv_jsonb_copy(row.state);
	step->task = pv_cstring(row.task);
	step->items = batch_single_item(pv_jsonb_copy(row.input), NULL);
	track->wait_children = step;
	track->wait_target = psprintf("task %s", step->task);
	logs->ended_level = pv_cstring(row.ended_level);
	logs->ended_message = pv_cstring(row.ended_message);
	logs->ended_data = pv_jsonb_copy(row.ended_data);
	logs->started_message = pv_cstring(row.started_message);
	logs->started_data = pv_jsonb_copy(row.started_data);
}

/*
 * The tracks run_ids[0..n) each finished the step of their checkpoint
 * seqs[i] (inside SPI): run their next steps, or queue them.  Returns
 * the number queued.
 */
int
tracks_advance(Datum *run_ids, Datum *seqs, int n)
{
	NextArgs	args;
	ClaimedRun *tracks;
	StepLogs   *logs;
	int			nnext;
	PlanItems	queue = plan_items_new(n);
	int			nqueue = 0;
	QueueArgs	qargs;
	int			queued;

	args.run_ids = pv_datum(PointerGetDatum(construct_array(run_ids, n, TEXTOID, -1, false,
															TYPALIGN_INT)));
	args.seqs = pv_datum(PointerGetDatum(construct_array(seqs, n, INT4OID, 4, true,
														 TYPALIGN_INT)));
	nnext = taskorch_execute_args(&next_plan, &args, false, 0);
	tracks = palloc(sizeof(ClaimedRun) * Max(nnext, 1));
	logs = palloc(sizeof(StepLogs) * Max(nnext, 1));
	for (int i = 0; i < nnext; i++)
		read_next(&tracks[i], &logs[i], i);

	/* the next step of each, triggered as its owner; one that cannot be is the runner's */
	for (int i = 0; i < nnext; i++)
		waits_create_children(&tracks[i]);
	waits_record(tracks, nnext);

	for (int j = 0; j < nnext; j++)
	{
		if (!tracks[j].suspended)
			continue;
		logs_note(&tracks[j], logs[j].ended_level, logs[j].ended_message, logs[j].ended_data);
		logs_note(&tracks[j], "info", logs[j].started_message, logs[j].started_data);
	}
	for (int i = 0; i < n; i++)
	{
		char	   *id = TextDatumGetCString(run_ids[i]);
		bool		advanced = false;

		for (int j = 0; j < nnext && !advanced; j++)
			advanced = tracks[j].suspended && strcmp(tracks[j].id, id) == 0;
		if (!advanced)
			queue.values[nqueue++] = run_ids[i];
	}
	if (nqueue == 0)
		return 0;
	qargs.run_ids = plan_items_array(queue, nqueue, TEXTOID);
	qargs.now = pv_timestamptz(GetCurrentTimestamp());
	(void) run_transition(RUN_WAITING, RUN_QUEUED, BY_WAITS);
	queued = taskorch_execute_args(&queue_plan, &qargs, false, 0);
	if (queued > 0)
		taskorch_requeued_at_commit();
	return queued;
}
