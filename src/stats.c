/*-------------------------------------------------------------------------
 *
 * stats.c
 *	  taskorch.stats: how the engine is doing, per database, task and
 *	  queue, kept in shared memory so that polling it costs nothing.
 *
 * An entry per (database, task, queue) holds:
 *	- the runs now DELAYED, QUEUED, EXECUTING and WAITING, those due and
 *	  not started, and the time the oldest of them became due: counted by
 *	  a worker of the database at most once a second, and spending at most
 *	  a tenth of the time counting (stats_count, in its maintenance),
 *	  through the partial indexes of the unfinished statuses: the cost
 *	  follows the backlog, never the finished history;
 *	- what ended, as the transactions that record outcomes commit
 *	  (stats_note, from complete.c: a worker's batches, external workers'
 *	  outcomes, lost leases): runs completed and failed since the last
 *	  reset, and, over the last minute in STATS_SLICES slices, the runs
 *	  completed and failed and histograms (quarters of powers of two of
 *	  microseconds) of each attempt's queue wait (from its place in the
 *	  queue, run_at, to its start) and execution time, from which the
 *	  percentiles are read, to within a fifth.
 *
 * Runs that end without an attempt complete.c records (canceled, expired
 * in the queue, a crash's charge, a system failure) are noted by their
 * writers (stats_note_end), without times.
 * Entries are taken first come; when the table is full, the rest are
 * counted under task "(other)".  stats_reset() clears a database's
 * totals and minute.  One LWLock guards the table; the outcomes of a
 * transaction are applied under it once, at commit.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(taskorch_stats);
PG_FUNCTION_INFO_V1(taskorch_stats_reset);

#define STATS_ENTRIES	512
#define STATS_SLICES	6			/* the last minute ... */
#define STATS_SLICE_MS	10000		/* ... in slices of 10 s */
#define STATS_OCTAVES	28			/* powers of two of microseconds: up to 4.5 min */
#define STATS_SUB		4			/* each cut in 4: a quantile within 19% */
#define STATS_HIST		(STATS_OCTAVES * STATS_SUB)
#define COUNT_EVERY_MS	1000
#define OTHER			"(other)"

typedef struct StatsSlice
{
	int64		slice;			/* which slice of time it holds (ms / STATS_SLICE_MS) */
	uint32		completed;
	uint32		failed;
	uint32		wait[STATS_HIST];
	uint32		exec[STATS_HIST];
} StatsSlice;

typedef struct StatsEntry
{
	Oid			dboid;			/* InvalidOid: free */
	char		task[NAMEDATALEN * 3];
	char		queue[NAMEDATALEN * 3];
	/* now, as last counted */
	int32		delayed;
	int32		queued;
	int32		executing;
	int32		waiting;
	int32		due;
	TimestampTz oldest_due;		/* 0: none due */
	/* since the reset */
	int64		completed_total;
	int64		failed_total;	/* failed for good: FAILED, TIMED_OUT, CRASHED, SYSTEM_FAILURE */
	int64		canceled_total;
	int64		expired_total;
	StatsSlice	slices[STATS_SLICES];
} StatsEntry;

typedef struct StatsShared
{
	LWLock	   *lock;
	StatsEntry	entries[STATS_ENTRIES];
} StatsShared;

typedef struct StatsDb
{
	Oid			dboid;
	TimestampTz count_due;		/* the next count, not before */
	TimestampTz reset_at;
} StatsDb;

static StatsShared *stats = NULL;
static StatsDb *stats_dbs = NULL;	/* taskorch_max_databases of them */

Size
stats_shmem_size(void)
{
	return add_size(sizeof(StatsShared), mul_size(taskorch_max_databases, sizeof(StatsDb)));
}

void
stats_shmem_startup(void)
{
	bool		found;

	stats = ShmemInitStruct("taskorch stats", stats_shmem_size(), &found);
	stats_dbs = (StatsDb *) ((char *) stats + sizeof(StatsShared));
	if (!found)
	{
		memset(stats, 0, stats_shmem_size());
		stats->lock = &(GetNamedLWLockTranche("taskorch"))[2].lock;
	}
}

