/*-------------------------------------------------------------------------
 *
 * claim.c
 *	  The claim of due runs: which queue's runs a worker takes next, and
 *	  where in each queue it starts.  Runs are claimed FOR UPDATE SKIP
 *	  LOCKED through the partial index run_queue_idx (queue, run_at, id).
 *	  Reading a claimed run is claimed_run.c's (shared with the claims
 *	  and completions of external runs, external.c).  What becomes due is
 *	  maintenance.c's; recording the batch's outcomes is complete.c's.
 *
 * Fairness: queues are served round robin.  A worker knows the queues
 * that have queued runs (it looks them up with a skip scan of the index:
 * one probe per queue), and each claim starts with the next queue in turn,
 * taking that queue's runs in order (run_at, id: priority first, then
 * FIFO) before passing to the next queue, so queues with backlogs take
 * chunks in turn and a queue with one run waits for at most one chunk.
 * The first look reads every queue's head; later ones only probe the gaps
 * between the queues known (a new queue) and whether the drained ones
 * have runs after their marks, so no known queue's dead entries are read.
 * A worker looks again after a commit queued runs (taskorch_shared->queued;
 * at most a twentieth of its time, so a flood of triggers does not turn it
 * into a scanner), each second, and, woken idle, once the queues it knows
 * turn out to have nothing.  A queue may also be passed over for a while:
 * worker.c's, when its slow runs are for other workers.
 *
 * Marks: every completed run leaves a dead entry at the head of its
 * queue in run_queue_idx until vacuum removes it, and a claim that always
 * started at the head would walk all of them.  A worker therefore keeps,
 * per queue, where its last batch ended, (run_at, id), and its next claim
 * of that queue starts after it.  Runs behind a mark (skipped because
 * another worker held them, or triggered by a transaction that committed
 * late) are found when the mark is reset: when a claim after it finds
 * nothing, at least once a second, and when runs were queued ahead of the
 * present (a priority, a promoted delayed run: taskorch_shared->requeued
 * counts those commits).  A queue whose claim from the head found nothing
 * is drained: passed over until the worker looks again.
 *
 * Transaction: the claim runs in the batch's top-level transaction, never
 * in a task's subtransaction, and locks each run row there; complete.c
 * updates the rows under the same top-level XID, so no MultiXact is
 * created.  Memory: the claimed runs are read into the batch context the
 * caller passes (worker.c's batch_cxt, reset after each commit); the
 * queues in the state's own context.  Lock: none of taskorch's shared
 * locks; the counters are read atomically.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

/* marks are reset, and queues looked up, at least this often */
#define LOOK_EVERY_MS 1000
/* a busy worker's looks take at most 1/LOOK_SHARE of its time */
#define LOOK_SHARE 20
/* a queue that gave runs this recently is taken to have more */
#define RECENT_MS 200
/* a queue drained this long, and empty, is forgotten */
#define FORGET_MS 60000
/* most queues a worker knows at once; past them, the next look goes on */
#define MAX_KNOWN_QUEUES 1024

typedef struct ClaimArgs
{
	PlanValue	now;
	PlanValue	queues;			/* in turn */
	PlanValue	after_run_ats;	/* each queue's claim starts after (run_at, id) */
	PlanValue	after_ids;
	PlanValue	limit;
	PlanValue	full_keys;		/* "queue\x1fkey"s at their concurrency limit */
} ClaimArgs;

static const PlanField claim_params[] = {
	PLAN_PARAM(ClaimArgs, now, TIMESTAMPTZOID),
	PLAN_PARAM(ClaimArgs, queues, TEXTARRAYOID),
	PLAN_PARAM(ClaimArgs, after_run_ats, TIMESTAMPTZARRAYOID),
	PLAN_PARAM(ClaimArgs, after_ids, TEXTARRAYOID),
	PLAN_PARAM(ClaimArgs, limit, INT4OID),
	PLAN_PARAM(ClaimArgs, full_keys, TEXTARRAYOID),
};
/* what a claimed run must be, besides being of its queue and after its mark */
#define CLAIM_DUE \
	"r.status = " SQL_STATUS(QUEUED) " AND NOT r.external AND r.run_at <= :now" \
	" AND " CLAIM_KEY_NOT_FULL
