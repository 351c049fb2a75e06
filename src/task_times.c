/*-------------------------------------------------------------------------
 *
 * task_times.c
 *	  How long a task's runs take: a running average per (database, task)
 *	  in shared memory, which the batch driver reads to decide whether a
 *	  run may share its batch (worker.c).
 *
 * A table of TASK_TIMES entries, open addressing over a short probe; an
 * entry is a key (a hash of the database and the task id, never 0) and
 * the average in microseconds plus one (0: no measurement).  Lock-free:
 * a writer claims an empty entry with compare-and-swap and updates the
 * average with a plain write; racing writers lose an update, and a
 * reader may see a stale or (after an eviction) another task's figure.
 * Either only changes how a batch is cut, never what runs or how.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/shmem.h"

#define TASK_TIMES 4096			/* a power of two */
#define PROBE 8

typedef struct TaskTime
{
	pg_atomic_uint64 key;
	pg_atomic_uint64 us_plus_1;
} TaskTime;

static TaskTime *times = NULL;

Size
task_times_shmem_size(void)
{
	return mul_size(TASK_TIMES, sizeof(TaskTime));
}

void
task_times_shmem_startup(void)
{
	bool		found;

	times = ShmemInitStruct("taskorch task times", task_times_shmem_size(), &found);
	if (!found)
		for (int i = 0; i < TASK_TIMES; i++)
		{
			pg_atomic_init_u64(&times[i].key, 0);
			pg_atomic_init_u64(&times[i].us_plus_1, 0);
		}
}

static uint64
time_key(const char *task)
{
	return hash_bytes_extended((const unsigned char *) task, strlen(task), MyDatabaseId) | 1;
}

/* The average microseconds of the task's runs in this database; -1: unknown. */
int64
task_time_us(const char *task)
{
	uint64		key = time_key(task);

	if (times == NULL)
		return -1;
	for (int p = 0; p < PROBE; p++)
	{
		TaskTime   *e = &times[(key + p) & (TASK_TIMES - 1)];
		uint64		k = pg_atomic_read_u64(&e->key);

		if (k == key)
			return (int64) pg_atomic_read_u64(&e->us_plus_1) - 1;
		if (k == 0)
			break;
	}
	return -1;
}

/* A run of the task took `us` microseconds: move its average (weight 0.3). */
void
task_time_note(const char *task, int64 us)
{
	uint64		key = time_key(task);
	TaskTime   *e = NULL;

	if (times == NULL)
		return;
	for (int p = 0; p < PROBE && e == NULL; p++)
	{
		TaskTime   *c = &times[(key + p) & (TASK_TIMES - 1)];
		uint64		expected = 0;

		if (pg_atomic_read_u64(&c->key) == key ||
			pg_atomic_compare_exchange_u64(&c->key, &expected, key))
			e = c;
	}
	if (e == NULL)
	{
		/* the probe is full: this task takes the first entry of it */
		e = &times[key & (TASK_TIMES - 1)];
		pg_atomic_write_u64(&e->us_plus_1, 0);
		pg_atomic_write_u64(&e->key, key);
	}
	{
		uint64		old = pg_atomic_read_u64(&e->us_plus_1);
		uint64		avg = old == 0 ? (uint64) us : ((old - 1) * 7 + (uint64) us * 3) / 10;

		pg_atomic_write_u64(&e->us_plus_1, avg + 1);
	}
}