/* The entry of (this database, task, queue), made if need be (lock held exclusively) */
static StatsEntry *
entry_for(const char *task, const char *queue, bool create)
{
	StatsEntry *free_entry = NULL;

	for (int i = 0; i < STATS_ENTRIES; i++)
	{
		StatsEntry *e = &stats->entries[i];

		if (e->dboid == MyDatabaseId && strcmp(e->task, task) == 0 && strcmp(e->queue, queue) == 0)
			return e;
		if (!OidIsValid(e->dboid) && free_entry == NULL)
			free_entry = e;
	}
	if (!create)
		return NULL;
	if (free_entry == NULL)
		return strcmp(task, OTHER) == 0 ? NULL : entry_for(OTHER, "", true);
	memset(free_entry, 0, sizeof(StatsEntry));
	free_entry->dboid = MyDatabaseId;
	strlcpy(free_entry->task, task, sizeof(free_entry->task));
	strlcpy(free_entry->queue, queue, sizeof(free_entry->queue));
	return free_entry;
}

/* This database's clock entry (lock held exclusively), or NULL when full */
static StatsDb *
db_for(bool create)
{
	StatsDb    *free_db = NULL;

	for (int i = 0; i < taskorch_max_databases; i++)
	{
		if (stats_dbs[i].dboid == MyDatabaseId)
			return &stats_dbs[i];
		if (!OidIsValid(stats_dbs[i].dboid) && free_db == NULL)
			free_db = &stats_dbs[i];
	}
	if (create && free_db)
	{
		free_db->dboid = MyDatabaseId;
		free_db->count_due = 0;
		free_db->reset_at = GetCurrentTimestamp();
	}
	return create ? free_db : NULL;
}

/* The histogram bucket of a time: its power of two, and the quarter of it */
static int
bucket(int64 us)
{
	int			octave = 0;

	if (us < 1)
		us = 1;
	while ((us >> octave) > 1 && octave < STATS_OCTAVES - 1)
		octave++;
	/* the two bits below the leading one say which quarter */
	return octave * STATS_SUB +
		(octave >= 2 ? (int) ((us >> (octave - 2)) & 3) : 0);
}

/* The middle of bucket b, in microseconds */
static double
bucket_middle(int b)
{
	int			octave = b / STATS_SUB;
	double		low = ldexp(1.0, octave) * (1.0 + (b % STATS_SUB) / (double) STATS_SUB);

	return low * (1.0 + 0.5 / STATS_SUB);
}

/* The slice of `e` for time `ms` (ms since the epoch of TimestampTz), cleared if stale */
static StatsSlice *
slice_for(StatsEntry *e, int64 ms)
{
	int64		n = ms / STATS_SLICE_MS;
	StatsSlice *s = &e->slices[n % STATS_SLICES];

	if (s->slice != n)
	{
		memset(s, 0, sizeof(StatsSlice));
		s->slice = n;
	}
	return s;
}

/* ---------------------------------------------------------------------
 * Outcomes, applied at commit
 * ---------------------------------------------------------------------
 */

typedef struct NotedOutcome
{
	char	   *task;
	char	   *queue;
	RunStatus	status;			/* what the run became */
	int64		wait_us;		/* -1: not known (or no attempt) */
	int64		exec_us;		/* -1: no attempt */
} NotedOutcome;

static List *noted = NIL;		/* in TopTransactionContext */
static bool callback_set = false;

