/*-------------------------------------------------------------------------
 *
 * concurrency.c
 *	  Queue concurrency limits: how many runs of a queue (or of one
 *	  concurrency key within it) execute at once.
 *
 * A run executes only while it holds a slot of its (queue, concurrency
 * key): acquired just before the task function is called, released just
 * after it returns.  The slots live in shared memory, one entry per
 * (database, queue, key) with runs executing now; since a process executes
 * one run at a time, there are never more entries in use than processes.
 * Acquire and release take conc_lock exclusively, so the count can never
 * pass the limit, whatever the number of workers.
 *
 * A run whose slot is taken is skipped by its batch: it stays QUEUED and
 * its row lock goes with the batch's commit.  The batch also stops
 * claiming the runs of that key (claim.c filters the keys it found full),
 * so a hot key does not fill the batch.  A released slot wakes a worker.
 *
 * A worker that exits (even by FATAL) releases the slot it holds; a crash
 * resets shared memory and with it every count.
 *
 * External runs (external.c) hold their slot from their claim to their
 * outcome, across transactions and sessions: the claim takes it at once
 * (concurrency_reserve; undone if the claiming transaction aborts), and
 * the transaction that moves the run out of EXECUTING gives it back when
 * it commits (concurrency_release_at_commit).  The run row says it holds
 * one (holds_slot), so after a restart, which empties shared memory, the
 * first claim or outcome in a database counts its committed EXECUTING
 * runs back into the slots (concurrency_counts_ready), serialized by a
 * lock that every claim takes until the counts are back.  Only keys of
 * limited queues hold slots, so the table (sized for every process plus
 * EXTERNAL_KEYS keys) fills only with that many limited keys in flight;
 * a claim that finds it full treats the key as full.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

static uint64 held_key = 0;		/* this process's slot, 0: none */
static bool held_last = false;	/* it was its key's last free slot */
static bool exit_hook_set = false;

/* The (queue, concurrency key) a run counts against, as a 64-bit hash. */
uint64
concurrency_key_hash(const char *queue, const char *ckey)
{
	uint64		h = hash_bytes_extended((const unsigned char *) queue, strlen(queue), MyDatabaseId);

	if (ckey)
		h = hash_combine64(h, hash_bytes_extended((const unsigned char *) ckey,
												  strlen(ckey), 0x6b6579));
	return h == 0 ? 1 : h;
}

static ConcurrencySlot *
find_slot(uint64 key, bool create)
{
	ConcurrencySlot *free_slot = NULL;

	for (int i = 0; i < taskorch_shared->nconc; i++)
	{
		ConcurrencySlot *c = &taskorch_shared->conc[i];

		if (c->active > 0 && c->key == key)
			return c;
		if (c->active == 0 && free_slot == NULL)
			free_slot = c;
	}
	if (create && free_slot)
	{
		free_slot->key = key;
		free_slot->dboid = MyDatabaseId;
	}
	return create ? free_slot : NULL;
}

static void
release_at_exit(int code, Datum arg)
{
	concurrency_release();
}

/*
 * Take a slot of `key` if fewer than `limit` runs hold one.  Returns false
 * when the key is full.
 */
bool
concurrency_acquire(uint64 key, int limit)
{
	ConcurrencySlot *c;
	bool		ok = false;

	Assert(held_key == 0);
	if (!exit_hook_set)
	{
		before_shmem_exit(release_at_exit, (Datum) 0);
		exit_hook_set = true;
	}
	LWLockAcquire(taskorch_shared->conc_lock, LW_EXCLUSIVE);
	c = find_slot(key, true);
	if (c && c->active < limit)
	{
		c->active++;
		held_key = key;
		held_last = c->active >= limit;
		ok = true;
	}
	LWLockRelease(taskorch_shared->conc_lock);
	return ok;
}

/*
 * Did this process take its key's last free slot?  The runs of the key
 * behind its run then wait for a slot, not for a worker (the pool does not
 * grow for them, worker.c).
 */
bool
concurrency_held_last(void)
{
	return held_key != 0 && held_last;
}

