/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The per-database worker: a latch loop around the batch driver, and
 *	  the batch driver itself (also reachable from SQL as run_pending()).
 *
 * One batch is one transaction:
 *
 *	  repeat while the batch is not full:
 *	      claim a chunk of due runs        FOR UPDATE SKIP LOCKED (claim.c)
 *	      for each run of the chunk:
 *	          execute it in a subtransaction   as the task owner (execute.c)
 *	          decide its outcome               retry, fail, complete (runs.c)
 *	  record every outcome in one UPDATE   top-level transaction (complete.c)
 *	  commit
 *
 * "Full" means batch_size runs, or the time budget spent, or the runs that
 * wrote having used most of the backend's cache of subtransaction XIDs, or
 * BATCH_MEMORY_LIMIT of outcomes, outputs and logs held for the commit.
 * A run of a task not known to be fast (task_times.c) is a batch of its
 * own: a slow run holds no batch mates (docs/operations.md, "Slow runs").
 * A database's first workers are kept for fast runs and leave slow ones
 * to the pool's extra workers, which leave fast runs to them (pass_over()),
 * and do not claim from the queues the kept ones found fast (end_passes(),
 * taskorch_fast_queue_note()).
 *
 * Before a batch, when the maintenance is due, the worker fires due
 * schedules, purges old runs and settles the external runs whose workers
 * were lost, each step in a transaction of its own: a kept worker, or an
 * extra one while a kept worker is held by a slow run (maintain()).
 *
 * So a SQL task's effects and its COMPLETED status commit together: a
 * crash before the commit leaves the run QUEUED with no effects, and it is
 * executed again.  Runs claimed but not reached before the budget ran out
 * are simply not updated; the commit releases their locks.
 *
 * Memory: batch_cxt holds the claimed runs and outcomes and is reset after
 * each commit; nothing of a batch survives into the next one.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/bufmgr.h"
#include "storage/ipc.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(taskorch_run_pending);

static MemoryContext batch_cxt = NULL;

/*
 * An error outside the tasks (recording a batch's outcomes, say) aborts
 * the whole batch.  The worker then takes runs one at a time for a while
 * (isolating); a run whose one-run batch fails so too is set
 * SYSTEM_FAILURE in a transaction of its own, so that it cannot stop the
 * worker again and again.
 */
static int	isolating = 0;		/* one-run batches still to make */
static char isolated_run[NAMEDATALEN];	/* the run of the current one */

/*
 * Runs claimed per claim statement; a batch may take several chunks.  Its
 * first chunk is of 32 runs, and while one queue alone may be claimed (the
 * others drained or passed over), each chunk that the batch executed whole
 * (its runs all of tasks known fast) makes the next one twice as big, up
 * to 128: each claim costs an executor start and its runs' task and queue
 * reads, and a backlog of quick runs fills a batch of 256 in 4 claims
 * instead of 8.  Queues with backlogs take chunks of 32 in turn (claim.c:
 * round robin by chunk, equal shares).  A batch's first chunk stays small:
 * first chunks of 64 slowed no-ops queued behind slow runs of their queue
 * (mixed scenario, 1.27-1.32x their time alone against 1.12-1.18x), as a
 * chunk met with a slow run is let go, and the queue passed over, twice as
 * big.
 */
#define CLAIM_CHUNK 32
#define CLAIM_CHUNK_MAX 128

/*
 * Claim one run at a time: the last batch met a run that must not hold
 * batch mates (a slow or unknown task), so the next claims take one run
 * until a fast one comes.
 */
static bool claim_singly = false;

/* The last batch released claimed runs it did not execute: go on at once. */
static bool runs_left_behind = false;

/*
 * The runs met are of a task measured slow (not merely never measured):
 * with every peer busy, the pool may grow for them.  A task's first run
 * is unknown, and a backlog of fast runs must not grow the pool.
 */
static bool slow_met = false;

/* The queue of the last run met that was not known to be fast (its taskorch_queue_hash()) */
static uint32 slow_queue = 0;

/*
 * May the run execute while other runs of the batch wait for it, locked?
 * Only if its task is known to be fast: at most half the batch's time
 * budget (task_times.c).  A run of a task never measured, or slow, runs
 * in a batch of its own, so that it holds back no other run.
 */
static bool
fast_task(const ClaimedRun *run)
{
	int64		us = task_time_us(run->task_id);

	return us >= 0 && us * 2 <= (int64) taskorch_batch_time_budget_ms * 1000;
}

