/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The launcher: one background worker per server that finds every
 *	  database with the extension and keeps that database's workers running.
 *
 * The launcher connects to no database; it reads the shared catalog
 * pg_database.  A database it has not seen is probed by starting its
 * worker 0, which checks for the extension and records the answer in the
 * database entry (DB_ACTIVE or DB_NO_EXTENSION).  CREATE EXTENSION wakes
 * the launcher at commit, so a database that gains the extension gets
 * workers at once; a dropped extension makes its workers exit.
 *
 * Database states, as the launcher drives them:
 *
 *	  UNKNOWN --start worker 0--> PROBING --extension--> ACTIVE
 *						  |						  \--none--> NO_EXTENSION
 *						  \--worker died--> UNKNOWN (after a pause)
 *	  ACTIVE --extension dropped--> NO_EXTENSION --CREATE EXTENSION--> UNKNOWN
 *
 * Only the launcher assigns slots and registers workers, so it alone holds
 * their BackgroundWorkerHandles (they are process-local).  A launcher that
 * restarts cannot recover them: it stops every worker it finds and starts
 * afresh.
 *
 * Locking: each pass of the loop decides under taskorch_shared->lock,
 * held exclusively and briefly (database entries, slot assignment), and
 * acts after releasing it: asking the postmaster about, stopping and
 * registering workers (which take BackgroundWorkerLock) and reporting
 * warnings happen with no taskorch lock held.  A slot is assigned under
 * the lock before its worker is registered; when registration fails, the
 * slot is given back under the lock again, if its generation is still
 * the one assigned.  The launcher never holds two locks at once.  Memory:
 * the loop allocates in loop_cxt, reset every pass; handles live in
 * TopMemoryContext.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include <signal.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/procarray.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#define RESCAN_MS			5000	/* look for new databases this often */
#define RESTART_DELAY_MS	1000	/* after a worker exits unexpectedly */
#define PROBE_RETRY_MS		5000	/* after a probe that did not answer */

static BackgroundWorkerHandle **handles;

/* the extra worker stopped for a starved database, until it has exited; -1: none */
static int	stopping_for_starved = -1;

/*
 * What a pass decided under the lock and does after releasing it: the
 * workers to stop and to start (slots already assigned), and a database
 * it could not track.
 */
typedef struct LauncherActions
{
	int			nstop;
	int		   *stop;			/* slot numbers */
	int			nstart;
	int		   *start;			/* slot numbers, assigned under the lock */
	Oid			untracked;		/* a database left out: no entry free */
} LauncherActions;

void
taskorch_register_launcher(void)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = 1;
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "taskorch");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "taskorch_launcher_main");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "taskorch launcher");
	snprintf(bgw.bgw_type, BGW_MAXLEN, "taskorch launcher");
	RegisterBackgroundWorker(&bgw);
}

/* A worker records what its probe found (called with the lock free). */
void
taskorch_database_state(Oid dboid, DbState state)
{
	LWLockAcquire(taskorch_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < taskorch_shared->ndbs; i++)
	{
		DbEntry    *db = &taskorch_shared->dbs[i];

		if (db->state == DB_FREE || db->dboid != dboid)
			continue;
		db->state = state;
		if (state == DB_NO_EXTENSION && db->reprobe)
			db->state = DB_UNKNOWN;
		db->reprobe = false;
	}
	LWLockRelease(taskorch_shared->lock);
	taskorch_wake_launcher();
}

/* Databases workers may connect to: not templates, connections allowed. */
static List *
list_databases(void)
{
	List	   *result = NIL;
	MemoryContext cxt = CurrentMemoryContext;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database d = (Form_pg_database) GETSTRUCT(tup);
		MemoryContext old;

		if (!d->datallowconn || d->datistemplate || database_is_invalid_form(d))
			continue;
		old = MemoryContextSwitchTo(cxt);
		result = lappend_oid(result, d->oid);
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	return result;
}

/*
 * Bring the entries in line with pg_database (lock held exclusively).  A
 * database no entry is left for is noted in act->untracked, for a warning
 * once the lock is released.
 */
