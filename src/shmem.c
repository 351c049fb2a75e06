/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  Shared state: per-database entries, worker slots, and the wake-ups
 *	  that make a committed trigger start within a millisecond.
 *
 * Locking: taskorch_shared->lock guards DbEntry fields (but the fast-queue
 * hints, atomics read and written without it) and the dboid/index
 * of every slot.  A worker writes its own pid, latch, idle flag and
 * executing run without the lock; other backends read them as hints, and
 * the wake-up protocol below is correct whichever value they read.  A
 * slot's spinlock (mutex) guards only the two role OIDs of the run it
 * executes; its live metadata is published under a change counter
 * (live_change: odd while the worker writes) that readers retry on, so
 * no copy is made under a spinlock.
 *
 * Lock order: taskorch_shared->lock, then a slot's mutex (the only two
 * ever held together); conc_lock (concurrency.c) is never held with
 * either.  Nothing that may look up a catalog or raise an error runs
 * under any of them: privilege checks (acts_for) are made on copies,
 * after the lock is released.
 *
 * Wake-up protocol: a worker resets its latch before it claims, so a
 * SetLatch after a trigger commits either lands before the claim's
 * snapshot (the claim sees the run) or leaves the latch set (the worker
 * loops once more).  Waking any one worker of the database is therefore
 * enough; an idle one is preferred because it starts sooner.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include <signal.h>

#include "common/hashfn.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

TaskorchShared *taskorch_shared = NULL;
int			MySlot = -1;

PG_FUNCTION_INFO_V1(taskorch_executing_runs);
PG_FUNCTION_INFO_V1(taskorch_workers);
PG_FUNCTION_INFO_V1(taskorch_database_workers);
PG_FUNCTION_INFO_V1(taskorch_check_worker_slots);

/*
 * One per process that may execute a run at once (workers, and sessions in
 * run_pending()), and EXTERNAL_KEYS for the keys external runs hold
 * (concurrency.c).
 */
#define EXTERNAL_KEYS 4096

static int
conc_entries(void)
{
	return max_worker_processes + MaxConnections + 16 + EXTERNAL_KEYS;
}

static Size
shared_size(void)
{
	Size		size;

	size = add_size(offsetof(TaskorchShared, slots),
					mul_size(max_worker_processes, sizeof(WorkerSlot)));
	size = add_size(size, mul_size(taskorch_max_databases, sizeof(DbEntry)));
	size = add_size(size, mul_size(conc_entries(), sizeof(ConcurrencySlot)));
	size = add_size(size, mul_size(taskorch_max_databases, sizeof(Oid)));
	return size;
}

void
taskorch_shmem_request(void)
{
	RequestAddinShmemSpace(shared_size());
	RequestAddinShmemSpace(task_times_shmem_size());
	RequestAddinShmemSpace(stats_shmem_size());
	RequestNamedLWLockTranche("taskorch", 3);	/* lock, conc_lock, the stats' */
}