/*
 * A call for a peer (taskorch_wake_peer()), and with none to call, for one
 * more worker when `grow`.  A call about runs this batch lets go waits for
 * its commit (call_peers_committed()): called at once, the peer would
 * find them still locked, take their queue for drained and sleep until
 * the next call.
 */
typedef struct PeerCall
{
	WakeFor		wake_for;
	uint32		queue_hash;
	bool		grow;
} PeerCall;

#define MAX_CALLS_AT_COMMIT 2	/* a batch lets go once: pass_over(), call_for_help() */
static PeerCall calls_at_commit[MAX_CALLS_AT_COMMIT];
static int	ncalls_at_commit = 0;

/* The last call for a peer found none asleep (grow_for()) */
static bool call_unanswered = false;

static void
call_peer(PeerCall call, bool at_commit)
{
	if (at_commit)
	{
		if (ncalls_at_commit < MAX_CALLS_AT_COMMIT)
			calls_at_commit[ncalls_at_commit++] = call;
		return;
	}
	call_unanswered = !taskorch_wake_peer(MyDatabaseId, MySlot, call.wake_for, call.queue_hash);
	if (call_unanswered && call.grow)
		taskorch_pool_grow(MyDatabaseId);
}

/* The batch committed or aborted: its runs are free, call for them. */
static void
call_peers_committed(void)
{
	for (int i = 0; i < ncalls_at_commit; i++)
		call_peer(calls_at_commit[i], false);
	ncalls_at_commit = 0;
}

/* Is the worker of `slot` one of its database's kept workers (not an extra one)? */
static bool
worker_kept(int slot)
{
	return taskorch_shared->slots[slot].index < taskorch_workers_kept();
}

/* Is the run's task measured slow (not merely never measured)? */
static bool
slow_task(const ClaimedRun *run)
{
	return !fast_task(run) && task_time_us(run->task_id) >= 0;
}

/*
 * The pool grows for the runs that may be due behind one a worker executes
 * alone (claimed singly, the call for a peer at its claim finding none
 * asleep; a claim of one run cannot tell whether more are due), unless it
 * took its queue's last concurrency slot: the runs of its key behind it
 * wait for a slot, not for a worker (a queue limited to 2 grew the pool
 * to 8 workers, 6 of which had nothing they could run).  For a run of a
 * task measured slow, at once.  For one of a task never measured, not yet
 * (a new task's first run is as likely fast, and a backlog of fast runs
 * must not grow the pool), nor only once it has ended and its task is
 * known slow (16 runs of 0.5 s on a pool of 2 kept workers, up to 8, took
 * 2 s that way, every run of the first wave on the 2): a timer asks for
 * the worker if the run is still executing when it can no longer be fast
 * (half the batch time budget, fast_task()), from its signal handler.
 */
static int	grow_timeout = MAX_TIMEOUTS;
static bool grow_timer = false;

static void
grow_timeout_handler(void)
{
	if (!proc_exit_inprogress)	/* a worker exiting during a run asks for none */
		taskorch_pool_grow(MyDatabaseId);
}

static void
grow_for(const ClaimedRun *run)
{
	if (!claim_singly || !call_unanswered || concurrency_held_last())
		return;
	if (slow_task(run))
	{
		taskorch_pool_grow(MyDatabaseId);
		return;
	}
	if (task_time_us(run->task_id) >= 0)
		return;					/* known fast */
	if (grow_timeout == MAX_TIMEOUTS)
		grow_timeout = RegisterTimeout(USER_TIMEOUT, grow_timeout_handler);
	enable_timeout_after(grow_timeout, Max(taskorch_batch_time_budget_ms / 2, 1));
	grow_timer = true;
}

static void
grow_timer_stop(void)
{
	if (grow_timer)
		disable_timeout(grow_timeout, false);
	grow_timer = false;
}

/*
 * Must this worker leave the run to another?  A database's first workers
 * are kept for fast runs and its extra ones are for slow runs
 * (taskorch_workers_kept()), so that slow runs never take the workers
 * that fast runs need (operations.md, "Slow runs"):
 *
 * - a kept worker leaves a slow run while other queues have runs due, and
 *   calls an idle extra worker, or asks for one more, to take it; if no
 *   extra worker could be had within EXTRA_WAIT_MS (no free slot), it
 *   takes the run itself, so that slow runs are never starved.  The wait
 *   counts from the last time an extra worker was there, or from the
 *   first ask after a pause of EXTRA_WAIT_MS (a wait of long ago would
 *   let it take the next slow run at once);
 * - an extra worker leaves a fast run while every kept worker is free
 *   of slow runs to take it, and calls one that sleeps.
 *
 * Returns until when its queue is then passed over (claim_pass_over()), 0
 * when the worker takes the run: a kept worker comes back soon, for the
 * fast runs behind the slow one; an extra worker, until it is called for
 * that queue's slow runs or a kept worker takes a slow run (end_passes()).
 * Each claim of an extra worker starts from the queue's head, walking over
 * the runs the kept workers just completed (not removable while a slow
 * run's transaction is open) to lock a chunk it would let go.
 */