/* Give the held slot back, if any, and wake a worker that may want it. */
void
concurrency_release(void)
{
	ConcurrencySlot *c;

	if (held_key == 0 || taskorch_shared == NULL)
		return;
	LWLockAcquire(taskorch_shared->conc_lock, LW_EXCLUSIVE);
	c = find_slot(held_key, false);
	if (c)
		c->active--;
	held_key = 0;
	held_last = false;
	LWLockRelease(taskorch_shared->conc_lock);
	if (MySlot >= 0)
		taskorch_wake_peer(MyDatabaseId, MySlot, WAKE_ANY, 0);
}

/* ---------------------------------------------------------------------
 * Slots held by external runs, across transactions
 * ---------------------------------------------------------------------
 */

/* A slot this transaction took (undone at abort) or gave back (at commit) */
typedef struct SlotChange
{
	uint64		key;
	int			nest_level;		/* of the (sub)transaction that made it */
	bool		reserved;		/* true: taken; false: to give back */
} SlotChange;

static List *slot_changes = NIL;	/* in TopTransactionContext */
static bool slot_callbacks_set = false;

/* Add n (may be negative) to the key's count, under conc_lock. */
static void
slot_add(uint64 key, int n)
{
	ConcurrencySlot *c;

	LWLockAcquire(taskorch_shared->conc_lock, LW_EXCLUSIVE);
	c = find_slot(key, n > 0);
	if (c)
		c->active = Max(c->active + n, 0);
	LWLockRelease(taskorch_shared->conc_lock);
}

static void
slot_xact_callback(XactEvent event, void *arg)
{
	ListCell   *lc;
	bool		released = false;

	if (slot_changes == NIL)
		return;
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_PARALLEL_COMMIT &&
		event != XACT_EVENT_ABORT && event != XACT_EVENT_PARALLEL_ABORT)
		return;
	foreach(lc, slot_changes)
	{
		SlotChange *c = lfirst(lc);
		bool		commit = event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT;

		if (c->reserved && !commit)
			slot_add(c->key, -1);	/* the claim did not happen */
		else if (!c->reserved && commit)
		{
			slot_add(c->key, -1);	/* the run left EXECUTING */
			released = true;
		}
	}
	slot_changes = NIL;			/* its memory goes with the transaction */
	if (released)
		taskorch_wake_database(MyDatabaseId);
}

/* A subtransaction that aborts takes its changes with it. */
static void
slot_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	List	   *kept = NIL;
	ListCell   *lc;

	if (event != SUBXACT_EVENT_ABORT_SUB || slot_changes == NIL)
		return;
	foreach(lc, slot_changes)
	{
		SlotChange *c = lfirst(lc);

		if (c->nest_level < level)
			kept = lappend(kept, c);
		else if (c->reserved)
			slot_add(c->key, -1);
	}
	slot_changes = kept;
}