/* and how a queue's runs are taken: in order, up to :limit, locked */
#define CLAIM_IN_ORDER \
	" ORDER BY r.run_at, r.id LIMIT :limit FOR UPDATE OF r SKIP LOCKED"
/*
 * Each queue in turn, its due runs in order after its position, until
 * :limit runs are claimed: the nested loop stops there, so no run past
 * them is locked.
 */
static NamedPlan claim_plan = {
	.sql = "SELECT c.* FROM unnest(:queues, :after_run_ats, :after_ids) AS a(queue, run_at, id)"
	" LEFT JOIN taskorch.queue q ON q.name = a.queue"
	" CROSS JOIN LATERAL (SELECT " CLAIMED_RUN_SELECT
	"   WHERE r.queue = a.queue AND " CLAIM_DUE
	"     AND (r.run_at, r.id) > (a.run_at, a.id)"
	"     AND NOT coalesce(q.paused, false)"
	CLAIM_IN_ORDER ") c"
	" LIMIT :limit",
	PLAN_PARAMS(claim_params), .columns = claimed_run_columns,
	.ncolumns = CLAIMED_RUN_NCOLUMNS, .shape = PLAN_INDEX_ORDER
};

/*
 * The same claim from the one queue of :queues, as most claims are (a
 * lone run, one queue's backlog): a plan of a third of the nodes, which
 * starts faster.
 */
static NamedPlan claim_one_plan = {
	.sql = "SELECT " CLAIMED_RUN_SELECT
	" WHERE r.queue = (:queues)[1] AND " CLAIM_DUE
	"   AND (r.run_at, r.id) > ((:after_run_ats)[1], (:after_ids)[1])"
	"   AND NOT EXISTS (SELECT FROM taskorch.queue q WHERE q.name = (:queues)[1] AND q.paused)"
	CLAIM_IN_ORDER,
	PLAN_PARAMS(claim_params), .columns = claimed_run_columns,
	.ncolumns = CLAIMED_RUN_NCOLUMNS, .shape = PLAN_INDEX_ORDER
};

typedef struct LookArgs
{
	PlanValue	from;			/* the first queue looked at: this one or after */
	PlanValue	limit;
} LookArgs;

typedef struct LookRow
{
	PlanValue	queue;
	PlanValue	paused;
} LookRow;

static const PlanField look_params[] = {
	PLAN_PARAM(LookArgs, from, TEXTOID),
	PLAN_PARAM(LookArgs, limit, INT4OID),
};
static const PlanField look_columns[] = {
	PLAN_COLUMN(LookRow, queue),
	PLAN_COLUMN(LookRow, paused),
};

/* the queues with queued runs, from :from on: a skip scan of run_queue_idx */
static NamedPlan look_plan = {
	.sql = "WITH RECURSIVE k(queue) AS ("
	"   (SELECT r.queue FROM taskorch.run r"
	"     WHERE r.status = " SQL_STATUS(QUEUED) " AND NOT r.external AND r.queue >= :from"
	"     ORDER BY r.queue LIMIT 1)"
	"   UNION ALL"
	"   SELECT (SELECT r.queue FROM taskorch.run r"
	"            WHERE r.status = " SQL_STATUS(QUEUED) " AND NOT r.external AND r.queue > k.queue"
	"            ORDER BY r.queue LIMIT 1)"
	"     FROM k WHERE k.queue IS NOT NULL)"
	" SELECT k.queue, coalesce(q.paused, false) AS paused"
	"   FROM (SELECT queue FROM k WHERE queue IS NOT NULL LIMIT :limit) k"
	"   LEFT JOIN taskorch.queue q ON q.name = k.queue",
	PLAN_PARAMS(look_params), PLAN_COLUMNS(look_columns), .shape = PLAN_INDEX_ORDER
};