static void
update_databases(List *dboids, LauncherActions *act)
{
	TaskorchShared *sh = taskorch_shared;
	ListCell   *lc;

	for (int i = 0; i < sh->ndbs; i++)
		sh->dbs[i].seen = false;
	foreach(lc, dboids)
	{
		Oid			dboid = lfirst_oid(lc);
		DbEntry    *free_entry = NULL;
		bool		found = false;

		for (int i = 0; i < sh->ndbs && !found; i++)
		{
			DbEntry    *db = &sh->dbs[i];

			if (db->state == DB_FREE)
			{
				if (free_entry == NULL)
					free_entry = db;
			}
			else if (db->dboid == dboid)
				found = db->seen = true;
		}
		if (found)
			continue;
		if (free_entry == NULL)
		{
			act->untracked = dboid;
			break;
		}
		memset(free_entry, 0, sizeof(DbEntry));
		free_entry->dboid = dboid;
		free_entry->state = DB_UNKNOWN;
		free_entry->seen = true;
	}
}

/* Workers this database should have now. */
static int
wanted_workers(DbEntry *db)
{
	if (!db->seen || db->paused_by != 0)
		return 0;
	if (db->state == DB_ACTIVE)
		return Min(taskorch_workers_per_database + db->extra, TASKORCH_MAX_WORKERS_PER_DATABASE);
	if (db->state == DB_PROBING)
		return 1;
	return 0;
}

/* Workers entry d should have now, under the server's ceiling (allowed: NULL, none) */
static int
allowed_workers(DbEntry *db, const int *allowed, int d)
{
	return allowed ? Min(wanted_workers(db), allowed[d]) : wanted_workers(db);
}

/*
 * Assign a free slot to worker `index` of db (lock held); false: none free,
 * or taskorch.max_workers are assigned already.
 */
static bool
assign_slot(DbEntry *db, int index, LauncherActions *act)
{
	TaskorchShared *sh = taskorch_shared;
	WorkerSlot *slot;
	int			slotno = -1;
	int			used = 0;

	for (int i = 0; i < sh->nslots; i++)
	{
		if (OidIsValid(sh->slots[i].dboid))
			used++;
		else if (slotno < 0)
			slotno = i;
	}
	if (slotno < 0 || used >= taskorch_max_workers)
		return false;			/* none free, or the server's ceiling reached */
	slot = &sh->slots[slotno];
	slot->dboid = db->dboid;
	slot->index = index;
	slot->generation++;
	slot->pid = 0;
	slot->latch = NULL;
	slot->idle = false;
	slot->slow_queue = 0;
	pg_atomic_write_u64(&slot->runs_executed, 0);
	pg_atomic_write_u64(&slot->runs_let_go, 0);
	act->start[act->nstart++] = slotno;
	return true;
}

/*
 * Register the worker of a slot assign_slot() gave it (lock not held).
 * When the postmaster has no background worker slot left, give the slot
 * back, delay the database's restarts, and warn.
 */
static void
start_worker(int slotno)
{
	TaskorchShared *sh = taskorch_shared;
	WorkerSlot *slot = &sh->slots[slotno];
	BackgroundWorker bgw;
	MemoryContext old;
	bool		registered;
	Oid			dboid;
	int			index;
	uint32		generation;

	/* only the launcher changes these three: read without the lock */
	dboid = slot->dboid;
	index = slot->index;
	generation = slot->generation;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "taskorch");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "taskorch_worker_main");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "taskorch worker %d for database %u",
			 index, dboid);
	snprintf(bgw.bgw_type, BGW_MAXLEN, "taskorch worker");
	bgw.bgw_main_arg = Int32GetDatum(slotno);
	memcpy(bgw.bgw_extra, &generation, sizeof(uint32));
	bgw.bgw_notify_pid = MyProcPid;

	old = MemoryContextSwitchTo(TopMemoryContext);	/* handles outlive the loop */
	registered = RegisterDynamicBackgroundWorker(&bgw, &handles[slotno]);
	MemoryContextSwitchTo(old);
	if (registered)
		return;

	handles[slotno] = NULL;
	LWLockAcquire(sh->lock, LW_EXCLUSIVE);
	if (slot->generation == generation)
		slot->dboid = InvalidOid;
	for (int d = 0; d < sh->ndbs; d++)
		if (sh->dbs[d].state != DB_FREE && sh->dbs[d].dboid == dboid)
		{
			sh->dbs[d].restart_after =
				TimestampTzPlusMilliseconds(GetCurrentTimestamp(), RESTART_DELAY_MS * 5);
			sh->dbs[d].starved |= index == 0;
			if (index >= taskorch_workers_per_database)
				sh->dbs[d].extra = index - taskorch_workers_per_database;
		}
	LWLockRelease(sh->lock);
	if (index > 0)
		return;					/* a database's extra workers wait for a slot quietly */
	ereport(WARNING,
			errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			errmsg("taskorch could not start worker %d for database %u: no background worker slot free",
				   index, dboid),
			errhint("Raise max_worker_processes or lower taskorch.workers_per_database."));
}