static void
slot_change(uint64 key, bool reserved)
{
	MemoryContext old;
	SlotChange *c;

	if (!slot_callbacks_set)
	{
		RegisterXactCallback(slot_xact_callback, NULL);
		RegisterSubXactCallback(slot_subxact_callback, NULL);
		slot_callbacks_set = true;
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	c = palloc(sizeof(SlotChange));
	c->key = key;
	c->nest_level = GetCurrentTransactionNestLevel();
	c->reserved = reserved;
	slot_changes = lappend(slot_changes, c);
	MemoryContextSwitchTo(old);
}

/* Has this database's count of external runs been rebuilt since shared memory was? */
static bool
counts_ready(void)
{
	bool		ready = false;

	LWLockAcquire(taskorch_shared->conc_lock, LW_SHARED);
	for (int i = 0; i < taskorch_shared->ndbs && !ready; i++)
		ready = taskorch_shared->conc_counted[i] == MyDatabaseId;
	LWLockRelease(taskorch_shared->conc_lock);
	return ready;
}

typedef struct HeldRow
{
	PlanValue	queue;
	PlanValue	concurrency_key;
	PlanValue	n;
} HeldRow;

static const PlanField held_columns[] = {
	PLAN_COLUMN(HeldRow, queue),
	PLAN_COLUMN(HeldRow, concurrency_key),
	PLAN_COLUMN(HeldRow, n),
};
/* the slots the committed external runs hold */
static NamedPlan held_plan = {
	.sql = "SELECT queue, concurrency_key, count(*)::int4 AS n FROM taskorch.run"
	" WHERE status = " SQL_STATUS(EXECUTING) " AND holds_slot"
	" GROUP BY queue, concurrency_key",
	PLAN_COLUMNS(held_columns), .shape = PLAN_KEY_LOOKUPS
};

/*
 * Before a claim or an outcome of an external run: after a restart (shared
 * memory is new), count the slots the committed EXECUTING runs hold, once
 * per database.  Until that is done every caller takes the same lock (to
 * the end of its transaction), so no claim is made beside the counting.
 */
void
concurrency_counts_ready(void)
{
	int			n;

	bool		room = false;

	if (counts_ready())
		return;
	lock_name(LOCK_SLOT_COUNTS, "", 0);
	if (counts_ready())
		return;
	LWLockAcquire(taskorch_shared->conc_lock, LW_SHARED);
	for (int i = 0; i < taskorch_shared->ndbs && !room; i++)
		room = !OidIsValid(taskorch_shared->conc_counted[i]);
	LWLockRelease(taskorch_shared->conc_lock);
	if (!room)
		ereport(ERROR,
				errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				errmsg("more databases use external tasks than taskorch.max_databases (%d)",
					   taskorch_shared->ndbs),
				errhint("Raise taskorch.max_databases and restart the server."));
	SPI_connect();
	n = taskorch_execute_args_latest(&held_plan, NULL, 0);
	for (int i = 0; i < n; i++)
	{
		HeldRow		row;
		char	   *queue;
		char	   *ckey;

		taskorch_read_row(&held_plan, i, &row);
		queue = pv_cstring(row.queue);
		ckey = pv_cstring(row.concurrency_key);
		for (int k = DatumGetInt32(row.n.datum); k > 0; k--)
			slot_add(concurrency_key_hash(queue, ckey), 1);
	}
	SPI_finish();
	LWLockAcquire(taskorch_shared->conc_lock, LW_EXCLUSIVE);
	for (int i = 0; i < taskorch_shared->ndbs; i++)
		if (!OidIsValid(taskorch_shared->conc_counted[i]))
		{
			taskorch_shared->conc_counted[i] = MyDatabaseId;
			break;
		}
	LWLockRelease(taskorch_shared->conc_lock);
}

/*
 * An external claim takes a slot of `key` if fewer than `limit` runs hold
 * one (false: the key is full, or the table is); it is given back if the
 * claim's transaction aborts.
 */
bool
concurrency_reserve(uint64 key, int limit)
{
	ConcurrencySlot *c;
	bool		ok = false;

	LWLockAcquire(taskorch_shared->conc_lock, LW_EXCLUSIVE);
	c = find_slot(key, true);
	if (c && c->active < limit)
	{
		c->active++;
		ok = true;
	}
	LWLockRelease(taskorch_shared->conc_lock);
	if (ok)
		slot_change(key, true);
	return ok;
}

/* An external run leaves EXECUTING: its slot is given back at commit. */
void
concurrency_release_at_commit(uint64 key)
{
	slot_change(key, false);
}

/*
 * The extension is dropped from database `dboid`: forget its slots and
 * its counts (its runs are gone).
 */
void
concurrency_forget_database(Oid dboid)
{
	LWLockAcquire(taskorch_shared->conc_lock, LW_EXCLUSIVE);
	for (int i = 0; i < taskorch_shared->nconc; i++)
		if (taskorch_shared->conc[i].dboid == dboid)
			taskorch_shared->conc[i].active = 0;
	for (int i = 0; i < taskorch_shared->ndbs; i++)
		if (taskorch_shared->conc_counted[i] == dboid)
			taskorch_shared->conc_counted[i] = InvalidOid;
	LWLockRelease(taskorch_shared->conc_lock);
}