typedef struct GapArgs
{
	PlanValue	after;
	PlanValue	before;
} GapArgs;

static const PlanField gap_params[] = {
	PLAN_PARAM(GapArgs, after, TEXTOID),
	PLAN_PARAM(GapArgs, before, TEXTOID),
};

#define FIRST_QUEUED_AFTER(bound) \
	" SELECT k.queue, coalesce(q.paused, false) AS paused" \
	"   FROM (SELECT r.queue FROM taskorch.run r" \
	"          WHERE r.status = " SQL_STATUS(QUEUED) " AND NOT r.external" \
	"            AND r.queue > :after" bound \
	"          ORDER BY r.queue LIMIT 1) k" \
	"   LEFT JOIN taskorch.queue q ON q.name = k.queue"

/*
 * The first queue with queued runs between two others: the scan stops at
 * the first entry of :before without reading the table.
 */
static NamedPlan gap_plan = {
	.sql = FIRST_QUEUED_AFTER(" AND r.queue < :before"),
	PLAN_PARAMS(gap_params), PLAN_COLUMNS(look_columns), .shape = PLAN_INDEX_ORDER
};

/* the same, past the last queue known (:before unused) */
static NamedPlan tail_plan = {
	.sql = FIRST_QUEUED_AFTER(" AND :before IS NULL"),
	PLAN_PARAMS(gap_params), PLAN_COLUMNS(look_columns), .shape = PLAN_INDEX_ORDER
};

typedef struct PresentArgs
{
	PlanValue	queue;
	PlanValue	after_run_at;
	PlanValue	after_id;
} PresentArgs;

typedef struct PresentRow
{
	PlanValue	present;
} PresentRow;

static const PlanField present_params[] = {
	PLAN_PARAM(PresentArgs, queue, TEXTOID),
	PLAN_PARAM(PresentArgs, after_run_at, TIMESTAMPTZOID),
	PLAN_PARAM(PresentArgs, after_id, TEXTOID),
};
static const PlanField present_columns[] = {
	PLAN_COLUMN(PresentRow, present),
};

/* has a drained queue runs after its mark (queued since it was drained)? */
static NamedPlan present_plan = {
	.sql = "SELECT EXISTS (SELECT FROM taskorch.run r"
	"  WHERE r.queue = :queue AND r.status = " SQL_STATUS(QUEUED) " AND NOT r.external"
	"    AND (r.run_at, r.id) > (:after_run_at, :after_id)) AS present",
	PLAN_PARAMS(present_params), PLAN_COLUMNS(present_columns), .shape = PLAN_INDEX_ORDER
};

typedef struct NextArgs
{
	PlanValue	now;
	PlanValue	queues;
} NextArgs;

typedef struct NextRow
{
	PlanValue	next;
} NextRow;

static const PlanField next_params[] = {
	PLAN_PARAM(NextArgs, now, TIMESTAMPTZOID),
	PLAN_PARAM(NextArgs, queues, TEXTARRAYOID),
};
static const PlanField next_columns[] = {
	PLAN_COLUMN(NextRow, next),
};

/* the first queued run of these queues that is not due yet (a retry's) */
static NamedPlan next_plan = {
	.sql = "SELECT min(n.run_at) AS next FROM unnest(:queues) AS a(queue)"
	" CROSS JOIN LATERAL (SELECT r.run_at FROM taskorch.run r"
	"   WHERE r.queue = a.queue AND r.status = " SQL_STATUS(QUEUED) " AND NOT r.external"
	"     AND r.run_at > :now ORDER BY r.run_at LIMIT 1) n",
	PLAN_PARAMS(next_params), PLAN_COLUMNS(next_columns), .shape = PLAN_INDEX_ORDER
};

/*
 * May at most one of the known queues be claimed in this batch from now on
 * (the others drained, exhausted, or passed over)?  Then a bigger chunk
 * takes no other queue's turn (worker.c).
 */