#define EXTRA_WAIT_MS 1000
#define KEPT_PASS_MS 100

static TimestampTz
pass_over(ClaimState *claims, const ClaimedRun *run, int self_slot)
{
	/* the wait for an extra worker: since when, and its last ask */
	static TimestampTz waited_since = 0;
	static TimestampTz asked_last = 0;
	bool		kept = worker_kept(self_slot);

	if (kept && slow_task(run) && claim_others_due(claims, run))
	{
		uint32		queue_hash = taskorch_queue_hash(run->queue);
		TimestampTz now = GetCurrentTimestamp();
		bool		new_wait = taskorch_extra_workers(MyDatabaseId) > 0 ||
			TimestampDifferenceExceeds(asked_last, now, EXTRA_WAIT_MS);

		asked_last = now;
		if (new_wait)
			waited_since = now;
		else if (TimestampDifferenceExceeds(waited_since, now, EXTRA_WAIT_MS))
			return 0;
		taskorch_fast_queue_note(MyDatabaseId, queue_hash, false);
		call_peer((PeerCall) {WAKE_SLOW, queue_hash, true}, true);
		return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), KEPT_PASS_MS);
	}
	if (!kept && fast_task(run) && taskorch_keepers_free(MyDatabaseId))
	{
		call_peer((PeerCall) {WAKE_FAST, 0, false}, true);
		return DT_NOEND;
	}
	return 0;
}

/*
 * Before a batch: the queues this worker passed over that it may claim
 * again: the one a peer called it for (slow_queue), and, for an extra
 * worker, every queue it left to the kept workers once one of them is
 * no longer free (executing a slow run).  While they are free, an extra
 * worker does not claim from the queues they found fast either
 * (taskorch_fast_queue_note()), unless called for them.
 */
static void
end_passes(ClaimState *claims, int self_slot)
{
	WorkerSlot *me = &taskorch_shared->slots[self_slot];

	claims->leave_fast = !worker_kept(self_slot) && taskorch_keepers_free(MyDatabaseId);

	/* a hint, read and cleared without the lock */
	if (me->slow_queue != 0)
	{
		claim_pass_over_end(claims, me->slow_queue);
		me->slow_queue = 0;
	}
	if (!worker_kept(self_slot) && !taskorch_keepers_free(MyDatabaseId))
		claim_pass_over_end(claims, 0);
}

/*
 * More runs are due than this worker takes now (`let_go`: it lets go of
 * some at its commit): call a sleeping peer; with none, and slow runs met,
 * ask for one more worker (the pool grows for slow runs only: fast ones
 * are bound by the cores, not by the workers).
 */
static void
call_for_help(int self_slot, bool let_go)
{
	/*
	 * runs not known to be fast are for any worker, the extra ones first;
	 * the pool grows here for the slow runs a batch lets go, and for a run
	 * it executes, before it starts (grow_for())
	 */
	if (self_slot >= 0)
		call_peer((PeerCall) {claim_singly ? WAKE_SLOW : WAKE_FAST, claim_singly ? slow_queue : 0,
							  claim_singly && slow_met && let_go}, let_go);
}
/* Stop a batch while its subtransaction XIDs still fit in PGPROC's cache. */
#define SUBXID_HEADROOM 8
/* Stop a batch once its outcomes, outputs and logs hold this much memory. */
#define BATCH_MEMORY_LIMIT (64 * 1024 * 1024)

/* Must the batch stop adding runs now? */
static bool
batch_full(int done, int limit, TimestampTz deadline)
{
	return done >= limit ||
		MyProc->subxidStatus.count >= PGPROC_MAX_CACHED_SUBXIDS - SUBXID_HEADROOM ||
		MemoryContextMemAllocated(batch_cxt, true) >= BATCH_MEMORY_LIMIT ||
		GetCurrentTimestamp() >= deadline;
}