/*
 * Which of our workers have exited (lock not held: the handles are the
 * launcher's own, and a worker that exits after this is reaped next pass).
 */
static bool *
stopped_workers(void)
{
	bool	   *stopped = palloc0(sizeof(bool) * taskorch_shared->nslots);

	for (int i = 0; i < taskorch_shared->nslots; i++)
	{
		pid_t		pid;

		stopped[i] = handles[i] != NULL &&
			GetBackgroundWorkerPid(handles[i], &pid) == BGWH_STOPPED;
	}
	return stopped;
}

/*
 * Free the slots of workers that have exited; note unexpected exits so the
 * database's workers restart after a pause.  Lock held exclusively.
 */
static void
reap_workers(const bool *stopped)
{
	TaskorchShared *sh = taskorch_shared;
	TimestampTz now = GetCurrentTimestamp();

	for (int i = 0; i < sh->nslots; i++)
	{
		WorkerSlot *slot = &sh->slots[i];

		if (!OidIsValid(slot->dboid) || !stopped[i])
			continue;
		for (int d = 0; d < sh->ndbs; d++)
		{
			DbEntry    *db = &sh->dbs[d];

			if (db->state == DB_FREE || db->dboid != slot->dboid)
				continue;
			if (db->state == DB_PROBING)
			{
				db->state = DB_UNKNOWN;
				db->restart_after = TimestampTzPlusMilliseconds(now, PROBE_RETRY_MS);
			}
			else if (db->state == DB_ACTIVE && db->paused_by == 0 &&
					 slot->index < taskorch_workers_per_database)
				db->restart_after = TimestampTzPlusMilliseconds(now, RESTART_DELAY_MS);
		}
		if (i == stopping_for_starved)
		{
			/* its slot is free: the starved databases try again now */
			stopping_for_starved = -1;
			for (int d = 0; d < sh->ndbs; d++)
				if (sh->dbs[d].starved)
					sh->dbs[d].restart_after = 0;
		}
		pfree(handles[i]);
		handles[i] = NULL;
		slot->dboid = InvalidOid;
		slot->pid = 0;
		slot->latch = NULL;
		pg_atomic_write_u64(&slot->run_id, 0);
	}
}

/*
 * Stop the extra worker (index >= 1) of the database with the most
 * workers, for a starved database to have its slot: one at a time, and
 * the starved databases try again as soon as it has exited (lock held).
 */
static void
stop_an_extra_worker(LauncherActions *act)
{
	TaskorchShared *sh = taskorch_shared;
	int			victim = -1;
	int			victim_count = 1;

	if (stopping_for_starved >= 0)
		return;					/* the last one has not exited yet */
	for (int i = 0; i < sh->nslots; i++)
	{
		int			count = 0;

		if (!OidIsValid(sh->slots[i].dboid) || sh->slots[i].index == 0 || handles[i] == NULL)
			continue;
		for (int j = 0; j < sh->nslots; j++)
			count += sh->slots[j].dboid == sh->slots[i].dboid;
		if (count > victim_count ||
			(count == victim_count && victim >= 0 && sh->slots[i].index > sh->slots[victim].index))
			victim = i, victim_count = count;
	}
	if (victim < 0)
		return;					/* nothing to take: the starved wait for a slot */
	stopping_for_starved = victim;
	for (int k = 0; k < act->nstop; k++)
		if (act->stop[k] == victim)
			return;				/* already being stopped */
	act->stop[act->nstop++] = victim;
}

/* Workers all databases want now, above taskorch.max_workers or not (lock held) */
static int
wanted_total(void)
{
	TaskorchShared *sh = taskorch_shared;
	int			wanted = 0;

	for (int d = 0; d < sh->ndbs; d++)
		if (sh->dbs[d].state != DB_FREE)
			wanted += wanted_workers(&sh->dbs[d]);
	return wanted;
}