bool
claim_one_queue(const ClaimState *s)
{
	TimestampTz now = GetCurrentTimestamp();
	int			n = 0;

	for (int i = 0; i < s->nqueues; i++)
		n += !s->queues[i].drained && !s->queues[i].exhausted && s->queues[i].passed_until <= now;
	return n <= 1;
}

/* The "queue\x1fkey" a run counts against, as CLAIM_KEY_NOT_FULL spells it */
char *
claim_full_key(const ClaimedRun *run)
{
	return psprintf("%s\x1f%s", run->queue, run->concurrency_key ? run->concurrency_key : "");
}

/* The keys found full (a List of String, claim_full_key()'s) as the claims' :full_keys */
PlanValue
claim_full_keys(List *full_keys)
{
	Datum	   *keys = palloc(sizeof(Datum) * Max(list_length(full_keys), 1));
	ListCell   *lc;
	int			n = 0;

	foreach(lc, full_keys)
		keys[n++] = CStringGetTextDatum(strVal(lfirst(lc)));
	return pv_datum(PointerGetDatum(construct_array(keys, n, TEXTOID, -1, false, TYPALIGN_INT)));
}

static void
pos_set(ClaimPos *pos, const ClaimedRun *run)
{
	pos->valid = true;
	pos->run_at = run->run_at;
	strlcpy(pos->id, run->id, sizeof(pos->id));
}

/* the last of claimed queues (in turn) that gave runs */
static int
last_giver(const int *gave, int nclaimed)
{
	for (int k = nclaimed - 1; k >= 0; k--)
		if (gave[k] > 0)
			return k;
	return -1;
}

/* May the queue be claimed now, in this batch? */
static bool
claimable(const ClaimState *s, const ClaimQueue *q, TimestampTz now)
{
	uint32		hash;

	if (q->drained || q->exhausted || q->passed_until > now)
		return false;
	if (!s->leave_fast)
		return true;
	hash = taskorch_queue_hash(q->name);
	return hash == s->called_queue || !taskorch_fast_queue_known(MyDatabaseId, hash);
}

static ClaimQueue *
find_queue(ClaimState *s, const char *name)
{
	for (int i = 0; i < s->nqueues; i++)
		if (strcmp(s->queues[i].name, name) == 0)
			return &s->queues[i];
	return NULL;
}

/* A list of queues being made by a look, in the index's order */
typedef struct QueueList
{
	MemoryContext cxt;
	ClaimQueue *queues;
	int			n;
} QueueList;

/* Append a queue found by a look; a queue known keeps its state. */
static void
list_add(QueueList *l, ClaimState *s, const char *name, bool paused)
{
	ClaimQueue *q = &l->queues[l->n++];
	ClaimQueue *known = find_queue(s, name);

	if (known)
		*q = *known;
	else
		memset(q, 0, sizeof(*q));
	q->name = MemoryContextStrdup(l->cxt, name);
	q->drained = paused;
}

/* Append the queue a gap or tail probe found, if any; false if none. */
static bool
list_add_found(QueueList *l, ClaimState *s, NamedPlan *p, int n)
{
	LookRow		row;

	if (n == 0)
		return false;
	taskorch_read_row(p, 0, &row);
	list_add(l, s, TextDatumGetCString(row.queue.datum), DatumGetBool(row.paused.datum));
	return true;
}

/*
 * Look at every queue, from s->resume_at (the first) on: a skip scan of
 * run_queue_idx, one probe per queue, each reading the queue's first
 * entries, dead ones included.
 */
static void
look_all(QueueList *l, ClaimState *s)
{
	LookArgs	args;
	int			n;

	args.from = pv_text(s->resume_at ? s->resume_at : "");
	args.limit = pv_int4(MAX_KNOWN_QUEUES);
	n = taskorch_execute_args(&look_plan, &args, false, 0);
	for (int i = 0; i < n; i++)
	{
		LookRow		row;

		taskorch_read_row(&look_plan, i, &row);
		list_add(l, s, TextDatumGetCString(row.queue.datum), DatumGetBool(row.paused.datum));
	}
}