/*
 * Claim, execute and record up to `limit` runs in the current transaction.
 * Runs are claimed in chunks, each starting after the last run claimed, so
 * a backlog fills the batch while a lone run is committed at once.  The
 * batch also ends when the time budget is spent or when the runs that
 * wrote have used most of the subtransaction XID cache.
 *
 * A run of a queue with a concurrency limit executes only if it gets a
 * slot of its (queue, concurrency key) (concurrency.c); otherwise it is
 * skipped, and the batch claims no more runs of that key.
 *
 * Returns the number of runs executed.  `mark` (may be NULL) is the
 * worker's claim position; self_slot >= 0 in a worker, so it can call a
 * peer when there is more work than one batch.
 */
int
taskorch_process_batch(int limit, ClaimState *claims, int self_slot)
{
	ClaimedRun *runs;
	TimestampTz deadline;
	int			claimed = 0;
	int			done = 0;
	int			executed = 0;
	List	   *full_keys = NIL;	/* String: claim_full_key()s found at their limit */
	const char *fast_noted = NULL;	/* the queue this batch last noted fast */
	int			chunk = CLAIM_CHUNK;

	if (batch_cxt == NULL)
		batch_cxt = AllocSetContextCreate(TopMemoryContext, "taskorch batch",
										  ALLOCSET_DEFAULT_SIZES);
	Assert(MemoryContextIsEmpty(batch_cxt));
	runs = MemoryContextAllocZero(batch_cxt, sizeof(ClaimedRun) * limit);
	if (self_slot >= 0)
		end_passes(claims, self_slot);
	claim_batch_start(claims);
	runs_left_behind = false;
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										   taskorch_batch_time_budget_ms);
	while (!batch_full(done, limit, deadline))
	{
		int			want = claim_singly ? 1 : Min(chunk, limit - done);
		int			got = claim_runs(claims, runs + done, want, full_keys, batch_cxt);
		bool		left_behind = false;

		if (limit == 1 && got == 1)
			strlcpy(isolated_run, runs[0].id, sizeof(isolated_run));
		claimed += got;
		/* more runs are due than this batch takes now */
		if (claimed == got && got == want)
			call_for_help(self_slot, false);
		for (int i = 0; i < got; i++)
		{
			ClaimedRun *run = &runs[done];
			TimestampTz started;
			TimestampTz pass_until;

			if (self_slot >= 0 && (pass_until = pass_over(claims, run, self_slot)) != 0)
			{
				claim_pass_over(claims, run, pass_until);
				left_behind = true;
				break;
			}
			if (self_slot >= 0 && (i < got - 1 || executed > 0) && !fast_task(run))
			{
				/*
				 * The rest of the chunk would wait for it, and the runs this
				 * batch executed would not commit before it ends: release it
				 * and what follows, to claim it alone.
				 */
				claim_singly = true;
				slow_queue = taskorch_queue_hash(run->queue);
				claim_turn_to(claims, run);
				slow_met = slow_task(run);
				left_behind = true;
				break;
			}
			done++;

			if (run->concurrency_limit > 0 &&
				!concurrency_acquire(concurrency_key_hash(run->queue, run->concurrency_key),
									 run->concurrency_limit))
			{
				MemoryContext old = MemoryContextSwitchTo(batch_cxt);

				run->skipped = true;
				full_keys = lappend(full_keys, makeString(claim_full_key(run)));
				MemoryContextSwitchTo(old);
				continue;
			}
			started = GetCurrentTimestamp();
			if (self_slot >= 0)
			{
				taskorch_shared->slots[self_slot].slow = !fast_task(run);
				grow_for(run);
			}
			execute_run(run, batch_cxt);
			if (self_slot >= 0)
			{
				grow_timer_stop();
				taskorch_shared->slots[self_slot].slow = false;
			}
			task_time_note(run->task_id, run->finished_at - started);
			/* now measured: a fast task ends the one-at-a-time claims */
			slow_met = !fast_task(run);
			claim_singly = claim_singly && slow_met;
			if (slow_met)
				slow_queue = taskorch_queue_hash(run->queue);
			else if (self_slot >= 0 && worker_kept(self_slot) &&
					 (fast_noted == NULL || strcmp(fast_noted, run->queue) != 0))
			{
				/* when the batch meets another queue, not per run */
				taskorch_fast_queue_note(MyDatabaseId, taskorch_queue_hash(run->queue), true);
				fast_noted = run->queue;
			}
			concurrency_release();
			waits_create_children(run);
			decide_outcome(run);
			hooks_fire(run);
			CommandCounterIncrement();
			executed++;
			if (i < got - 1 && batch_full(done, limit, deadline))
			{
				left_behind = true;
				break;			/* the rest is released unexecuted at commit */
			}
		}
		runs_left_behind = left_behind;
		if (left_behind)
			call_for_help(self_slot, true);
		if (left_behind || got < want)
			break;				/* released runs, or drained */
		if (claim_one_queue(claims))
			chunk = Min(chunk * 2, CLAIM_CHUNK_MAX);
		else
			chunk = CLAIM_CHUNK;	/* queues take chunks of one size in turn */
	}
	if (done > 0)
		complete_runs(runs, done);
	/* session-level advisory locks the batch's user code took (execute.c) */
	LockReleaseSession(USER_LOCKMETHOD);
	claim_batch_end(claims, runs, done);
	MemoryContextReset(batch_cxt);
	logs_reset();
	if (self_slot >= 0)
	{
		/* for taskorch.workers(): only this worker writes them */
		WorkerSlot *me = &taskorch_shared->slots[self_slot];

		pg_atomic_write_u64(&me->runs_executed, pg_atomic_read_u64(&me->runs_executed) + executed);
		pg_atomic_write_u64(&me->runs_let_go, pg_atomic_read_u64(&me->runs_let_go) + claimed - executed);
	}
	return executed;
}