/*
 * The pools grow: a worker more for each ask of a busy worker
 * (DbEntry.demand), up to the database's ceiling and within what
 * taskorch.max_workers leaves, so that server_ceiling() never has to take
 * back a worker just started (lock held).
 */
static void
grow_pools(void)
{
	TaskorchShared *sh = taskorch_shared;
	int			room = taskorch_max_workers - wanted_total();

	for (int d = 0; d < sh->ndbs; d++)
	{
		DbEntry    *db = &sh->dbs[d];
		int			more = Min(Min((int) db->demand, room),
							   taskorch_max_workers_per_database - taskorch_workers_per_database - db->extra);

		db->demand = 0;
		if (db->state == DB_ACTIVE && more > 0)
		{
			db->extra += more;
			room -= more;
		}
	}
}

/*
 * How many workers each database may have under taskorch.max_workers: one
 * for each database first (in the order of the entries), then the others'
 * extra ones.  NULL when all that the databases want fits (lock held; in
 * the launcher's memory, for one reconcile).
 */
static int *
server_ceiling(void)
{
	TaskorchShared *sh = taskorch_shared;
	int		   *allowed;
	int			budget = taskorch_max_workers;

	if (wanted_total() <= budget)
		return NULL;
	allowed = palloc0(sizeof(int) * sh->ndbs);
	for (int pass = 0; pass < 2; pass++)
		for (int d = 0; d < sh->ndbs && budget > 0; d++)
		{
			int			want = sh->dbs[d].state == DB_FREE ? 0 : wanted_workers(&sh->dbs[d]);
			int			more = pass == 0 ? Min(want, 1) : Min(want - allowed[d], budget);

			if (pass == 1 && allowed[d] == 0)
				continue;		/* no first worker: no more */
			allowed[d] += more;
			budget -= more;
		}
	return allowed;
}

/*
 * Decide which workers to start and stop so each database has what it
 * wants; act[] is done once the lock is released.  Every database gets
 * its worker 0 before any gets more (two passes); while a database's
 * worker 0 finds no background worker slot (starved), no database starts
 * an extra worker, and each pass stops one extra worker of the database
 * that has the most, so that the slot it frees goes to the starved one.
 * Returns the milliseconds until a delayed restart is due (or RESCAN_MS).
 * Lock held exclusively.
 */
static long
reconcile(LauncherActions *act)
{
	TaskorchShared *sh = taskorch_shared;
	TimestampTz now = GetCurrentTimestamp();
	long		sleep_ms = RESCAN_MS;
	bool		someone_starved = false;
	bool		starved_waiting = false;	/* one tried and failed, and may try again */
	int		   *allowed;

	grow_pools();
	allowed = server_ceiling();

	for (int pass = 0; pass < 2; pass++)
		for (int d = 0; d < sh->ndbs; d++)
		{
			DbEntry    *db = &sh->dbs[d];
			bool		have[TASKORCH_MAX_WORKERS_PER_DATABASE];
			int			want;

			if (db->state == DB_FREE)
				continue;
			if (pass == 0)
			{
				if (db->paused_by != 0 && BackendPidGetProc(db->paused_by) == NULL)
					db->paused_by = 0;
				if (db->state == DB_UNKNOWN && db->seen && db->paused_by == 0 &&
					now >= db->restart_after)
					db->state = DB_PROBING;
			}
			want = allowed_workers(db, allowed, d);
			Assert(want <= lengthof(have));

			memset(have, 0, sizeof(have));
			for (int i = 0; i < sh->nslots; i++)
			{
				WorkerSlot *slot = &sh->slots[i];

				if (slot->dboid != db->dboid)
					continue;
				if (pass == 0 && slot->index >= want && handles[i] != NULL)
					act->stop[act->nstop++] = i;
				else if (slot->index < want)
					have[slot->index] = true;
			}
			if (pass == 0)
			{
				db->starved = (db->starved && want > 0 && !have[0]) ||
					(allowed && wanted_workers(db) > 0 && allowed[d] == 0);	/* past the server's ceiling */
				someone_starved |= db->starved;
				starved_waiting |= db->starved && now >= db->restart_after;
				if (taskorch_workers_per_database + db->extra > Max(taskorch_max_workers_per_database,
																	taskorch_workers_per_database))
					db->extra = Max(0, taskorch_max_workers_per_database - taskorch_workers_per_database);
				/*
				 * and to what taskorch.max_workers allows it: its last extra
				 * worker running is then the one that exits when idle, and
				 * the pool does not grow back, unasked, once the setting is
				 * raised again
				 */
				if (allowed && taskorch_workers_per_database + db->extra > allowed[d])
					db->extra = Max(0, allowed[d] - taskorch_workers_per_database);
			}
			if (want > 0 && now < db->restart_after)
			{
				sleep_ms = Min(sleep_ms,
							   TimestampDifferenceMilliseconds(now, db->restart_after) + 1);
				continue;
			}
			for (int index = pass; index < (pass == 0 ? Min(want, 1) : want); index++)
				if (!have[index] && (pass == 0 || !someone_starved) && !assign_slot(db, index, act))
				{
					db->starved |= index == 0;	/* others' extra workers make room */
					break;		/* no slot free */
				}

			/* forget databases that are gone once their workers are */
			if (pass == 1 && !db->seen)
			{
				bool		busy = false;

				for (int i = 0; i < sh->nslots; i++)
					busy |= sh->slots[i].dboid == db->dboid;
				if (!busy)
					db->state = DB_FREE;
			}
		}
	if (starved_waiting)
		stop_an_extra_worker(act);
	if (allowed)
		pfree(allowed);
	return sleep_ms;
}