/* Has the queue runs queued after `after` (from its head if not valid)? */
static bool
queued_after(const char *queue, const ClaimPos *after)
{
	PresentArgs args;
	PresentRow	row;

	args.queue = pv_text(queue);
	args.after_run_at = pv_timestamptz(after->valid ? after->run_at : DT_NOBEGIN);
	args.after_id = pv_text(after->valid ? after->id : "");
	taskorch_execute_args(&present_plan, &args, false, 1);
	taskorch_read_row(&present_plan, 0, &row);
	return DatumGetBool(row.present.datum);
}

/*
 * Look for queues between the known ones, and whether the drained ones
 * have runs again after their marks, without reading any known queue's
 * dead head: what a busy worker does when a commit queued runs.
 */
static void
look_between(QueueList *l, ClaimState *s)
{
	GapArgs		gap;
	int			i = 0;
	bool		present;

	gap.after = pv_text("");
	for (;;)
	{
		ClaimQueue *known = i < s->nqueues ? &s->queues[i] : NULL;
		NamedPlan  *p = known ? &gap_plan : &tail_plan;

		gap.before = known ? pv_text(known->name) : PV_NULL;
		if (l->n < MAX_KNOWN_QUEUES &&
			list_add_found(l, s, p, taskorch_execute_args(p, &gap, false, 1)))
		{
			gap.after = pv_text(l->queues[l->n - 1].name);
			continue;
		}
		if (!known)
			break;
		gap.after = pv_text(known->name);
		i++;
		present = !known->drained || queued_after(known->name, &known->mark);
		/*
		 * A queue found empty from its head long after it was drained is
		 * forgotten (vacuum has then removed the dead entries that a probe
		 * of its gap would read).
		 */
		if (!present && !known->mark.valid &&
			TimestampDifferenceExceeds(known->drained_at, GetCurrentTimestamp(), FORGET_MS))
			continue;
		l->queues[l->n] = *known;
		l->queues[l->n].name = MemoryContextStrdup(l->cxt, known->name);
		l->queues[l->n].drained = !present;
		l->n++;
	}
}

/*
 * Look up the queues with queued runs (up to MAX_KNOWN_QUEUES of them, the
 * next look going on after the last), keeping what the worker knows of
 * each.  Paused queues are known drained.  The first look, and a look
 * through a window of the queues, reads them all; the others only what
 * changed around the queues known.
 */
static void
look(ClaimState *s)
{
	TimestampTz start = GetCurrentTimestamp();
	QueueList	l;

	/* the transaction's until made: an error frees it */
	l.cxt = AllocSetContextCreate(CurTransactionContext, "taskorch claim queues",
								  ALLOCSET_SMALL_SIZES);
	/* a look between adds new queues up to the most, and keeps the known */
	l.queues = MemoryContextAllocZero(l.cxt, sizeof(ClaimQueue) * (MAX_KNOWN_QUEUES + s->nqueues));
	l.n = 0;
	/*
	 * Read before the probes, each of which takes a snapshot of its own (not
	 * the batch's): a commit counted after this is seen, or looked for again.
	 */
	s->queued_seen = pg_atomic_read_u32(&taskorch_shared->queued);
	SPI_connect();
	if (!s->known || s->resume_at != NULL)
		look_all(&l, s);
	else
		look_between(&l, s);
	SPI_finish();
	MemoryContextSetParent(l.cxt, TopMemoryContext);
	if (s->cxt)
		MemoryContextDelete(s->cxt);
	s->cxt = l.cxt;
	s->queues = l.queues;
	s->nqueues = l.n;
	s->turn = l.n > 0 ? s->turn % l.n : 0;
	s->resume_at = l.n >= MAX_KNOWN_QUEUES ? l.queues[l.n - 1].name : NULL;
	s->known = true;
	s->look_skipped = false;
	/* a look costs what it costs: the next waits in proportion */
	s->look_again_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												   (GetCurrentTimestamp() - start) * (LOOK_SHARE - 1) / 1000);
}

/* Forget the queues (run_pending()'s state, at its end). */
void
claim_forget(ClaimState *s)
{
	if (s->cxt)
		MemoryContextDelete(s->cxt);
	memset(s, 0, sizeof(*s));
}