static void
stats_xact_callback(XactEvent event, void *arg)
{
	ListCell   *lc;
	int64		now_ms;

	if (noted == NIL)
		return;
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_PARALLEL_COMMIT)
	{
		if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
			noted = NIL;
		return;
	}
	now_ms = GetCurrentTimestamp() / 1000;
	LWLockAcquire(stats->lock, LW_EXCLUSIVE);
	foreach(lc, noted)
	{
		NotedOutcome *o = lfirst(lc);
		StatsEntry *e = entry_for(o->task, o->queue, true);
		StatsSlice *s;

		if (e == NULL)
			continue;
		{
		bool		completed = o->status == RUN_COMPLETED;
		bool		failed = (RUN_SET_FAILED & ((uint32) 1 << o->status)) != 0;

		s = slice_for(e, now_ms);
		e->completed_total += completed;
		e->failed_total += failed;
		e->canceled_total += o->status == RUN_CANCELED;
		e->expired_total += o->status == RUN_EXPIRED;
		s->completed += completed;
		s->failed += failed;
		if (o->wait_us >= 0)
			s->wait[bucket(o->wait_us)]++;
		if (o->exec_us >= 0)
			s->exec[bucket(o->exec_us)]++;
		}
	}
	LWLockRelease(stats->lock);
	noted = NIL;
}