void
taskorch_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	taskorch_shared = ShmemInitStruct("taskorch", shared_size(), &found);
	if (!found)
	{
		memset(taskorch_shared, 0, shared_size());
		taskorch_shared->lock = &(GetNamedLWLockTranche("taskorch"))[0].lock;
		taskorch_shared->conc_lock = &(GetNamedLWLockTranche("taskorch"))[1].lock;
		taskorch_shared->nconc = conc_entries();
		taskorch_shared->nslots = max_worker_processes;
		taskorch_shared->ndbs = taskorch_max_databases;
		pg_atomic_init_u32(&taskorch_shared->wake_rr, 0);
		pg_atomic_init_u32(&taskorch_shared->requeued, 0);
		pg_atomic_init_u32(&taskorch_shared->queued, 0);
		pg_atomic_init_u32(&taskorch_shared->claimers_gone, 0);
		taskorch_shared->started_at = GetCurrentTimestamp();
		for (int i = 0; i < taskorch_shared->nslots; i++)
		{
			pg_atomic_init_u64(&taskorch_shared->slots[i].run_id, 0);
			pg_atomic_init_u64(&taskorch_shared->slots[i].runs_executed, 0);
			pg_atomic_init_u64(&taskorch_shared->slots[i].runs_let_go, 0);
			pg_atomic_init_u64(&taskorch_shared->slots[i].cancel_run, 0);
			SpinLockInit(&taskorch_shared->slots[i].mutex);
			pg_atomic_init_u32(&taskorch_shared->slots[i].live_change, 0);
		}
	}
	taskorch_shared->dbs = (DbEntry *)
		((char *) taskorch_shared + offsetof(TaskorchShared, slots) +
		 sizeof(WorkerSlot) * taskorch_shared->nslots);
	taskorch_shared->conc = (ConcurrencySlot *)
		((char *) taskorch_shared->dbs + sizeof(DbEntry) * taskorch_shared->ndbs);
	taskorch_shared->conc_counted = (Oid *) (taskorch_shared->conc + taskorch_shared->nconc);
	task_times_shmem_startup();
	stats_shmem_startup();
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Set the latch of one worker of the database, other than skip_slot,
 * preferring one that sleeps.  With only_idle, busy workers are left alone,
 * but for one thing: when none sleeps, one that is between claims (not
 * executing a slow run) has its latch set, so that it claims again before
 * it sleeps: it may have found nothing a moment ago, while the runs were
 * locked by a peer's claim that is letting them go, and would otherwise
 * sleep through them (a lost call).  Only a sleeper counts as called.
 * For fast runs, only the workers kept for them are called; for slow ones,
 * the extra workers first (taskorch_workers_kept()); for anything else,
 * the kept ones first, even one between claims.  A sleeper called is
 * no longer idle from then on (the lock is taken exclusively for that): two
 * calls in a row wake two sleepers, not the same one twice.  A worker
 * called for the slow runs of a queue (queue_hash, taskorch_queue_hash();
 * 0: none in particular) is told which (slow_queue): it claims from that
 * queue again if it passed over it.
 */
static bool
wake_one(Oid dboid, int skip_slot, bool only_idle, WakeFor wake_for, uint32 queue_hash)
{
	TaskorchShared *sh = taskorch_shared;
	WorkerSlot *chosen = NULL;
	Latch	   *latch = NULL;	/* chosen's, read once: an exiting worker clears it */
	WorkerSlot *between = NULL; /* a busy worker between claims */
	Latch	   *between_latch = NULL;
	WorkerSlot *kept_between = NULL;	/* a kept one between claims */
	Latch	   *kept_between_latch = NULL;
	int			kept = taskorch_workers_kept();
	int			start;
	bool		called;

	if (sh == NULL)
		return false;
	start = pg_atomic_fetch_add_u32(&sh->wake_rr, 1) % sh->nslots;
	LWLockAcquire(sh->lock, LW_EXCLUSIVE);
	for (int n = 0; n < sh->nslots; n++)
	{
		WorkerSlot *slot = &sh->slots[(start + n) % sh->nslots];
		Latch	   *slot_latch = slot->latch;
		bool		best;

		if (slot->dboid != dboid || slot_latch == NULL ||
			(start + n) % sh->nslots == skip_slot ||
			(wake_for == WAKE_FAST && slot->index >= kept))
			continue;
		if (!slot->idle && !slot->slow && between == NULL)
		{
			between = slot;
			between_latch = slot_latch;
		}
		if (!slot->idle && !slot->slow && slot->index < kept && kept_between == NULL)
		{
			kept_between = slot;
			kept_between_latch = slot_latch;
		}
		/*
		 * a sleeper of the kind wanted (an extra worker for a slow run, a
		 * kept one for anything else: it also keeps the maintenance, due
		 * sooner when a delayed run was moved); else any sleeper; else,
		 * unless only_idle, any
		 */
		best = slot->idle && ((wake_for == WAKE_SLOW) == (slot->index >= kept));
		if (best || (slot->idle && (chosen == NULL || !chosen->idle)) ||
			(chosen == NULL && !only_idle))
		{
			chosen = slot;
			latch = slot_latch;
		}
		if (best)
			break;
	}
	/*
	 * For anything else, a kept worker between claims rather than an extra
	 * sleeper: it looks again before it sleeps, where the extra one would
	 * leave the maintenance to it.
	 */
	if (wake_for == WAKE_ANY && kept_between != NULL &&
		(chosen == NULL || chosen->index >= kept))
	{
		chosen = NULL;
		between = kept_between;
		between_latch = kept_between_latch;
	}
	called = chosen != NULL;
	if (chosen)
		chosen->idle = false;
	else
	{
		chosen = between;
		latch = between_latch;
	}
	if (chosen && wake_for == WAKE_SLOW && queue_hash != 0)
		chosen->slow_queue = queue_hash;
	if (latch)
		SetLatch(latch);
	LWLockRelease(sh->lock);
	return called;
}

