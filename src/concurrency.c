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
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/ipc.h"

static uint64 held_key = 0;		/* this process's slot, 0: none */
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
		free_slot->key = key;
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
		ok = true;
	}
	LWLockRelease(taskorch_shared->conc_lock);
	return ok;
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
	LWLockRelease(taskorch_shared->conc_lock);
	if (MySlot >= 0)
		taskorch_wake_peer(MyDatabaseId, MySlot);
}