/*
 * Start of a batch: reset the marks that are due for it, and look for
 * queues when the worker knows nothing to run, or each second.
 */
void
claim_batch_start(ClaimState *s)
{
	TimestampTz now = GetCurrentTimestamp();
	uint32		requeued = pg_atomic_read_u32(&taskorch_shared->requeued);
	bool		reset = requeued != s->requeued_seen ||
		TimestampDifferenceExceeds(s->looked_at, now, LOOK_EVERY_MS);
	bool		any = false;

	if (reset)
	{
		for (int i = 0; i < s->nqueues; i++)
			s->queues[i].mark.valid = false;
		s->requeued_seen = requeued;
		s->looked_at = now;
	}
	for (int i = 0; i < s->nqueues; i++)
		any |= !s->queues[i].drained;
	if (reset || !s->known)
		look(s);
	else if (!any)
	{
		/*
		 * Woken with every queue drained: the queues it knows are claimed
		 * first, which costs no more than looking; it looks when they have
		 * nothing (claim_runs()).
		 */
		for (int i = 0; i < s->nqueues; i++)
			s->queues[i].drained = false;
		s->queued_seen = pg_atomic_read_u32(&taskorch_shared->queued);
		s->look_if_none = s->look_skipped = true;
	}
	for (int i = 0; i < s->nqueues; i++)
	{
		s->queues[i].pos = s->queues[i].mark;
		s->queues[i].exhausted = false;
	}
}