/* A trigger committed in dboid: make sure a worker looks at the queue. */
void
taskorch_wake_database(Oid dboid)
{
	wake_one(dboid, -1, false, WAKE_ANY, 0);
}

/* The entry of a database (lock held, or read as a hint); NULL: none. */
static DbEntry *
find_db(Oid dboid)
{
	for (int i = 0; i < taskorch_shared->ndbs; i++)
		if (taskorch_shared->dbs[i].state != DB_FREE &&
			taskorch_shared->dbs[i].dboid == dboid)
			return &taskorch_shared->dbs[i];
	return NULL;
}

/*
 * A worker found more due runs than it takes now (of fast tasks, of slow
 * ones, or either): call a sleeping peer.  False when none sleeps.
 */
bool
taskorch_wake_peer(Oid dboid, int self_slot, WakeFor wake_for, uint32 queue_hash)
{
	return wake_one(dboid, self_slot, true, wake_for, queue_hash);
}

/* A queue's name as a worker is told it (WorkerSlot.slow_queue): never 0 */
uint32
taskorch_queue_hash(const char *queue)
{
	uint32		h = hash_bytes((const unsigned char *) queue, strlen(queue));

	return h != 0 ? h : 1;
}

/*
 * Every worker of the database is busy and runs are due: ask the launcher
 * for one more (up to taskorch.max_workers_per_database); each ask counts,
 * so the pool grows by as many at once.  A hint, read and cleared by the
 * launcher without a lock: an ask lost to a race is a worker fewer that
 * round, one counted twice a worker more (an idle extra worker exits).
 * Safe in a signal handler (the grow timer, worker.c): it takes no lock
 * and allocates nothing.
 */
void
taskorch_pool_grow(Oid dboid)
{
	DbEntry    *db;

	if (taskorch_shared == NULL ||
		taskorch_max_workers_per_database <= taskorch_workers_per_database)
		return;
	db = find_db(dboid);
	if (db != NULL && db->state == DB_ACTIVE)
	{
		if (db->demand < TASKORCH_MAX_WORKERS_PER_DATABASE)
			db->demand++;
		taskorch_wake_launcher();
	}
}

/*
 * The workers a database keeps for fast runs, its first ones: the pool's
 * floor (taskorch.workers_per_database), or one fewer than its ceiling when
 * the pool cannot grow past the floor, so that a worker is left for slow
 * runs; at least one.  The others, the pool's extra workers, are for slow
 * runs.
 */
int
taskorch_workers_kept(void)
{
	return Max(Min(taskorch_workers_per_database,
				   Max(taskorch_max_workers_per_database, taskorch_workers_per_database) - 1),
			   Min(taskorch_workers_per_database, 1));
}

/*
 * The database's workers that are running: its extra ones, or its kept
 * ones free of slow runs.  Read without the lock: a hint.
 */
static int
count_workers(Oid dboid, bool extra)
{
	TaskorchShared *sh = taskorch_shared;
	int			kept = taskorch_workers_kept();
	int			n = 0;

	for (int i = 0; i < sh->nslots; i++)
	{
		WorkerSlot *slot = &sh->slots[i];

		if (slot->dboid == dboid && slot->latch != NULL &&
			(extra ? slot->index >= kept : slot->index < kept && !slot->slow))
			n++;
	}
	return n;
}