/* True while this backend executes a task (no nested run_pending). */
bool
taskorch_in_task(void)
{
	return current_run() != NULL;
}

/*
 * SQL: taskorch.run_pending(max_runs) executes due runs in this session
 * and transaction, as a worker would.  For operations and tests; needs
 * superuser since it runs tasks as their owners.
 */
Datum
taskorch_run_pending(PG_FUNCTION_ARGS)
{
	int32		max_runs = PG_GETARG_INT32(0);
	volatile int total = 0;
	ClaimState	claims = {0};
	bool		more;

	if (!superuser())
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("permission denied to run pending runs"),
				errhint("Only superusers may call taskorch.run_pending(); background workers run runs otherwise."));
	if (max_runs < 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("max_runs must not be negative: %d", max_runs),
				errhint("Pass the number of runs to execute, or 0 for none."));
	if (taskorch_in_task())
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("taskorch.run_pending() cannot be called inside a task"));
	while (schedules_fire(&more) >= 0 && more)
		;
	(void) external_settle_lost();
	(void) promote_and_expire();
	PG_TRY();
	{
		while (total < max_runs)
		{
			int			n = taskorch_process_batch(Min(max_runs - total, taskorch_batch_size),
												   &claims, -1);

			if (n == 0)
				break;
			total += n;
		}
	}
	PG_FINALLY();
	{
		claim_forget(&claims);
	}
	PG_END_TRY();
	PG_RETURN_INT32(total);
}

/* ---------------------------------------------------------------------
 * The background worker
 * ---------------------------------------------------------------------
 */

static Oid	run_table_oid = InvalidOid;
static TimestampTz maintenance_due = 0;	/* next promote/expire pass */
static TimestampTz external_due_since = 0;	/* external runs due before this were announced */
static uint32 claimers_gone_seen = 0;	/* taskorch_shared->claimers_gone, as last seen */
static TimestampTz claimers_check_at = 0;	/* then release their runs (0: nothing to do) */
/* size of the runs table the plans were made for: at the worker's start, at each replan */
static BlockNumber planned_blocks = 0;

static BlockNumber
run_table_blocks(Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	BlockNumber blocks = RelationGetNumberOfBlocks(rel);

	table_close(rel, AccessShareLock);
	return blocks;
}

/*
 * Make the plans again when the runs table is twice as large (or half as
 * large) as when they were made: their costs were for that size.
 */
static void
replan_if_resized(void)
{
	BlockNumber blocks = run_table_blocks(run_table_oid);

	if (Max(blocks, planned_blocks) > 8 &&
		(blocks > 2 * planned_blocks || 2 * blocks < planned_blocks))
	{
		taskorch_plans_forget();
		planned_blocks = blocks;
	}
}

#define MAINTENANCE_MS 1000
/* an extra worker of the pool idle this long exits (the pool shrinks) */
#define SHRINK_IDLE_MS 10000
/* the background purge (retention.c) takes at most this long per pass */
#define PURGE_BUDGET_MS 100

/* Commit the worker's transaction and start the next (snapshot pushed). */
static void
next_transaction(void)
{
	PopActiveSnapshot();
	CommitTransactionCommand();
	notify_send_committed();
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
}

static void
worker_exit(int code, Datum arg)
{
	WorkerSlot *slot = &taskorch_shared->slots[MySlot];

	slot->latch = NULL;
	slot->idle = false;
	pg_atomic_write_u64(&slot->run_id, 0);
	slot->pid = 0;
}