/* claim_runs(), with what the worker knows of the queues now */
static int
claim_some(ClaimState *s, ClaimedRun *runs, int limit, List *full_keys, MemoryContext cxt)
{
	ClaimArgs	args;
	NamedPlan  *plan;
	PlanItems	queues,
				after_run_ats,
				after_ids;
	int		   *order;			/* the queues' indexes in s->queues, in turn */
	bool	   *from_head;		/* claimed from the queue's head */
	int		   *gave;			/* runs claimed of each */
	int			nclaimed = 0;	/* queues claimed from */
	int			n;
	int			k;
	int			last;
	TimestampTz now = GetCurrentTimestamp();

	/*
	 * A commit queued runs, maybe in a queue this worker does not know:
	 * look (keeping the positions of this batch), unless the worker knows
	 * only some of the queues, a window that must not move in a batch (a
	 * queue left out and back would be claimed from its head again).
	 */
	if (pg_atomic_read_u32(&taskorch_shared->queued) != s->queued_seen &&
		now >= s->look_again_at && s->resume_at == NULL)
		look(s);
	queues = plan_items_new(Max(s->nqueues, 1));
	after_run_ats = plan_items_new(Max(s->nqueues, 1));
	after_ids = plan_items_new(Max(s->nqueues, 1));
	order = palloc(sizeof(int) * Max(s->nqueues, 1));
	from_head = palloc(sizeof(bool) * Max(s->nqueues, 1));
	gave = palloc0(sizeof(int) * Max(s->nqueues, 1));
	for (k = 0; k < s->nqueues; k++)
	{
		int			i = (s->turn + k) % s->nqueues;
		ClaimQueue *q = &s->queues[i];

		if (!claimable(s, q, now))
			continue;
		order[nclaimed] = i;
		from_head[nclaimed] = !q->pos.valid;
		queues.values[nclaimed] = CStringGetTextDatum(q->name);
		after_run_ats.values[nclaimed] = TimestampTzGetDatum(q->pos.valid ? q->pos.run_at : DT_NOBEGIN);
		after_ids.values[nclaimed] = CStringGetTextDatum(q->pos.valid ? q->pos.id : "");
		nclaimed++;
	}
	if (s->nqueues > 0)
		s->turn = (s->turn + 1) % s->nqueues;
	if (nclaimed == 0)
		return 0;
	args.now = pv_timestamptz(now);
	args.queues = plan_items_array(queues, nclaimed, TEXTOID);
	args.after_run_ats = plan_items_array(after_run_ats, nclaimed, TIMESTAMPTZOID);
	args.after_ids = plan_items_array(after_ids, nclaimed, TEXTOID);
	args.limit = pv_int4(limit);
	args.full_keys = claim_full_keys(full_keys);
	plan = nclaimed == 1 ? &claim_one_plan : &claim_plan;

	SPI_connect();
	n = taskorch_execute_args(plan, &args, false, 0);
	for (int i = 0; i < n; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		claim_read_run(plan, i, &runs[i]);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();

	/*
	 * The runs come queue by queue, in turn: each queue's position moves to
	 * its last run claimed.  A queue that gave all it had (every queue
	 * before the last one that gave runs, and all of them when fewer than
	 * `limit` came) is exhausted: not claimed again in this batch (a claim
	 * from its head would find the runs this batch holds), and from its
	 * head in the next.  It is drained when it gave nothing from its head.
	 */
	k = 0;
	for (int j = 0; j < n; j++)
	{
		while (k < nclaimed && strcmp(s->queues[order[k]].name, runs[j].queue) != 0)
			k++;
		if (k == nclaimed)
			elog(ERROR, "claimed run %s of queue \"%s\" out of turn", runs[j].id, runs[j].queue);
		gave[k]++;
		pos_set(&s->queues[order[k]].pos, &runs[j]);
		s->queues[order[k]].gave_at = now;
	}
	last = last_giver(gave, nclaimed);
	for (k = 0; k < nclaimed; k++)
	{
		ClaimQueue *q = &s->queues[order[k]];

		if (n == limit && k >= last)
			break;				/* not reached, or may have more */
		if (gave[k] == 0 && from_head[k] && !q->drained)
		{
			q->drained = true;
			q->drained_at = now;
		}
		q->exhausted = true;
	}
	return n;
}

/*
 * Claim up to `limit` due runs, locking them: the queues' runs in turn,
 * each queue's after its position in this batch.  Runs of paused queues,
 * and of the "queue\x1fkey"s in full_keys (found at their concurrency
 * limit), are passed over.  Returns the number claimed; fewer than `limit`
 * when every queue had no more.
 */
int
claim_runs(ClaimState *s, ClaimedRun *runs, int limit, List *full_keys, MemoryContext cxt)
{
	int			n = claim_some(s, runs, limit, full_keys, cxt);

	if (n == 0 && s->look_if_none)
	{
		look(s);
		n = claim_some(s, runs, limit, full_keys, cxt);
	}
	s->look_if_none = false;
	return n;
}

/*
 * The next claim starts with `run`'s queue: the batch let `run` go with
 * the runs claimed after it, to claim it alone (worker.c).
 */
void
claim_turn_to(ClaimState *s, const ClaimedRun *run)
{
	for (int i = 0; i < s->nqueues; i++)
		if (strcmp(s->queues[i].name, run->queue) == 0)
			s->turn = i;
}

/*
 * Has a queue other than `run`'s runs to claim now: one that gave runs in
 * the last RECENT_MS, or has runs queued after this batch's position in it
 * (also one the batch exhausted: its position is after the runs it holds)?
 * Queues drained or passed over are not counted.
 */
bool
claim_others_due(ClaimState *s, const ClaimedRun *run)
{
	TimestampTz now = GetCurrentTimestamp();
	bool		found = false;

	/*
	 * The queues known may not be all, or a queue known drained may have
	 * runs again: a look was skipped (claim_batch_start()), or a commit
	 * queued runs since the last one (claim_some() puts looks off while
	 * the worker is busy; not this one, that decides where a slow run goes).
	 */
	if ((s->look_skipped || pg_atomic_read_u32(&taskorch_shared->queued) != s->queued_seen) &&
		s->resume_at == NULL)
		look(s);

	SPI_connect();
	for (int i = 0; i < s->nqueues && !found; i++)
	{
		ClaimQueue *q = &s->queues[i];

		if (q->drained || q->passed_until > now || strcmp(q->name, run->queue) == 0)
			continue;
		found = !TimestampDifferenceExceeds(q->gave_at, now, RECENT_MS) ||
			queued_after(q->name, &q->pos);
	}
	SPI_finish();
	return found;
}

/*
 * `run`'s queue is passed over until `until` (DT_NOEND: until the pass is
 * ended, claim_pass_over_end()): the batch ends at once,
 * letting go of the runs it did not execute, `run`'s among them, and the
 * next claims take other queues' runs (worker.c: the slow runs of a queue
 * wait for a worker that may take them).
 */
void
claim_pass_over(ClaimState *s, const ClaimedRun *run, TimestampTz until)
{
	ClaimQueue *q = find_queue(s, run->queue);

	if (q)
		q->passed_until = until;
	if (s->called_queue == taskorch_queue_hash(run->queue))
		s->called_queue = 0;
}

/*
 * The queue of hash `queue_hash` (taskorch_queue_hash()) may be claimed
 * again: a peer called for its runs, so it has some even if this worker
 * found it drained (its runs were locked by that peer's claim), and even
 * if the kept workers found it fast (ClaimState.leave_fast; also when this
 * worker has not looked it up yet).  With 0, every queue passed over until
 * ended may be.
 */
void
claim_pass_over_end(ClaimState *s, uint32 queue_hash)
{
	if (queue_hash != 0)
		s->called_queue = queue_hash;
	for (int i = 0; i < s->nqueues; i++)
	{
		ClaimQueue *q = &s->queues[i];

		if (queue_hash == 0 ? q->passed_until == DT_NOEND
			: taskorch_queue_hash(q->name) == queue_hash)
		{
			q->passed_until = 0;
			if (queue_hash != 0)
				q->drained = false;
		}
	}
}

/*
 * End of a batch of `done` runs: each queue's mark moves to its last run
 * executed (runs claimed after it were released unexecuted); a queue that
 * gave all it had starts from its head.
 */
void
claim_batch_end(ClaimState *s, const ClaimedRun *runs, int done)
{
	ClaimQueue *q = NULL;

	for (int i = 0; i < s->nqueues; i++)
	{
		s->queues[i].ended = s->queues[i].exhausted;
		if (s->queues[i].ended)
			s->queues[i].mark.valid = false;
	}
	/* backwards: the first run met of each queue is its last executed */
	for (int j = done - 1; j >= 0; j--)
	{
		if (q == NULL || strcmp(q->name, runs[j].queue) != 0)
			q = find_queue(s, runs[j].queue);
		if (q && !q->ended)
		{
			pos_set(&q->mark, &runs[j]);
			q->ended = true;
		}
	}
}

/*
 * Milliseconds until a queued run of the known queues is due (a retry's
 * backoff), -1 if none: for an idle worker, after a look.
 */
int64
claim_next_run_ms(ClaimState *s)
{
	NextArgs	args;
	NextRow		row;
	PlanItems	queues;
	TimestampTz now = GetCurrentTimestamp();
	int64		result = -1;

	if (pg_atomic_read_u32(&taskorch_shared->queued) != s->queued_seen)
	{
		/* a commit queued runs since the last look (one may have been put off) */
		look(s);
		for (int i = 0; i < s->nqueues; i++)
			if (!s->queues[i].drained && s->queues[i].passed_until <= now)
				return 0;		/* claim again now (not a queue it passes over) */
	}
	if (s->nqueues == 0)
		return -1;
	queues = plan_items_new(s->nqueues);
	for (int i = 0; i < s->nqueues; i++)
		queues.values[i] = CStringGetTextDatum(s->queues[i].name);
	args.now = pv_timestamptz(now);
	args.queues = plan_items_array(queues, s->nqueues, TEXTOID);
	SPI_connect();
	taskorch_execute_args(&next_plan, &args, false, 1);
	taskorch_read_row(&next_plan, 0, &row);
	if (row.next.present)
		result = TimestampDifferenceMilliseconds(now, DatumGetTimestampTz(row.next.datum)) + 1;
	SPI_finish();
	return result;
}