/* How many extra workers the database has */
int
taskorch_extra_workers(Oid dboid)
{
	return count_workers(dboid, true);
}

/*
 * Are the workers kept for fast runs there, and all free of slow runs?
 * False when the database keeps none (workers_per_database = 0, extra
 * workers left over): no worker would take what an extra one leaves.
 */
bool
taskorch_keepers_free(Oid dboid)
{
	int			kept = taskorch_workers_kept();

	return kept > 0 && count_workers(dboid, false) >= kept;
}

/*
 * Queues a kept worker found fast runs in (`fast`), or met a slow run of
 * (not fast): while the kept workers are free, the extra ones leave the
 * fast queues to them without claiming from them.  Such a claim would walk
 * the queue's head, the entries of the runs just completed (not removable
 * while the slow runs' transactions are open), to lock a run it lets go;
 * each new extra worker did so once.  A ring of the last FAST_QUEUE_HINTS
 * queues, read and written without the lock: a hint.
 */
static pg_atomic_uint32 *
fast_queue_find(DbEntry *db, uint32 queue_hash)
{
	for (int i = 0; i < FAST_QUEUE_HINTS; i++)
		if (pg_atomic_read_u32(&db->fast_queues[i]) == queue_hash)
			return &db->fast_queues[i];
	return NULL;
}

void
taskorch_fast_queue_note(Oid dboid, uint32 queue_hash, bool fast)
{
	DbEntry    *db = find_db(dboid);
	pg_atomic_uint32 *hint;

	if (db == NULL)
		return;
	hint = fast_queue_find(db, queue_hash);
	if (hint && !fast)
		pg_atomic_write_u32(hint, 0);
	else if (!hint && fast)
		pg_atomic_write_u32(&db->fast_queues[pg_atomic_fetch_add_u32(&db->fast_queues_next, 1) %
											 FAST_QUEUE_HINTS], queue_hash);
}

bool
taskorch_fast_queue_known(Oid dboid, uint32 queue_hash)
{
	DbEntry    *db = find_db(dboid);

	return db != NULL && fast_queue_find(db, queue_hash) != NULL;
}

/*
 * The worker of self_slot has been idle long: if it is the pool's last
 * extra worker, the pool shrinks by it (it then exits).  Returns whether
 * it should exit.
 */
bool
taskorch_pool_shrink(Oid dboid, int self_slot)
{
	TaskorchShared *sh = taskorch_shared;
	DbEntry    *db;
	bool		shrink;

	LWLockAcquire(sh->lock, LW_EXCLUSIVE);
	db = find_db(dboid);
	shrink = db != NULL && db->state == DB_ACTIVE && db->extra > 0 &&
		sh->slots[self_slot].index == taskorch_workers_per_database + db->extra - 1;
	if (shrink)
		db->extra--;
	LWLockRelease(sh->lock);
	return shrink;
}

void
taskorch_wake_launcher(void)
{
	Latch	   *latch = taskorch_shared ? taskorch_shared->launcher_latch : NULL;

	/* read once: an exiting launcher clears it */
	if (latch)
		SetLatch(latch);
}

/*
 * Pause: stop the database's workers and keep the launcher from restarting
 * them until this backend resumes the database (or exits).  The command
 * that follows (DROP DATABASE ...) waits up to five seconds for other
 * sessions to leave, which covers the workers' exit.
 */
void
taskorch_database_pause(Oid dboid, bool pause)
{
	TaskorchShared *sh = taskorch_shared;
	DbEntry    *db;

	if (sh == NULL)
		return;
	LWLockAcquire(sh->lock, LW_EXCLUSIVE);
	db = find_db(dboid);
	if (db && pause)
		db->paused_by = MyProcPid;
	else if (db && db->paused_by == MyProcPid)
		db->paused_by = 0;
	for (int i = 0; pause && i < sh->nslots; i++)
		if (sh->slots[i].dboid == dboid && sh->slots[i].pid != 0)
			kill(sh->slots[i].pid, SIGTERM);
	LWLockRelease(sh->lock);
	if (!pause)
		taskorch_wake_launcher();
}