/* Stage an outcome, counted when the transaction commits */
static void
note(const char *task, const char *queue, RunStatus status, int64 wait_us, int64 exec_us)
{
	MemoryContext old;
	NotedOutcome *o;

	if (stats == NULL)
		return;
	if (!callback_set)
	{
		RegisterXactCallback(stats_xact_callback, NULL);
		callback_set = true;
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	o = palloc(sizeof(NotedOutcome));
	o->task = pstrdup(task);
	o->queue = pstrdup(queue ? queue : "");
	o->status = status;
	o->wait_us = wait_us;
	o->exec_us = exec_us;
	noted = lappend(noted, o);
	MemoryContextSwitchTo(old);
}

/*
 * The outcomes of runs[0..n) are being recorded (complete.c): count them,
 * with their attempt's wait and execution, when the transaction commits.
 */
void
stats_note(const ClaimedRun *runs, int n)
{
	for (int i = 0; i < n; i++)
	{
		const ClaimedRun *r = &runs[i];

		if (r->skipped || r->started_at == 0 || r->expired)
		{
			if (r->expired)
				note(r->task_id, r->queue, RUN_EXPIRED, -1, -1);
			continue;			/* nothing executed */
		}
		note(r->task_id, r->queue, r->status,
			 r->run_at != 0 && r->started_at >= r->run_at ? r->started_at - r->run_at : -1,
			 Max(r->finished_at - r->started_at, 0));
	}
}

/*
 * A run of `task` in `queue` ended `status` without an attempt that
 * complete.c recorded (canceled, expired in the queue, charged by a crash,
 * a system failure): count it when the transaction commits.
 */
void
stats_note_end(const char *task, const char *queue, RunStatus status)
{
	note(task, queue, status, -1, -1);
}

/* ---------------------------------------------------------------------
 * Counting what waits
 * ---------------------------------------------------------------------
 */

typedef struct CountArgs
{
	PlanValue	now;
} CountArgs;

typedef struct CountRow
{
	PlanValue	task_id;
	PlanValue	queue;
	PlanValue	delayed;
	PlanValue	queued;
	PlanValue	executing;
	PlanValue	waiting;
	PlanValue	due;
	PlanValue	oldest_due;
} CountRow;

static const PlanField count_params[] = {
	PLAN_PARAM(CountArgs, now, TIMESTAMPTZOID),
};
static const PlanField count_columns[] = {
	PLAN_COLUMN(CountRow, task_id),
	PLAN_COLUMN(CountRow, queue),
	PLAN_COLUMN(CountRow, delayed),
	PLAN_COLUMN(CountRow, queued),
	PLAN_COLUMN(CountRow, executing),
	PLAN_COLUMN(CountRow, waiting),
	PLAN_COLUMN(CountRow, due),
	PLAN_COLUMN(CountRow, oldest_due),
};
/*
 * the unfinished runs, through the partial index of each unfinished status
 * (an arm per index, its predicate as the index's): never the finished ones
 */
#define COUNT_ARM(cond) " SELECT task_id, queue, status, run_at FROM taskorch.run WHERE " cond
static NamedPlan count_plan = {
	.sql = "SELECT task_id, queue,"
	"       count(*) FILTER (WHERE status = " SQL_STATUS(DELAYED) ")::int4 AS delayed,"
	"       count(*) FILTER (WHERE status = " SQL_STATUS(QUEUED) ")::int4 AS queued,"
	"       count(*) FILTER (WHERE status = " SQL_STATUS(EXECUTING) ")::int4 AS executing,"
	"       count(*) FILTER (WHERE status = " SQL_STATUS(WAITING) ")::int4 AS waiting,"
	"       count(*) FILTER (WHERE status = " SQL_STATUS(QUEUED) " AND run_at <= :now)::int4 AS due,"
	"       min(run_at) FILTER (WHERE status = " SQL_STATUS(QUEUED) " AND run_at <= :now) AS oldest_due"
	"  FROM (" COUNT_ARM("status = " SQL_STATUS(QUEUED) " AND NOT external")	/* run_queue_idx */
	"        UNION ALL" COUNT_ARM("status = " SQL_STATUS(QUEUED) " AND external")	/* run_external_idx */
	"        UNION ALL" COUNT_ARM("status = " SQL_STATUS(DELAYED))	/* run_delayed_idx */
	"        UNION ALL" COUNT_ARM("status = " SQL_STATUS(EXECUTING))	/* run_lease_idx */
	"        UNION ALL" COUNT_ARM("status = " SQL_STATUS(WAITING)) ") r"	/* run_waiting_idx */
	" GROUP BY task_id, queue",
	PLAN_PARAMS(count_params), PLAN_COLUMNS(count_columns), .shape = PLAN_KEY_LOOKUPS
};

/*
 * A worker's maintenance: count this database's unfinished runs into the
 * table, at most every COUNT_EVERY_MS (whichever worker comes first).
 * Runs a worker executes now are QUEUED in the table: they count as
 * executing through shared memory instead (taskorch_executing_runs).
 */
void
stats_count(void)
{
	TimestampTz now = GetCurrentTimestamp();
	StatsDb    *db;
	CountArgs	args = {pv_timestamptz(now)};
	int			n;

	if (stats == NULL)
		return;
	LWLockAcquire(stats->lock, LW_EXCLUSIVE);
	db = db_for(true);
	if (db == NULL || now < db->count_due)
	{
		LWLockRelease(stats->lock);
		return;
	}
	/* the other workers need not count too */
	db->count_due = TimestampTzPlusMilliseconds(now, COUNT_EVERY_MS);
	LWLockRelease(stats->lock);

	SPI_connect();
	n = taskorch_execute_args(&count_plan, &args, true, 0);
	LWLockAcquire(stats->lock, LW_EXCLUSIVE);
	for (int i = 0; i < STATS_ENTRIES; i++)
	{
		StatsEntry *e = &stats->entries[i];

		if (e->dboid != MyDatabaseId)
			continue;
		e->delayed = e->queued = e->executing = e->waiting = e->due = 0;
		e->oldest_due = 0;
	}
	for (int i = 0; i < n; i++)
	{
		CountRow	row;
		StatsEntry *e;

		taskorch_read_row(&count_plan, i, &row);
		e = entry_for(TextDatumGetCString(row.task_id.datum), TextDatumGetCString(row.queue.datum), true);
		if (e == NULL)
			continue;
		e->delayed += DatumGetInt32(row.delayed.datum);
		e->queued += DatumGetInt32(row.queued.datum);
		e->executing += DatumGetInt32(row.executing.datum);
		e->waiting += DatumGetInt32(row.waiting.datum);
		e->due += DatumGetInt32(row.due.datum);
		if (row.oldest_due.present &&
			(e->oldest_due == 0 || DatumGetTimestampTz(row.oldest_due.datum) < e->oldest_due))
			e->oldest_due = DatumGetTimestampTz(row.oldest_due.datum);
	}
	/* a count that took long (a deep backlog) comes less often: at most a tenth of the time */
	if ((db = db_for(false)) != NULL)
		db->count_due = Max(db->count_due,
							TimestampTzPlusMilliseconds(now, 10 * (GetCurrentTimestamp() - now) / 1000));
	LWLockRelease(stats->lock);
	SPI_finish();
}

/* ---------------------------------------------------------------------
 * SQL
 * ---------------------------------------------------------------------
 */

/* A row of taskorch_stats(): an entry, or the sum of several */
typedef struct StatsSum
{
	int64		delayed, queued, executing, waiting, due;
	TimestampTz oldest_due;
	int64		completed_total, failed_total, canceled_total, expired_total;
	int64		completed_minute, failed_minute;
	int64		wait[STATS_HIST], exec[STATS_HIST];
} StatsSum;

static void
add_entry(StatsSum *sum, const StatsEntry *e, int64 now_ms)
{
	int64		current = now_ms / STATS_SLICE_MS;

	sum->delayed += e->delayed;
	sum->queued += e->queued;
	sum->executing += e->executing;
	sum->waiting += e->waiting;
	sum->due += e->due;
	if (e->oldest_due != 0 && (sum->oldest_due == 0 || e->oldest_due < sum->oldest_due))
		sum->oldest_due = e->oldest_due;
	sum->completed_total += e->completed_total;
	sum->failed_total += e->failed_total;
	sum->canceled_total += e->canceled_total;
	sum->expired_total += e->expired_total;
	for (int s = 0; s < STATS_SLICES; s++)
	{
		const StatsSlice *sl = &e->slices[s];

		if (sl->slice <= current - STATS_SLICES || sl->slice > current)
			continue;			/* older than the minute */
		sum->completed_minute += sl->completed;
		sum->failed_minute += sl->failed;
		for (int b = 0; b < STATS_HIST; b++)
		{
			sum->wait[b] += sl->wait[b];
			sum->exec[b] += sl->exec[b];
		}
	}
}

/* The q-quantile of a histogram, in milliseconds (its bucket's middle); false when empty */
static bool
quantile_ms(const int64 *hist, double q, double *ms)
{
	int64		total = 0;
	int64		seen = 0;

	for (int b = 0; b < STATS_HIST; b++)
		total += hist[b];
	if (total == 0)
		return false;
	for (int b = 0; b < STATS_HIST; b++)
	{
		seen += hist[b];
		if (seen >= q * total)
		{
			*ms = round(bucket_middle(b) / 10.0) / 100.0;	/* ms, 2 decimals */
			return true;
		}
	}
	return false;
}

#define STATS_COLUMNS 18

static void
put_row(ReturnSetInfo *rsinfo, const char *scope, const char *name, const StatsSum *s,
		TimestampTz now, double minute_s)
{
	Datum		values[STATS_COLUMNS];
	bool		nulls[STATS_COLUMNS] = {0};
	double		ms;
	int			c = 0;

	values[c++] = CStringGetTextDatum(scope);
	if (name)
		values[c++] = CStringGetTextDatum(name);
	else
		nulls[c++] = true;
	values[c++] = Int64GetDatum(s->delayed);
	values[c++] = Int64GetDatum(s->queued);
	values[c++] = Int64GetDatum(s->executing);
	values[c++] = Int64GetDatum(s->waiting);
	values[c++] = Int64GetDatum(s->due);
	if (s->oldest_due != 0)
		values[c++] = Float8GetDatum(round((double) (now - s->oldest_due) / 10000.0) / 100.0);
	else
		nulls[c++] = true;
	values[c++] = Float8GetDatum(round(s->completed_minute / minute_s * 100) / 100);
	values[c++] = Float8GetDatum(round(s->failed_minute / minute_s * 100) / 100);
	nulls[c] = !quantile_ms(s->wait, 0.5, &ms);
	values[c++] = Float8GetDatum(ms);
	nulls[c] = !quantile_ms(s->wait, 0.95, &ms);
	values[c++] = Float8GetDatum(ms);
	nulls[c] = !quantile_ms(s->exec, 0.5, &ms);
	values[c++] = Float8GetDatum(ms);
	nulls[c] = !quantile_ms(s->exec, 0.95, &ms);
	values[c++] = Float8GetDatum(ms);
	values[c++] = Int64GetDatum(s->completed_total);
	values[c++] = Int64GetDatum(s->failed_total);
	values[c++] = Int64GetDatum(s->canceled_total);
	values[c++] = Int64GetDatum(s->expired_total);
	Assert(c == STATS_COLUMNS);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * SQL: taskorch_internal.stats() -> a row per task, per queue, and one for
 * the database (scope, name, ...), from shared memory.
 */
Datum
taskorch_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz now = GetCurrentTimestamp();
	int64		now_ms = now / 1000;
	StatsEntry *copy = palloc(sizeof(StatsEntry) * STATS_ENTRIES);
	int			n = 0;
	StatsSum	total = {0};
	double		minute_s;
	TimestampTz since = now - (int64) STATS_SLICES * STATS_SLICE_MS * 1000;

	InitMaterializedSRF(fcinfo, 0);
	if (stats == NULL)
		return (Datum) 0;
	LWLockAcquire(stats->lock, LW_SHARED);
	for (int i = 0; i < STATS_ENTRIES; i++)
		if (stats->entries[i].dboid == MyDatabaseId)
			copy[n++] = stats->entries[i];
	{
		StatsDb    *db = NULL;

		for (int i = 0; i < taskorch_max_databases; i++)
			if (stats_dbs[i].dboid == MyDatabaseId)
				db = &stats_dbs[i];
		if (db && db->reset_at > since)
			since = db->reset_at;	/* a minute cut short by a reset */
	}
	LWLockRelease(stats->lock);
	/* the slices cover up to a minute: rates over what they hold */
	minute_s = Max((double) (now - since) / 1000000.0, 1.0);

	/* per task: its entries (of every queue); per queue: its entries */
	for (int pass = 0; pass < 2; pass++)
	{
		bool	   *done = palloc0(sizeof(bool) * Max(n, 1));

		for (int i = 0; i < n; i++)
		{
			const char *key = pass == 0 ? copy[i].task : copy[i].queue;
			StatsSum	sum = {0};

			if (done[i])
				continue;
			for (int j = i; j < n; j++)
				if (!done[j] && strcmp(key, pass == 0 ? copy[j].task : copy[j].queue) == 0)
				{
					add_entry(&sum, &copy[j], now_ms);
					done[j] = true;
				}
			put_row(rsinfo, pass == 0 ? "task" : "queue", key, &sum, now, minute_s);
		}
	}
	for (int i = 0; i < n; i++)
		add_entry(&total, &copy[i], now_ms);
	put_row(rsinfo, "database", NULL, &total, now, minute_s);
	return (Datum) 0;
}

/* The extension is dropped from database `dboid`: forget its figures */
void
stats_forget_database(Oid dboid)
{
	if (stats == NULL)
		return;
	LWLockAcquire(stats->lock, LW_EXCLUSIVE);
	for (int i = 0; i < STATS_ENTRIES; i++)
		if (stats->entries[i].dboid == dboid)
			stats->entries[i].dboid = InvalidOid;
	for (int i = 0; i < taskorch_max_databases; i++)
		if (stats_dbs[i].dboid == dboid)
			stats_dbs[i].dboid = InvalidOid;
	LWLockRelease(stats->lock);
}

/* SQL: taskorch.stats_reset(): this database's totals and minute start again */
Datum
taskorch_stats_reset(PG_FUNCTION_ARGS)
{
	if (!is_taskorch_admin())
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("permission denied to reset taskorch's statistics"),
				errhint("Only taskorch_admin (or a superuser) may reset them."));
	if (stats == NULL)
		PG_RETURN_VOID();
	LWLockAcquire(stats->lock, LW_EXCLUSIVE);
	for (int i = 0; i < STATS_ENTRIES; i++)
	{
		StatsEntry *e = &stats->entries[i];

		if (e->dboid != MyDatabaseId)
			continue;
		e->completed_total = e->failed_total = e->canceled_total = e->expired_total = 0;
		memset(e->slices, 0, sizeof(e->slices));
	}
	{
		StatsDb    *db = db_for(true);

		if (db)
			db->reset_at = GetCurrentTimestamp();
	}
	LWLockRelease(stats->lock);
	PG_RETURN_VOID();
}