/* The installed extension's version, or NULL (inside a transaction). */
static char *
installed_version(void)
{
	char	   *version = NULL;

	SPI_connect();
	if (SPI_execute("SELECT extversion FROM pg_catalog.pg_extension"
					" WHERE extname = 'taskorch'", true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
		version = MemoryContextStrdup(TopMemoryContext,
									  SPI_getvalue(SPI_tuptable->vals[0],
												   SPI_tuptable->tupdesc, 1));
	SPI_finish();
	return version;
}

/*
 * Look up taskorch.run (InvalidOid when the extension is not installed, or
 * its schema is of another version than this library: that waits for
 * ALTER EXTENSION UPDATE), and settle a run a previous process of this
 * worker died executing.
 */
static Oid
worker_start(void)
{
	Oid			relid = InvalidOid;
	char	   *version;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	version = installed_version();
	if (version && strcmp(version, TASKORCH_VERSION) != 0)
		ereport(WARNING,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("taskorch in database \"%s\" is version %s, its library %s: no runs are executed there",
					   get_database_name(MyDatabaseId), version, TASKORCH_VERSION),
				errhint("Run ALTER EXTENSION taskorch UPDATE in that database."));
	else if (version)
		relid = taskorch_run_relid(true);
	if (OidIsValid(relid))
	{
		/* not 0: the first replan would drop the plans of the worker's first second */
		planned_blocks = run_table_blocks(relid);
		crash_recover(MyDatabaseId, taskorch_shared->slots[MySlot].index);
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	return relid;
}

typedef struct SystemFailureArgs
{
	PlanValue	id;
	PlanValue	message;
} SystemFailureArgs;

typedef struct FailedRow
{
	PlanValue	task_id;
	PlanValue	queue;
} FailedRow;

static const PlanField failed_columns[] = {
	PLAN_COLUMN(FailedRow, task_id),
	PLAN_COLUMN(FailedRow, queue),
};

static const PlanField system_failure_params[] = {
	PLAN_PARAM(SystemFailureArgs, id, TEXTOID),
	PLAN_PARAM(SystemFailureArgs, message, TEXTOID),
};
static NamedPlan system_failure_plan = {
	.sql = "UPDATE taskorch.run SET status = " SQL_STATUS(SYSTEM_FAILURE) ", attempts = attempts + 1,"
	"       started_at = coalesce(started_at, now()), finished_at = now(), updated_at = now(),"
	"       error = jsonb_build_object('name', 'SystemFailure', 'message',"
	"               'the worker could not record this run''s outcome: ' || :message)"
	" WHERE id = :id AND status = " SQL_STATUS(QUEUED)
	" RETURNING task_id, queue",
	PLAN_PARAMS(system_failure_params), PLAN_COLUMNS(failed_columns)
};

/* The run of a failed one-run batch ends SYSTEM_FAILURE (its own transaction). */
static void
fail_isolated_run(const char *message)
{
	SystemFailureArgs args;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	args.id = pv_text(isolated_run);
	args.message = pv_text(message);
	SPI_connect();
	(void) run_transition(RUN_QUEUED, RUN_SYSTEM_FAILURE, BY_WORKER);
	if (taskorch_execute_args(&system_failure_plan, &args, false, 0) == 1)
	{
		FailedRow	row;

		taskorch_read_row(&system_failure_plan, 0, &row);
		stats_note_end(pv_cstring(row.task_id), pv_cstring(row.queue), RUN_SYSTEM_FAILURE);
	}
	SPI_finish();
	hooks_fire_ended(isolated_run);
	PopActiveSnapshot();
	CommitTransactionCommand();
	ereport(WARNING,
			errmsg("taskorch: run %s ended %s: %s", isolated_run,
				   run_status_name(RUN_SYSTEM_FAILURE), message));
}

/*
 * A batch failed outside its tasks: abort it and forget its state; then
 * isolate runs, or, when a one-run batch failed, fail its run.
 */
static void
batch_failed(void)
{
	MemoryContext errcxt = MemoryContextSwitchTo(TopMemoryContext);
	ErrorData  *edata = CopyErrorData();

	MemoryContextSwitchTo(errcxt);
	EmitErrorReport();
	FlushErrorState();
	AbortOutOfAnyTransaction();
	grow_timer_stop();
	call_peers_committed();		/* the batch's runs are free too */
	worker_hold_cancels();		/* the ERROR reset the holdoff count (execute.c) */
	taskorch_set_executing(NULL);
	crash_note_run(NULL);
	concurrency_release();
	logs_reset();
	if (batch_cxt)
		MemoryContextReset(batch_cxt);
	if (isolating > 0 && isolated_run[0] != '\0')
		fail_isolated_run(edata->message);
	else
		isolating = taskorch_batch_size;
	isolated_run[0] = '\0';
	FreeErrorData(edata);
}

/*
 * The database's maintenance, each step in a transaction of its own (the
 * worker's transaction is open, a snapshot pushed, on entry and on exit).
 * Schedules' ticks first, in transactions of up to 1,000 schedules each: a
 * tick's run and its advance commit together, and the schedule's row is
 * not held locked while the batch executes.
 */
static void
maintain(void)
{
	bool		more;
	TimestampTz purge_stop;

	do
	{
		if (schedules_fire(&more) > 0)
			taskorch_requeued_at_commit();
		next_transaction();
	} while (more);
	/* retention: old finished runs go, a step per transaction */
	purge_stop = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), PURGE_BUDGET_MS);
	do
	{
		(void) retention_purge(&more);
		next_transaction();
	} while (more && GetCurrentTimestamp() < purge_stop);
	/* external runs lost by their workers, and those now due */
	(void) external_settle_lost();
	external_due_since = external_notify_due(external_due_since);
	next_transaction();
	stats_count();				/* what waits, for taskorch.stats */
	next_transaction();
	if (promote_and_expire() > 0)
		taskorch_requeued_at_commit();	/* the claims' marks are reset */
}

/*
 * The database's maintenance is the kept workers' while they are free: an
 * extra worker, there for slow runs, would first prepare its plans (some
 * 100 ms of a core, at the end of its first run).  It then leaves them the
 * times it is due too (a delayed run's), or it would wake for what it does
 * not do, again and again until a kept worker did it.
 */
static bool
keeps_maintenance(void)
{
	return worker_kept(MySlot) || !taskorch_keepers_free(MyDatabaseId);
}

/*
 * One transaction: claim and execute a batch.  Returns the runs executed,
 * or -1 when the extension is gone (dropped, or dropped and re-created);
 * when none, *sleep_ms says how long the worker may sleep (a released
 * concurrency slot wakes it sooner).
 */
static int
worker_batch(ClaimState *claims, long *sleep_ms)
{
	int			claimed;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(run_table_oid)))
	{
		CommitTransactionCommand();
		return -1;
	}
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "taskorch: executing runs");

	/* a backend that claimed external runs exited: release them soon (external.c) */
	if (pg_atomic_read_u32(&taskorch_shared->claimers_gone) != claimers_gone_seen)
	{
		claimers_gone_seen = pg_atomic_read_u32(&taskorch_shared->claimers_gone);
		claimers_check_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														CLAIMER_GONE_GRACE_MS + 10);
	}
	if (claimers_check_at != 0 && GetCurrentTimestamp() >= claimers_check_at)
	{
		claimers_check_at = 0;
		(void) external_settle_lost();
		next_transaction();
	}
	if (GetCurrentTimestamp() >= maintenance_due)
	{
		if (keeps_maintenance())
			maintain();
		replan_if_resized();
		maintenance_due = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), MAINTENANCE_MS);
	}
	isolated_run[0] = '\0';
	claimed = taskorch_process_batch(isolating > 0 ? 1 : taskorch_batch_size, claims, MySlot);
	if (isolating > 0 && claimed > 0)
		isolating--;
	if (claimed == 0 && runs_left_behind)
		claimed = 1;			/* it claimed runs it let go: claim again at once */
	else if (claimed == 0)
	{
		int64		due = keeps_maintenance() ? next_due_ms() : -1;
		int64		retry = claim_next_run_ms(claims);

		if (retry >= 0 && (due < 0 || retry < due))
			due = retry;

		*sleep_ms = (due < 0) ? taskorch_idle_poll_ms : Min(due, taskorch_idle_poll_ms);
		if (claimers_check_at != 0)
			*sleep_ms = Min(*sleep_ms, TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
																		 claimers_check_at) + 1);
		maintenance_due = Min(maintenance_due,
							  TimestampTzPlusMilliseconds(GetCurrentTimestamp(), *sleep_ms));
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	call_peers_committed();
	notify_send_committed();	/* the batch's outcomes, to LISTENers */
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return claimed;
}