/*
 * Was a SIGTERM from `sender` a deliberate stop of this worker: from the
 * postmaster (shutdown, TerminateBackgroundWorker), the launcher, or a
 * backend pausing this database?  (Read without the lock: called while
 * exiting, when the lock may not be taken; pids are read atomically.)
 */
bool
taskorch_stop_requested_by(pid_t sender)
{
	DbEntry    *db;

	if (sender == 0)
		return false;
	if (sender == PostmasterPid || sender == taskorch_shared->launcher_pid)
		return true;
	db = find_db(MyDatabaseId);
	return db != NULL && db->paused_by == sender;
}

/*
 * After a pause: wait (up to 10 s) until the database's workers have
 * exited, so that the command that follows meets none of them.
 */
void
taskorch_database_wait_stopped(Oid dboid)
{
	for (int tries = 0; tries < 1000; tries++)
	{
		bool		running = false;

		LWLockAcquire(taskorch_shared->lock, LW_SHARED);
		for (int i = 0; i < taskorch_shared->nslots; i++)
			running |= taskorch_shared->slots[i].dboid == dboid &&
				taskorch_shared->slots[i].pid != 0;
		LWLockRelease(taskorch_shared->lock);
		if (!running)
			return;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

static uint64
run_number(const char *run_id)
{
	return strtoull(run_id + strlen("run_"), NULL, 10);
}

/* The worker announces the run it executes (NULL: none). */
void
taskorch_set_executing(const ClaimedRun *run)
{
	WorkerSlot *slot;
	uint64		n = 0;

	if (MySlot < 0)
		return;
	slot = &taskorch_shared->slots[MySlot];
	if (run != NULL)
	{
		n = run_number(run->id);
		slot->run_started = GetCurrentTimestamp();
		SpinLockAcquire(&slot->mutex);
		slot->run_owner = run->owner;
		slot->run_triggerer = run->triggered_by;
		SpinLockRelease(&slot->mutex);
	}
	taskorch_set_live_metadata(NULL);
	pg_atomic_write_u64(&slot->run_id, n);
}

/*
 * The roles of the run `run_id` of this slot: false if the slot moved on
 * to another run meanwhile.  Takes only the slot's spinlock.
 */
static bool
slot_run_roles(WorkerSlot *slot, uint64 run_id, Oid *owner, Oid *triggerer)
{
	SpinLockAcquire(&slot->mutex);
	*owner = slot->run_owner;
	*triggerer = slot->run_triggerer;
	SpinLockRelease(&slot->mutex);
	return pg_atomic_read_u64(&slot->run_id) == run_id;
}

/*
 * taskorch.cancel() of a run a worker is executing: note the request in
 * the worker's slot and interrupt it (SIGINT, like pg_cancel_backend).
 * Returns false when no worker is executing the run.
 */
bool
taskorch_cancel_executing(const char *run_id)
{
	uint64		n = run_number(run_id);
	bool		found = false;

	LWLockAcquire(taskorch_shared->lock, LW_SHARED);
	for (int i = 0; i < taskorch_shared->nslots && !found; i++)
	{
		WorkerSlot *slot = &taskorch_shared->slots[i];

		if (slot->dboid != MyDatabaseId || pg_atomic_read_u64(&slot->run_id) != n)
			continue;
		pg_atomic_write_u64(&slot->cancel_run, n);
		if (slot->pid != 0)
			kill(slot->pid, SIGINT);
		found = true;
	}
	LWLockRelease(taskorch_shared->lock);
	return found;
}

/*
 * The executing run's metadata, as text, for readers while it runs (NULL:
 * unchanged).  It is kept whole or not at all, never cut: larger than
 * LIVE_METADATA_BYTES, the live value is dropped (an earlier, smaller one
 * too) and readers see the stored value until the run's batch commits.
 */
void
taskorch_set_live_metadata(const char *text)
{
	WorkerSlot *slot;
	size_t		len = text ? strlen(text) : 0;

	if (MySlot < 0)
		return;
	if (len >= LIVE_METADATA_BYTES)
		len = 0;
	slot = &taskorch_shared->slots[MySlot];
	if (len == 0 && slot->live_metadata_len == 0)
		return;					/* nothing shown: nothing to change */
	/* even between writes (odd only if a worker died writing: made even) */
	if (pg_atomic_read_u32(&slot->live_change) & 1)
		pg_atomic_fetch_add_u32(&slot->live_change, 1);
	/* odd: a reader that meets or overlaps the copy retries (read_live_metadata) */
	pg_atomic_fetch_add_u32(&slot->live_change, 1);	/* a full barrier */
	if (len > 0)
		memcpy(slot->live_metadata, text, len + 1);
	slot->live_metadata_len = (int) len;
	pg_write_barrier();
	pg_atomic_fetch_add_u32(&slot->live_change, 1);
}

/*
 * Copy a slot's live metadata into live[] ("" when none).  The worker may
 * rewrite it meanwhile: the copy is kept only if the change counter was
 * even and unchanged around it.  A worker that keeps rewriting it (or died
 * while writing) makes the reader give up after a while and report none,
 * as if the run had not changed it: readers then see the stored value.
 */
static void
read_live_metadata(WorkerSlot *slot, char *live)
{
	for (int tries = 0; tries < 1000; tries++)
	{
		uint32		before = pg_atomic_read_u32(&slot->live_change);
		int			len;

		pg_read_barrier();
		if ((before & 1) == 0)
		{
			len = slot->live_metadata_len;
			if (len > 0 && len < LIVE_METADATA_BYTES)
				memcpy(live, slot->live_metadata, len);
			else
				len = 0;
			live[len] = '\0';
			pg_read_barrier();
			if (pg_atomic_read_u32(&slot->live_change) == before)
				return;
		}
		pg_spin_delay();
	}
	live[0] = '\0';
}

/* In a worker: was a cancel of this run asked for? */
bool
taskorch_cancel_requested(const char *run_id)
{
	return MySlot >= 0 &&
		pg_atomic_read_u64(&taskorch_shared->slots[MySlot].cancel_run) == run_number(run_id);
}

static Datum
run_id_datum(uint64 n)
{
	return CStringGetTextDatum(psprintf("run_" UINT64_FORMAT, n));
}

/* SQL: taskorch.executing_runs() -> (run_id, pid, started_at, metadata), of the runs you may see */
Datum
taskorch_executing_runs(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (taskorch_shared == NULL)
		PG_RETURN_VOID();
	for (int i = 0; i < taskorch_shared->nslots; i++)
	{
		WorkerSlot *slot = &taskorch_shared->slots[i];
		uint64		run_id = pg_atomic_read_u64(&slot->run_id);
		Datum		values[4];
		bool		nulls[4] = {false, false, false, true};
		char		live[LIVE_METADATA_BYTES];
		Oid			owner;
		Oid			triggerer;

		/* no lock held here: the slot's fields are hints, rechecked by run_id */
		if (run_id == 0 || slot->dboid != MyDatabaseId ||
			!slot_run_roles(slot, run_id, &owner, &triggerer) ||
			!run_visible(owner, triggerer))
			continue;
		values[0] = run_id_datum(run_id);
		values[1] = Int32GetDatum(slot->pid);
		values[2] = TimestampTzGetDatum(slot->run_started);
		read_live_metadata(slot, live);
		if (live[0] != '\0')
		{
			values[3] = JsonbPGetDatum(jsonb_from_cstring(live));
			nulls[3] = false;
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}

/* SQL: taskorch.workers() -> this server's workers and the runs (you may see) they execute */
Datum
taskorch_workers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	typedef struct
	{
		Oid			dboid;
		int			index;
		pid_t		pid;
		bool		idle;
		uint64		run_id;
		uint64		runs_executed;
		uint64		runs_let_go;
		bool		roles_known;	/* the slot was still executing run_id */
		Oid			owner;
		Oid			triggerer;
	}			WorkerCopy;
	WorkerCopy *copy;
	int			n = 0;

	InitMaterializedSRF(fcinfo, 0);
	if (taskorch_shared == NULL)
		PG_RETURN_VOID();
	copy = palloc(sizeof(WorkerCopy) * taskorch_shared->nslots);

	/* copy what is shown under the lock (lock, then a slot's mutex) ... */
	LWLockAcquire(taskorch_shared->lock, LW_SHARED);
	for (int i = 0; i < taskorch_shared->nslots; i++)
	{
		WorkerSlot *slot = &taskorch_shared->slots[i];
		WorkerCopy *c = &copy[n];

		if (!OidIsValid(slot->dboid))
			continue;
		c->dboid = slot->dboid;
		c->index = slot->index;
		c->pid = slot->pid;
		c->idle = slot->idle;
		c->run_id = pg_atomic_read_u64(&slot->run_id);
		c->runs_executed = pg_atomic_read_u64(&slot->runs_executed);
		c->runs_let_go = pg_atomic_read_u64(&slot->runs_let_go);
		c->roles_known = c->run_id != 0 &&
			slot_run_roles(slot, c->run_id, &c->owner, &c->triggerer);
		n++;
	}
	LWLockRelease(taskorch_shared->lock);

	/* ... and check privileges (catalog lookups) once it is released */
	for (int i = 0; i < n; i++)
	{
		WorkerCopy *c = &copy[i];
		Datum		values[7];
		bool		nulls[7] = {false, false, false, false, false, false, false};

		char	   *database = get_database_name(c->dboid);

		values[0] = database ? DirectFunctionCall1(namein, CStringGetDatum(database)) : (Datum) 0;
		nulls[0] = database == NULL;	/* dropped meanwhile */
		values[1] = Int32GetDatum(c->index);
		values[2] = Int32GetDatum(c->pid);
		nulls[2] = c->pid == 0;
		values[3] = BoolGetDatum(c->idle);
		values[4] = run_id_datum(c->run_id);
		nulls[4] = !c->roles_known || !run_visible(c->owner, c->triggerer);
		values[5] = Int64GetDatum((int64) c->runs_executed);
		values[6] = Int64GetDatum((int64) c->runs_let_go);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}

/*
 * The extension was created in this database and that has committed:
 * have the launcher probe it again now rather than at its next rescan.
 */
void
taskorch_database_installed(Oid dboid)
{
	DbEntry    *db;

	if (taskorch_shared == NULL)
		return;
	LWLockAcquire(taskorch_shared->lock, LW_EXCLUSIVE);
	db = find_db(dboid);
	if (db && db->state == DB_NO_EXTENSION)
	{
		db->state = DB_UNKNOWN;
		db->restart_after = 0;
	}
	else if (db && db->state == DB_PROBING)
		db->reprobe = true;		/* the probe may have looked too early */
	LWLockRelease(taskorch_shared->lock);
	taskorch_wake_launcher();
}

/*
 * SQL: taskorch.database_workers(): each database with the extension, the
 * workers it wants and those running, and whether its first worker found
 * no background worker slot (starved: its runs wait).
 */
Datum
taskorch_database_workers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	typedef struct
	{
		Oid			dboid;
		int			wanted;
		int			running;
		bool		starved;
	}			DbCopy;
	DbCopy	   *copy;
	int			n = 0;

	InitMaterializedSRF(fcinfo, 0);
	if (taskorch_shared == NULL)
		PG_RETURN_VOID();
	copy = palloc(sizeof(DbCopy) * taskorch_shared->ndbs);
	LWLockAcquire(taskorch_shared->lock, LW_SHARED);
	for (int d = 0; d < taskorch_shared->ndbs; d++)
	{
		DbEntry    *db = &taskorch_shared->dbs[d];
		DbCopy	   *c = &copy[n];

		/* a starved database may not have been probed: its worker 0 is the probe */
		if (db->state != DB_ACTIVE && !(db->starved && db->state != DB_FREE))
			continue;
		c->dboid = db->dboid;
		c->wanted = db->paused_by != 0 ? 0 : taskorch_workers_per_database + db->extra;
		c->running = 0;
		for (int i = 0; i < taskorch_shared->nslots; i++)
			c->running += taskorch_shared->slots[i].dboid == db->dboid &&
				taskorch_shared->slots[i].pid != 0;
		c->starved = db->starved;
		n++;
	}
	LWLockRelease(taskorch_shared->lock);
	for (int i = 0; i < n; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};
		char	   *database = get_database_name(copy[i].dboid);

		if (database == NULL)
			continue;			/* dropped meanwhile */
		values[0] = DirectFunctionCall1(namein, CStringGetDatum(database));
		values[1] = Int32GetDatum(copy[i].wanted);
		values[2] = Int32GetDatum(copy[i].running);
		values[3] = BoolGetDatum(copy[i].starved);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}

/*
 * trigger() in a database whose workers could not start: a NOTICE, once
 * per session (the run is made; it waits for a worker).
 */
void
notice_if_starved(void)
{
	static bool noticed = false;
	DbEntry    *db;

	if (noticed || taskorch_shared == NULL)
		return;
	db = find_db(MyDatabaseId);
	if (db == NULL || !db->starved)
		return;
	noticed = true;
	ereport(NOTICE,
			errmsg("no taskorch worker runs in database \"%s\": its runs wait until one can start",
				   get_database_name(MyDatabaseId)),
			errdetail("Every background worker slot is taken (max_worker_processes = %d), or taskorch.max_workers (%d) run in other databases.",
					  max_worker_processes, taskorch_max_workers),
			errhint("Raise max_worker_processes or taskorch.max_workers, or lower taskorch.workers_per_database; taskorch.database_workers shows each database's workers."));
}

/*
 * SQL: taskorch_internal.check_worker_slots(), run by CREATE EXTENSION: a
 * WARNING when the background worker slots will not hold this database's
 * workers beside the background workers running now (the launcher then
 * gives each database one worker first, taking extra ones from others).
 */
Datum
taskorch_check_worker_slots(PG_FUNCTION_ARGS)
{
	int			in_use = 0;		/* background workers, but this database's own */
	int			ours = 0;		/* taskorch workers of other databases */
	bool		isnull;

	SPI_connect();
	if (SPI_execute("SELECT count(*)::int, count(*) FILTER (WHERE backend_type = 'taskorch worker')::int"
					"  FROM pg_catalog.pg_stat_activity"
					" WHERE backend_type NOT IN ('client backend', 'autovacuum launcher',"
					"       'autovacuum worker', 'background writer', 'checkpointer', 'walwriter',"
					"       'archiver', 'startup', 'walreceiver', 'walsender', 'logger',"
					"       'standalone backend')"
					"   AND NOT (backend_type = 'taskorch worker' AND datname = pg_catalog.current_database())",
					true, 1) == SPI_OK_SELECT && SPI_processed == 1)
	{
		in_use = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		ours = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	}
	SPI_finish();
	if (ours + taskorch_workers_per_database > taskorch_max_workers)
		ereport(WARNING,
				errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				errmsg("taskorch's workers may not all start in database \"%s\"",
					   get_database_name(MyDatabaseId)),
				errdetail("taskorch.max_workers is %d; the workers of other databases take %d, and this database wants %d.",
						  taskorch_max_workers, ours, taskorch_workers_per_database),
				errhint("Raise taskorch.max_workers, or lower taskorch.workers_per_database; each database gets one worker before any gets more, and taskorch.database_workers shows what each has."));
	if (in_use + taskorch_workers_per_database > max_worker_processes)
		ereport(WARNING,
				errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				errmsg("taskorch's workers may not all start in database \"%s\"",
					   get_database_name(MyDatabaseId)),
				errdetail("max_worker_processes is %d; other background workers (taskorch's launcher and the workers of other databases among them) take %d, and this database wants %d.",
						  max_worker_processes, in_use, taskorch_workers_per_database),
				errhint("Raise max_worker_processes (a restart), or lower taskorch.workers_per_database; each database gets one worker before any gets more, and taskorch.database_workers shows what each has."));
	PG_RETURN_VOID();
}