/*
 * A restarted launcher has lost the handles of the workers it started:
 * stop them all and begin with empty slots.
 */
static void
reset_slots(void)
{
	TaskorchShared *sh = taskorch_shared;

	for (int tries = 0; tries < 300; tries++)
	{
		bool		running = false;

		LWLockAcquire(sh->lock, LW_EXCLUSIVE);
		for (int i = 0; i < sh->nslots; i++)
			if (sh->slots[i].pid != 0)
			{
				kill(sh->slots[i].pid, SIGTERM);
				running = true;
			}
		LWLockRelease(sh->lock);
		if (!running)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	LWLockAcquire(sh->lock, LW_EXCLUSIVE);
	for (int i = 0; i < sh->nslots; i++)
	{
		sh->slots[i].dboid = InvalidOid;
		sh->slots[i].generation++;
	}
	for (int d = 0; d < sh->ndbs; d++)
		sh->dbs[d].state = DB_FREE;
	sh->launcher_pid = MyProcPid;
	sh->launcher_latch = MyLatch;
	LWLockRelease(sh->lock);
}

static void
launcher_exit(int code, Datum arg)
{
	LWLockAcquire(taskorch_shared->lock, LW_EXCLUSIVE);
	taskorch_shared->launcher_latch = NULL;
	taskorch_shared->launcher_pid = 0;
	LWLockRelease(taskorch_shared->lock);
}

void
taskorch_launcher_main(Datum arg)
{
	MemoryContext loop_cxt;

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("taskorch launcher");

	handles = MemoryContextAllocZero(TopMemoryContext,
									 sizeof(BackgroundWorkerHandle *) *
									 taskorch_shared->nslots);
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "taskorch launcher loop",
									 ALLOCSET_DEFAULT_SIZES);
	before_shmem_exit(launcher_exit, (Datum) 0);
	reset_slots();

	for (;;)
	{
		List	   *dboids;
		bool	   *stopped;
		LauncherActions act;
		long		sleep_ms;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		MemoryContextSwitchTo(loop_cxt);
		dboids = list_databases();
		stopped = stopped_workers();
		memset(&act, 0, sizeof(act));
		act.stop = palloc(sizeof(int) * taskorch_shared->nslots);
		act.start = palloc(sizeof(int) * taskorch_shared->nslots);

		LWLockAcquire(taskorch_shared->lock, LW_EXCLUSIVE);
		update_databases(dboids, &act);
		reap_workers(stopped);
		sleep_ms = reconcile(&act);
		LWLockRelease(taskorch_shared->lock);

		/* the lock released: what the pass decided */
		if (OidIsValid(act.untracked))
			ereport(WARNING,
					errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					errmsg("taskorch cannot track database %u: all %d entries are in use",
						   act.untracked, taskorch_shared->ndbs),
					errhint("Raise taskorch.max_databases and restart the server."));
		for (int i = 0; i < act.nstop; i++)
			TerminateBackgroundWorker(handles[act.stop[i]]);
		for (int i = 0; i < act.nstart; i++)
			start_worker(act.start[i]);

		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(loop_cxt);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