/* worker_batch(), with the errors outside tasks contained (batch_failed) */
static int
worker_cycle(ClaimState *claims, long *sleep_ms)
{
	int			claimed;

	PG_TRY();
	{
		claimed = worker_batch(claims, sleep_ms);
	}
	PG_CATCH();
	{
		taskorch_shared->slots[MySlot].slow = false;
		batch_failed();
		claims->known = false;	/* look again */
		claimed = 1;			/* go on at once, isolating */
	}
	PG_END_TRY();
	return claimed;
}

/*
 * A batch allocates some hundreds of kilobytes (its runs, their outcomes,
 * the arrays of the completing UPDATE) and frees them at its end.  With
 * glibc's defaults, that memory goes back to the kernel after every batch
 * (the heap is trimmed past 128 kB, and large chunks are mmap'ed) and is
 * faulted in again by the next one: a tenth of a no-op burn-down's time
 * was page faults.  The worker keeps it instead.
 */
static void
keep_heap(void)
{
#ifdef __GLIBC__
	mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 128 * 1024 * 1024);
	mallopt(M_TOP_PAD, 4 * 1024 * 1024);
#endif
}

void
taskorch_worker_main(Datum arg)
{
	WorkerSlot *slot;
	Oid			dboid;
	uint32		generation;
	ClaimState	claims = {0};

	MySlot = DatumGetInt32(arg);
	slot = &taskorch_shared->slots[MySlot];
	memcpy(&generation, MyBgworkerEntry->bgw_extra, sizeof(uint32));

	crash_signals_init();		/* SIGTERM and SIGQUIT: crash accounting (crash.c) */
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGINT, StatementCancelHandler);
	BackgroundWorkerUnblockSignals();

	LWLockAcquire(taskorch_shared->lock, LW_SHARED);
	dboid = slot->generation == generation ? slot->dboid : InvalidOid;
	LWLockRelease(taskorch_shared->lock);
	if (!OidIsValid(dboid))
		proc_exit(0);			/* slot reassigned by a restarted launcher */

	slot->pid = MyProcPid;		/* from now on, a pause can stop us */
	before_shmem_exit(worker_exit, (Datum) 0);
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("taskorch worker");
	/*
	 * No JIT in a worker: its statements are short, and JIT-compiling one
	 * whose estimate is off (the runs table's statistics lag its churn) cost
	 * more than 300 ms a call.  A task function that wants JIT sets it on
	 * itself (ALTER FUNCTION ... SET jit = on).
	 */
	SetConfigOption("jit", "off", PGC_USERSET, PGC_S_SESSION);
	logs_worker_level();		/* the tasks' own messages reach the run logs */
	keep_heap();

	worker_hold_cancels();		/* only a task may be interrupted (execute.c) */
	run_table_oid = worker_start();
	if (!OidIsValid(run_table_oid))
	{
		taskorch_database_state(dboid, DB_NO_EXTENSION);
		proc_exit(0);
	}
	if (slot->index == 0)
		taskorch_database_state(dboid, DB_ACTIVE);
	else
	{
		/*
		 * A worker joining the pool claims first: runs are why it was
		 * started, and its first maintenance pass, which prepares its
		 * plans, takes a few hundred milliseconds; the first worker's pass
		 * is due at once.
		 */
		maintenance_due = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), MAINTENANCE_MS);
	}
	/*
	 * An extra worker is there for slow runs: it claims one run at a time
	 * from the start, not a chunk that would walk a fast queue's head (its
	 * entries of the runs completed since the slow runs' snapshots, not
	 * removable yet) to lock runs it lets go to the kept workers.
	 */
	claim_singly = !worker_kept(MySlot);
	slot->latch = MyLatch;

	for (;;)
	{
		long		sleep_ms = 0;
		int			claimed;
		static TimestampTz idle_since = 0;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			logs_worker_level();
		}
		slot->idle = false;
		claimed = worker_cycle(&claims, &sleep_ms);
		if (claimed < 0)
		{
			/* DROP EXTENSION (or drop and re-create): let the launcher decide */
			taskorch_database_state(dboid, DB_UNKNOWN);
			proc_exit(0);
		}
		if (claimed > 0)
		{
			idle_since = 0;
			continue;
		}

		/* drained (the next claim starts at the head of the queue again) */
		if (idle_since == 0)
			idle_since = GetCurrentTimestamp();
		else if (slot->index >= taskorch_workers_per_database &&
				 GetCurrentTimestamp() - idle_since >= SHRINK_IDLE_MS * (int64) 1000 &&
				 taskorch_pool_shrink(dboid, MySlot))
			proc_exit(0);		/* the pool's last extra worker, idle: it shrinks */
		sleep_ms = Min(sleep_ms, SHRINK_IDLE_MS);
		slot->idle = true;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms, PG_WAIT_EXTENSION);
	}
}
