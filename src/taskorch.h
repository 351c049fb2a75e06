/*-------------------------------------------------------------------------
 *
 * taskorch.h
 *	  The one internal header: shared types, GUC variables and the entry
 *	  points each src/ file offers the others.
 *
 * Map of src/ (one concept per file):
 *	  taskorch.c   module init, GUCs, utility hook for DROP DATABASE and
 *	               DROP/ALTER EXTENSION
 *	  shmem.c      shared state: per-database entries, worker slots, wake-ups,
 *	               the pool's growth and shrinking, database_workers
 *	  launcher.c   finds databases with the extension, starts their workers
 *	               (each database its first before any its second)
 *	  worker.c     the per-database latch loop and the batch driver
 *	  task_times.c how long a task's runs take: may a run share its batch
 *	  claim.c      the FOR UPDATE SKIP LOCKED claim and the claim mark
 *	  claimed_run.c  a claimed run read: its row, its task, its queue
 *	  maintenance.c  what becomes due on its own: DELAYED runs promoted,
 *	               QUEUED runs expired, waits over resumed, next due time
 *	  complete.c   the batch completion: outcomes, failed attempts, waits
 *	               and tokens recorded, logs flushed, one NOTIFY
 *	  execute.c    user code in a worker, sandboxed: a run's attempt, and what
 *	               it sets off (its wait's items and children, its hooks)
 *	  sql_task.c   a plain SQL task function called through kept plans
 *	  status.c     the run lifecycle: the statuses (status.h, the C mirror of
 *	               taskorch.run_status) and the one table of the transitions
 *	               the engine makes, which every status change goes through
 *	  runs.c       outcome of an attempt: status, retry backoff, error JSON
 *	  json_object.c  a flat JSON object built in C, value by value
 *	  crash.c      charges a CRASHED attempt to a run whose code ended its worker
 *	  logs.c       run logs: taskorch.log() and the task's own notices
 *	  batch.c      batch_trigger() and the items of every batch (arrays, queries)
 *	  batch_items.c  taskorch.items: a batch's items as any driver sends them
 *	  queues.c     create_queue() and friends: limits, pause, resume, who
 *	               owns a queue and who may use it
 *	  concurrency.c  shared counts that keep queues within their limits
 *	  waits.c      durable waits by replay: the memo of waits over, the
 *	               suspension, waitpoints (and checkpoints: waits under a
 *	               key) recorded, runs resumed
 *	  wait_time.c  wait_for(), wait_until()
 *	  wait_children.c  trigger_and_wait(), batch_trigger_and_wait(): the
 *	               children triggered, and the waits their ends complete
 *	  wait_tokens.c  create_wait_token(), wait_for_token(),
 *	               complete_wait_token(), tokens that time out
 *	  tracks.c     a track advanced by the engine between its steps (the next
 *	               step triggered at the end of the last, from its checkpoint)
 *	  hooks.c      on_success / on_failure tasks of a run that ended
 *	  schema.c     JSON Schema checks of payloads and outputs, named schemas
 *	  trigger.c    trigger() and the wake-up of workers at commit
 *	  idempotency.c  the scopes of idempotency keys (run, attempt, global)
 *	  options.c    trigger options: named arguments and the jsonb object
 *	  duration.c   "1h52m18s", intervals, seconds, timestamps; the types
 *	               taskorch.duration and taskorch.delay
 *	  cron.c       cron expressions: parsing, next times in a time zone, words
 *	  schedules.c  schedule() and friends, and the firing of due ticks
 *	  retention.c  finished runs removed after their retention; purge()
 *	  stats.c      taskorch.stats: counts, rates and latencies in shared memory
 *	  external.c   external tasks: runs claimed over libpq under a lease,
 *	               their outcomes, and the leases lost
 *	  lease.c      a lease: its signed text, and whether it is current
 *	  external_watch.c  the claimers, the leases lost, the runs made due
 *	  manage.c     cancel(), reschedule(), replay()
 *	  registry.c   register_task(), unregister_task(), trigger grants
 *	  role_ref.c   the type of the role columns: OID and name, so that a
 *	               dump restores into a cluster that lacks some role
 *	  spi_util.c   SPI plans prepared once, under a pinned search_path, run
 *	               as the extension owner; every plan's parameters and
 *	               columns by name (NamedPlan), resolved to numbers once
 *	               per plan
 *
 * Tracks, orchestrators and jobs are SQL (sql/parts/code/tracks.sql and
 * jobs.sql): their runners are task functions built on the waits; a
 * track's steps are checkpoints, which tracks.c advances between steps.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TASKORCH_H
#define TASKORCH_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "fmgr.h"
#include "nodes/pg_list.h"
#include "utils/array.h"
#include "utils/jsonb.h"

#include "status.h"

/* SQLSTATE a task raises (taskorch.abort) to fail without further retries */
#define TASKORCH_SQLSTATE_ABORT		MAKE_SQLSTATE('T','O','A','B','T')

/* LISTEN channel for run outcomes, and how much of a payload we fill */
#define NOTIFY_CHANNEL				"taskorch_runs"
#define NOTIFY_PAYLOAD_BUDGET		7000

/* Largest metadata of a run (binary jsonb size) */
#define MAX_METADATA_BYTES			(256 * 1024)

/* Metadata changed by a running task is shown live up to this size */
#define LIVE_METADATA_BYTES			4096

/* SQLSTATE a wait raises to suspend its run (waits.c) */
#define TASKORCH_SQLSTATE_WAIT		MAKE_SQLSTATE('T','O','W','A','I')

/* SQLSTATE of a replay whose wait calls differ from the recorded ones (waits.c) */
#define TASKORCH_SQLSTATE_REPLAY	MAKE_SQLSTATE('T','O','R','P','L')

/* LISTEN channel on which external workers hear that a task has due runs */
#define EXTERNAL_CHANNEL			"taskorch_external"

/* Backends that claimed external runs and exited, remembered in shared memory */
#define GONE_CLAIMERS				64
/* ... and their runs released this long after (external.c) */
#define CLAIMER_GONE_GRACE_MS		250

/* Upper bound of taskorch.workers_per_database */
#define TASKORCH_MAX_WORKERS_PER_DATABASE	64

/* Upper bound of taskorch.batch_size */
#define TASKORCH_MAX_BATCH			1000

/* GUCs (taskorch.c) */
extern int	taskorch_workers_per_database;
extern int	taskorch_batch_size;
extern int	taskorch_batch_time_budget_ms;
extern int	taskorch_max_workers_per_database;
extern int	taskorch_max_workers;
extern int	taskorch_retention_s;
extern int	taskorch_max_payload_bytes;
extern int	taskorch_idle_poll_ms;
extern int	taskorch_max_databases;
extern int	taskorch_default_ttl_ms;
extern char *taskorch_test_clock;

/*
 * A claimed run, as the batch driver carries it from claim to completion.
 * Everything lives in the batch memory context.
 */
typedef struct ClaimedRun
{
	char	   *id;				/* 'run_<n>' */
	char	   *task_id;
	Jsonb	   *payload;
	int32		attempts;		/* attempts finished before this one */
	int32		max_attempts;
	TimestampTz run_at;			/* queue position (claim order) */
	ItemPointerData tid;		/* the row version claimed (locked) */
	bool		task_found;		/* false: task was unregistered (or reowned) */
	bool		task_reowned;	/* registered again by another role since */
	Oid			fn;
	Oid			owner;
	Oid			triggered_by;
	double		retry_factor;
	int32		retry_min_ms;
	int32		retry_max_ms;
	bool		retry_randomize;
	int32		max_duration_ms;	/* 0: none */
	Jsonb	   *output_schema;	/* NULL: none (schema.c) */
	char	   *on_success;		/* hook tasks, NULL: none (hooks.c) */
	char	   *on_failure;
	char	   *on_start;
	bool		unstarted;		/* no execution of the run had started before this one */

	/* outcome of this attempt, filled by execute.c and runs.c */
	TimestampTz started_at;
	TimestampTz finished_at;
	bool		succeeded;
	bool		timed_out;
	bool		canceled;		/* interrupted by taskorch.cancel() */
	bool		expired;		/* claimed after its ttl ran out: not run */
	Jsonb	   *metadata;		/* the run's metadata, as the task changes it */
	bool		metadata_changed;
	MemoryContext cxt;			/* the batch's: where outcomes are kept */
	char	   *queue;
	char	   *concurrency_key;	/* NULL: none */
	int32		concurrency_limit;	/* of the queue; 0: unlimited */
	bool		skipped;		/* not executed: its concurrency slot was taken */
	/* durable waits (waits.c) */
	int32		wait_calls;		/* wait calls made by this execution so far */
	bool		memo_loaded;	/* the waits already over, read (waits.c) */
	int			memo_count;
	int32	   *memo_seq;
	char	  **memo_kind;		/* what each waited for: 'time', 'run', ... */
	char	  **memo_target;	/* what each waited for (NULL: not recorded) */
	char	  **memo_key;		/* a checkpoint's key (NULL: a wait of code) */
	Jsonb	  **memo_state;		/* what the run carried past it */
	Jsonb	  **memo_result;
	ErrorData  *replay_error;	/* a wait call that differs from the recorded one */
	bool		suspended;		/* the execution stopped at a wait: WAITING */
	int32		wait_seq;		/* the wait it stopped at */
	const char *wait_kind;
	TimestampTz wait_resume_at;
	struct BatchItems *wait_children;	/* runs to trigger and wait for */
	char	   *wait_children_ids;	/* their ids, space-separated, once triggered */
	char	   *wait_token;		/* the wait token it waits on */
	char	   *wait_target;	/* what the wait call waits for (waits.c) */
	char	   *wait_key;		/* a checkpoint's key (a track step's name), or NULL */
	Jsonb	   *wait_state;		/* what the run carries past the wait, or NULL */
	List	   *new_tokens;		/* PendingToken *: tokens this execution made */
	char	   *root_run_id;	/* the top of its tree of runs, NULL: it is one */
	char	   *parent_run_id;	/* this run is waited for by that run's wait... */
	int32		parent_wait_seq;	/* ...number */
	TimestampTz expires_at;		/* 0: no ttl */
	Jsonb	   *output;			/* NULL: SQL NULL */
	ErrorData  *edata;			/* error raised by the task, if any */
	Jsonb	   *error;			/* error JSON recorded for the attempt */
	RunStatus	status;			/* new status (run_transition()) */
	TimestampTz next_run_at;	/* retry time when status is RUN_QUEUED */
	/* external runs (external.c): EXECUTING in the table while claimed */
	RunStatus	row_status;		/* its status in the table: QUEUED, or EXECUTING (external) */
	bool		external;
	bool		holds_slot;		/* counted against its queue's limit (concurrency.c) */
	bool		lost;			/* its lease expired, or its claimer's connection ended */
	bool		no_retry;		/* fail_run(..., retry => false) */
	Jsonb	   *reported_error;	/* the error its worker reported, or the loss's */
	TimestampTz lease_expires_at;	/* of its lease; its started_at is its claim's time */
	int32		lease_ms;
} ClaimedRun;

/* A position in a queue's runs, (run_at, id): claims start after it (claim.c) */
typedef struct ClaimPos
{
	bool		valid;			/* false: from the queue's head */
	TimestampTz run_at;
	char		id[32];
} ClaimPos;

/* A queue with queued runs, as a worker knows it (claim.c) */
typedef struct ClaimQueue
{
	char	   *name;
	bool		drained;		/* a claim from its head found nothing to run */
	TimestampTz drained_at;
	ClaimPos	mark;			/* between batches: after the last run executed */
	ClaimPos	pos;			/* in a batch: after the last run claimed */
	bool		exhausted;		/* in a batch: it gave all it had */
	TimestampTz passed_until;	/* not claimed before (DT_NOEND: until told, worker.c) */
	TimestampTz gave_at;		/* when a claim last took runs of it */
	bool		ended;			/* at the batch's end: its mark is set */
} ClaimQueue;

/*
 * What a worker knows of the queues between batches (claim.c): the queues
 * that had queued runs when it last looked, in run_queue_idx's order, its
 * place in each, and whose turn is next.
 */
typedef struct ClaimState
{
	MemoryContext cxt;			/* the queues and their names */
	ClaimQueue *queues;
	int			nqueues;
	int			turn;			/* round robin: the queue the next claim starts with */
	char	   *resume_at;		/* the next look starts at this queue (NULL: the first) */
	bool		known;			/* looked at least once */
	bool		look_if_none;	/* the next claim looks if the known queues have nothing */
	bool		look_skipped;	/* commits were not looked into since (claim_others_due()) */
	TimestampTz looked_at;		/* the last look, when marks were last reset */
	TimestampTz look_again_at;	/* earliest look for a commit's news (busy worker) */
	uint32		queued_seen;	/* taskorch_shared->queued at the last look */
	uint32		requeued_seen;	/* taskorch_shared->requeued at the last reset */
	bool		leave_fast;		/* in a batch: queues the kept workers found fast are
								 * not claimed, but called_queue (worker.c) */
	uint32		called_queue;	/* a peer called for its slow runs (taskorch_queue_hash()),
								 * since this worker last passed it over; 0: none */
} ClaimState;

/*
 * Shared state (shmem.c).  One LWLock guards the database entries and the
 * assignment of worker slots.  A worker writes its own pid, latch, idle
 * flag and executing run without the lock; readers treat them as hints.
 * Lock order (shmem.c): lock, then a slot's mutex; conc_lock alone.
 */
typedef enum DbState
{
	DB_FREE = 0,				/* entry unused */
	DB_UNKNOWN,					/* not yet probed for the extension */
	DB_PROBING,					/* worker 0 started, checking */
	DB_ACTIVE,					/* extension present: keep workers running */
	DB_NO_EXTENSION				/* probed, no extension */
} DbState;

#define FAST_QUEUE_HINTS 8

typedef struct DbEntry
{
	Oid			dboid;
	DbState		state;
	bool		seen;			/* launcher scan mark */
	pid_t		paused_by;		/* backend running DROP DATABASE etc. */
	bool		reprobe;		/* extension changed during a probe: again */
	TimestampTz restart_after;	/* no worker start before this */
	bool		starved;		/* its worker 0 found no background worker slot */
	int			extra;			/* workers above workers_per_database (the pool grew) */
	uint32		demand;			/* workers asked for by busy ones since the launcher looked (a hint) */
	/* queues whose runs the kept workers found fast (taskorch_queue_hash()), a ring */
	pg_atomic_uint32 fast_queues[FAST_QUEUE_HINTS];
	pg_atomic_uint32 fast_queues_next;
} DbEntry;

typedef struct WorkerSlot
{
	Oid			dboid;			/* InvalidOid: slot free */
	int			index;			/* worker number within its database */
	uint32		generation;		/* bumped at each assignment */
	pid_t		pid;			/* set by the worker once it runs */
	Latch	   *latch;
	bool		idle;			/* sleeping on its latch */
	bool		slow;			/* executing a run of a task not known to be fast */
	uint32		slow_queue;		/* called for the slow runs of this queue
								 * (taskorch_queue_hash()) since it last
								 * claimed; 0: not called */
	pg_atomic_uint64 run_id;	/* run being executed (n of run_<n>), 0: none */
	pg_atomic_uint64 runs_executed;	/* since the worker took the slot (written by it) */
	pg_atomic_uint64 runs_let_go;	/* claimed, then released unexecuted (ditto) */
	pg_atomic_uint64 cancel_run;	/* run whose cancel was asked for */
	slock_t		mutex;			/* guards run_owner and run_triggerer */
	pg_atomic_uint32 live_change;	/* odd while the worker rewrites live_metadata */
	int			live_metadata_len;	/* 0: the run has not changed it */
	char		live_metadata[LIVE_METADATA_BYTES];	/* its text while it runs */
	TimestampTz run_started;
	Oid			run_owner;		/* whose run it is: who may see it (guarded by mutex) */
	Oid			run_triggerer;
} WorkerSlot;

/* Runs of one (database, queue, concurrency key) executing now (concurrency.c) */
typedef struct ConcurrencySlot
{
	uint64		key;			/* concurrency_key_hash(); valid while active > 0 */
	Oid			dboid;
	int			active;
} ConcurrencySlot;

typedef struct TaskorchShared
{
	LWLock	   *lock;
	LWLock	   *conc_lock;		/* guards conc[] */
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	int			ndbs;
	int			nslots;
	pg_atomic_uint32 wake_rr;
	pg_atomic_uint32 requeued;	/* bumped when runs are queued ahead of now */
	pg_atomic_uint32 queued;	/* bumped when a commit queued runs (claim.c looks for new queues) */
	DbEntry    *dbs;			/* ndbs entries, after the slots */
	ConcurrencySlot *conc;		/* nconc entries, after the databases */
	int			nconc;
	Oid		   *conc_counted;	/* ndbs: databases whose external runs are counted */
	TimestampTz started_at;		/* when this shared memory was made */
	pg_atomic_uint32 claimers_gone;	/* bumped when a backend that claimed runs exits */
	pid_t		gone_pid[GONE_CLAIMERS];	/* the last ones (external.c) */
	TimestampTz gone_at[GONE_CLAIMERS];
	WorkerSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} TaskorchShared;

extern TaskorchShared *taskorch_shared;
extern int	MySlot;				/* this worker's slot, -1 elsewhere */

/* shmem.c */
extern void taskorch_shmem_request(void);
extern void taskorch_shmem_startup(void);
extern void taskorch_wake_database(Oid dboid);
/* whom a worker calls for runs it leaves (shmem.c) */
typedef enum WakeFor
{
	WAKE_ANY,
	WAKE_FAST,					/* the workers kept for fast runs */
	WAKE_SLOW					/* the extra workers first */
} WakeFor;
extern bool taskorch_wake_peer(Oid dboid, int self_slot, WakeFor wake_for,
							   uint32 queue_hash);
extern uint32 taskorch_queue_hash(const char *queue);
extern void taskorch_pool_grow(Oid dboid);
extern int	taskorch_workers_kept(void);
extern bool taskorch_keepers_free(Oid dboid);
extern void taskorch_fast_queue_note(Oid dboid, uint32 queue_hash, bool fast);
extern bool taskorch_fast_queue_known(Oid dboid, uint32 queue_hash);
extern int	taskorch_extra_workers(Oid dboid);
extern bool taskorch_pool_shrink(Oid dboid, int self_slot);
extern void taskorch_wake_launcher(void);
extern void notice_if_starved(void);
extern void taskorch_database_installed(Oid dboid);
extern void taskorch_database_pause(Oid dboid, bool pause);
extern void taskorch_database_wait_stopped(Oid dboid);
extern void taskorch_set_executing(const ClaimedRun *run);
extern bool taskorch_cancel_executing(const char *run_id);
extern bool taskorch_cancel_requested(const char *run_id);
extern void taskorch_set_live_metadata(const char *text);
extern bool taskorch_stop_requested_by(pid_t sender);

/* launcher.c */
extern void taskorch_register_launcher(void);
extern void taskorch_database_state(Oid dboid, DbState state);
PGDLLEXPORT void taskorch_launcher_main(Datum arg);

/* worker.c */
PGDLLEXPORT void taskorch_worker_main(Datum arg);
extern int	taskorch_process_batch(int limit, ClaimState *claims, int self_slot);
extern bool taskorch_in_task(void);

/* claim.c */
extern void claim_batch_start(ClaimState *s);
extern int	claim_runs(ClaimState *s, ClaimedRun *runs, int limit,
					   List *full_keys, MemoryContext cxt);
extern void claim_turn_to(ClaimState *s, const ClaimedRun *run);
extern bool claim_others_due(ClaimState *s, const ClaimedRun *run);
extern void claim_pass_over(ClaimState *s, const ClaimedRun *run, TimestampTz until);
extern void claim_pass_over_end(ClaimState *s, uint32 queue_hash);
extern void claim_batch_end(ClaimState *s, const ClaimedRun *runs, int done);
extern void claim_forget(ClaimState *s);
extern int64 claim_next_run_ms(ClaimState *s);
extern bool claim_one_queue(const ClaimState *s);

/* maintenance.c */
extern int64 next_due_ms(void);
extern int	promote_and_expire(void);

/* complete.c */
extern void complete_runs(ClaimedRun *runs, int n);

/* notify.c */
extern void notify_runs(int n, const char *const *ids, const char *const *tasks,
						const RunStatus *statuses);
extern void notify_send_committed(void);

/* execute.c */
extern void execute_run(ClaimedRun *run, MemoryContext cxt);
extern bool execute_as_owner(ClaimedRun *run, void (*fn) (ClaimedRun *run, void *arg),
							 void *arg, ErrorData **edata);
extern ClaimedRun *current_run(void);
extern const char *run_root(const ClaimedRun *run);
extern void worker_hold_cancels(void);
extern ClaimedRun *run_in_task(const char *function, const char *hint);

/* sql_task.c */
extern bool sql_task_call(Oid fn, Jsonb *payload, Datum *result, bool *isnull);

/* hooks.c */
extern void hooks_fire(ClaimedRun *run);
extern void hooks_fire_ended(const char *run_id);

/* crash.c */
extern void crash_recover(Oid dboid, int index);
extern void crash_note_run(const ClaimedRun *run);
extern void crash_signals_init(void);

/* lease.c: a lease's parts, the run, its attempt, its claim's time */
typedef struct Lease
{
	const char *text;
	char	   *run_id;
	int32		attempt;
	TimestampTz claimed_at;
} Lease;

extern char *lease_make(const char *id, int32 attempt, TimestampTz claimed_at);
extern bool lease_read(const char *text, Lease *l);
extern const char *lease_stale(const ClaimedRun *run, const Lease *l, bool canceled_ok);

/* external.c */
extern ClaimedRun *external_run_by_lease(const char *lease, MemoryContext cxt);
extern void external_notify_task(const char *task);

/* external_watch.c */
extern void external_claimer_register(void);
extern int	external_settle_lost(void);
extern TimestampTz external_notify_due(TimestampTz since);

/* concurrency.c */
extern uint64 concurrency_key_hash(const char *queue, const char *ckey);
extern bool concurrency_acquire(uint64 key, int limit);
extern void concurrency_release(void);
extern bool concurrency_held_last(void);
extern void concurrency_counts_ready(void);
extern bool concurrency_reserve(uint64 key, int limit);
extern void concurrency_release_at_commit(uint64 key);
extern void concurrency_forget_database(Oid dboid);

/* logs.c */
extern void logs_init(void);
extern void logs_run(const ClaimedRun *run, MemoryContext cxt);
extern void logs_worker_level(void);
extern void logs_flush(void);
extern void logs_note(const ClaimedRun *run, const char *level, const char *message);
extern void logs_reset(void);

/* waits.c */
typedef struct PendingToken
{
	char	   *id;
	TimestampTz timeout_at;
	bool		has_timeout;
} PendingToken;

extern bool wait_completed(ClaimedRun *run, int32 seq, const char *kind,
						   const char *target, Jsonb **result);
/* A wait call that suspends its run: what is recorded of it (waits.c) */
typedef struct WaitCall
{
	int32		seq;			/* its order in the execution; a checkpoint's: its step's */
	const char *kind;			/* 'time', 'run', 'batch' (children), 'token' */
	TimestampTz resume_at;		/* a time wait's end; DT_NOEND otherwise */
	struct BatchItems *children;	/* the runs it triggers and waits for */
	const char *token;			/* the wait token it waits on */
	const char *target;			/* what it waits for, compared on replay */
	const char *key;			/* a checkpoint's key (a track step's name), or NULL */
	Jsonb	   *state;			/* what the run carries past it, or NULL */
} WaitCall;

extern void wait_suspend(ClaimedRun *run, const WaitCall *call,
						 const char *what) pg_attribute_noreturn();
extern void waits_record(ClaimedRun *runs, int n);
extern int	waits_resume(void);

/* wait_time.c */
extern int	wait_time_resume(TimestampTz now);

/* wait_children.c */
extern void waits_create_children(ClaimedRun *run);
extern void waits_trigger_children(ClaimedRun *run);
extern void waits_children_done(ClaimedRun *runs, int n);
extern int	wait_children_resume(TimestampTz now);

/* tracks.c */
extern int	tracks_advance(Datum *run_ids, Datum *seqs, int n);

/* wait_tokens.c */
extern void waits_record_tokens(ClaimedRun *runs, int n);
extern int	waits_resume_tokens(void);

/* taskorch.c */
extern void require_arg(FunctionCallInfo fcinfo, int argno, const char *what, const char *hint);
extern void require_args(FunctionCallInfo fcinfo, int n, const char *what, const char *hint);
extern bool acts_for(Oid owner);
extern bool run_visible(Oid owner, Oid triggerer);
extern bool is_taskorch_admin(void);

/* What lock_name() serializes */
typedef enum TaskorchLockKind
{
	LOCK_IDEMPOTENCY_KEY = 1,
	LOCK_DEBOUNCE_KEY,
	LOCK_QUEUE_NAME,
	LOCK_BATCH_KEY,
	LOCK_SCHEDULE_KEY,
	LOCK_SLOT_COUNTS
} TaskorchLockKind;

/* lock class id of lock_name(): no catalog's (catalog OIDs are small) */
#define TASKORCH_LOCK_CLASSID ((Oid) 0x74726b00)

extern void lock_name(TaskorchLockKind kind, const char *name, size_t len);
extern void schema_older_than_library(void) pg_attribute_noreturn();

/* schema.c */
extern void schema_validate(Jsonb *schema, Jsonb *value, const char *what, const char *task);
extern void schema_check_definition(Jsonb *schema);

/* batch.c: where a batch's items come from */
typedef struct BatchItems
{
	const char *task;			/* the batch's task; NULL: each item names its own */
	Jsonb	   *items;			/* a JSON array of items, or */
	const char *query;			/* a query whose rows are items */
} BatchItems;

typedef void (*BatchItemFn) (const char *task, Jsonb *payload, Jsonb *options,
							 int index, void *arg);
extern int	batch_items_foreach(const BatchItems *src, BatchItemFn fn, void *arg);
extern void batch_items_check(const BatchItems *src);
extern Jsonb *batch_single_item(Jsonb *payload, Jsonb *options);

/* runs.c */
extern void decide_outcome(ClaimedRun *run);
extern bool is_failed_result(Jsonb *output);
extern Jsonb *result_failure(Jsonb *output);
extern Jsonb *error_to_jsonb(ErrorData *edata, const char *override_message);
extern void metadata_check(Jsonb *metadata);

/* Trigger options, as options.c merges them (times in ms, -1: not given) */
typedef struct TriggerOptions
{
	TimestampTz now;			/* the trigger's time */
	uint32		given;			/* bit per option already set */
	bool		has_delay;
	TimestampTz delay_until;
	int64		ttl_ms;
	char	   *idempotency_key;
	int64		idempotency_ttl_ms;
	char	   *queue;
	int32		queue_limit;	/* {"name", "concurrencyLimit"}: -1 not given, 0 none */
	char	   *concurrency_key;
	int32		priority;		/* seconds */
	int32		max_attempts;	/* 0: the task's */
	int32		max_duration_ms;
	List	   *tags;			/* of char * */
	Jsonb	   *metadata;
	char	   *debounce_key;	/* NULL: no debounce */
	int64		debounce_delay_ms;
	int64		debounce_max_delay_ms;	/* -1: none */
	bool		debounce_trailing;
	const char *batch_id;		/* set by batch_trigger() */
	int32		batch_index;
	const char *parent_run_id;	/* set for a child a wait created */
	int32		parent_wait_seq;
	const char *root_run_id;	/* the top of the tree it joins; NULL: that of the run
								 * triggering it, if any (create_run) */
} TriggerOptions;

/* options.c */
extern void trigger_options_init(TriggerOptions *o);
extern void trigger_options_args(TriggerOptions *o, FunctionCallInfo fcinfo, int first);
extern void trigger_options_jsonb(TriggerOptions *o, Jsonb *options, bool defaults_only);
extern void trigger_options_finish(TriggerOptions *o);
extern Datum trigger_options_tags(TriggerOptions *o);
extern void check_key(const char *option, const char *value, size_t len);

/* cron.c: a cron expression's sets of values (bit v: value v) */
typedef struct CronSpec
{
	uint64		seconds;
	uint64		minutes;
	uint32		hours;
	uint32		days;			/* of the month, 1..31 */
	uint16		months;			/* 1..12 */
	uint8		weekdays;		/* 0 Sunday .. 6 Saturday */
	bool		days_star;		/* the field starts with '*' (Vixie's rule) */
	bool		weekdays_star;
} CronSpec;

extern void cron_parse(const char *expr, CronSpec *c);
extern struct pg_tz *cron_timezone(const char *name);
extern bool cron_next(const CronSpec *c, struct pg_tz *tz, TimestampTz after, TimestampTz *next);
extern char *cron_describe(const CronSpec *c);

/* task_times.c: how long a task's runs take, per database */
extern Size task_times_shmem_size(void);
extern void task_times_shmem_startup(void);
extern int64 task_time_us(const char *task);
extern void task_time_note(const char *task, int64 us);

/* stats.c */
extern Size stats_shmem_size(void);
extern void stats_shmem_startup(void);
extern void stats_note(const ClaimedRun *runs, int n);
extern void stats_note_end(const char *task, const char *queue, RunStatus status);
extern void stats_count(void);
extern void stats_forget_database(Oid dboid);

/* retention.c */
extern int	retention_purge(bool *more);

/* schedules.c */
extern int	schedules_fire(bool *more);

/* idempotency.c */
extern char *idempotency_key_make(const char *name, const char *scope);
extern const char *idempotency_key_of_trigger(const char *key);
extern const char *idempotency_key_to_reset(const char *key, const char *scope);
extern List *tags_add(List *tags, const char *option, const char *tag);
extern List *tags_add_array(List *tags, const char *option, ArrayType *array);
extern Datum tags_to_array(List *tags);

/* duration.c */
extern bool try_input(Oid input, const char *s, Oid typioparam, Datum *value, char **why);
extern int64 duration_ms_from_text(const char *option, const char *s, bool allow_zero);
extern int64 duration_ms_from_jsonb(const char *option, JsonbValue *v, bool allow_zero);
extern int64 interval_to_ms(Interval *iv);
extern TimestampTz delay_from_text(const char *s, TimestampTz now);
extern char *iso_time(TimestampTz t);

/* manage.c */
extern bool run_held_by_batch(TransactionId xmax);

/* registry.c */
extern void check_name(const char *kind, const char *name);

/* queues.c */
extern void queue_check_trigger(const char *name);
extern void queue_set_limit_inline(const char *name, int32 limit);
extern void queue_check_register(const char *task, const char *name);

/* run_insert.c: a column of a new run, in its type (or as text for its input function) */
typedef struct RunColumn
{
	const char *name;
	Datum		value;
	bool		isnull;
	bool		as_text;		/* value is a C string */
} RunColumn;
extern Datum run_insert(const RunColumn *columns, int n);

/* role_ref.c */
extern Oid	role_ref_oid(Datum ref);
extern Datum taskorch_role_ref_from_oid(PG_FUNCTION_ARGS);
extern void task_owner_missing(const char *task) pg_attribute_noreturn();

/* trigger.c */
extern void taskorch_xact_callback_init(void);
extern TimestampTz trigger_now(void);
extern bool granted_to_user(Oid owner, ArrayType *triggerers);
extern void taskorch_requeued_at_commit(void);
extern void taskorch_wake_at_commit(void);
extern void lock_role_key(TaskorchLockKind kind, const char *task, const char *key);
extern void trigger_check_task(const char *task);
extern Datum create_run(const char *task, Jsonb *payload, TriggerOptions *o,
						const char *replayed_from);

/*
 * spi_util.c: our SQL statements, and their parameters and columns by name.
 *
 * A NamedPlan's parameters and the columns C reads are fields of two
 * structs of PlanValue, named like the SQL's ":name" parameters and its
 * column labels; a table of PlanField lists them (PLAN_PARAM, PLAN_COLUMN:
 * the name is the field's name).  When the plan is prepared, ":name" becomes "$n" and each
 * column's number is looked up once; a run of the plan then only copies
 * Datums.  Adding a parameter or a column touches its field, its table line
 * and the SQL, nowhere else.  A zeroed PlanValue is SQL NULL.
 */
typedef struct PlanValue
{
	Datum		datum;
	bool		present;		/* false: SQL NULL */
} PlanValue;

typedef struct PlanField
{
	const char *name;			/* ":name" in the SQL, or a column's label */
	Oid			type;			/* a parameter's type; unused for a column */
	size_t		offset;			/* of its PlanValue in the caller's struct */
} PlanField;

#define PLAN_PARAM(Struct, field, typoid) \
	{ #field, (typoid), offsetof(Struct, field) }
#define PLAN_COLUMN(Struct, field) \
	{ #field, InvalidOid, offsetof(Struct, field) }
/* in a NamedPlan's initializer: its tables of parameters and of columns */
#define PLAN_PARAMS(table)	.params = (table), .nparams = lengthof(table)
#define PLAN_COLUMNS(table)	.columns = (table), .ncolumns = lengthof(table)

#define TASKORCH_PLAN_MAX_FIELDS 40

/*
 * The shape a plan must keep whatever the statistics say: the runs table
 * churns faster than they follow (a burst into an empty table is planned
 * as if it were still empty).  spi_util.c sets the planner's enable_*
 * settings for it while it is planned and run.
 */
typedef enum PlanShape
{
	PLAN_ANY = 0,
	PLAN_INDEX_ORDER,			/* walk an index in its order: no sort, no bitmap or
								 * sequential scan (of its subqueries' tables either) */
	PLAN_KEY_LOOKUPS			/* from an array of keys, an index lookup per key */
} PlanShape;

/* a plan by name: initialize .sql and PLAN_PARAMS(...), PLAN_COLUMNS(...) */
typedef struct NamedPlan
{
	const char *sql;			/* parameters as :name */
	const PlanField *params;
	int			nparams;
	const PlanField *columns;	/* the columns C reads */
	int			ncolumns;
	PlanShape	shape;			/* what its plan must be, whatever the statistics */
	/* spi_util.c's, made when the plan is first prepared */
	char	   *numbered_sql;	/* sql with $n for :name */
	SPIPlanPtr	plan;			/* NULL: not prepared (again) yet */
	AttrNumber	colnos[TASKORCH_PLAN_MAX_FIELDS];	/* of columns[i] */
} NamedPlan;

/*
 * claimed_run.c: a claimed run's row, whole, and its ctid, selected from
 * taskorch.run r (the caller adds joins for its filters, and WHERE ...);
 * claim_read_run() takes it apart and adds what it needs of the run's
 * task and queue
 */
#define CLAIMED_RUN_SELECT "r AS run, r.ctid AS tid FROM taskorch.run r"
#define CLAIMED_RUN_NCOLUMNS 2
/* a claim's filter: the run's (queue, concurrency key) is none of :full_keys (text[]) */
#define CLAIM_KEY_NOT_FULL \
	"r.queue || E'\\x1f' || coalesce(r.concurrency_key, '') <> ALL (:full_keys)"
extern const PlanField claimed_run_columns[CLAIMED_RUN_NCOLUMNS];
extern void claim_read_run(NamedPlan *p, int row, ClaimedRun *run);
extern char *claim_full_key(const ClaimedRun *run);
extern PlanValue claim_full_keys(List *full_keys);

static inline PlanValue
pv_datum(Datum d)
{
	PlanValue	v = {d, true};

	return v;
}

/* SQL NULL */
#define PV_NULL ((PlanValue) {(Datum) 0, false})
#define pv_int4(i)			pv_datum(Int32GetDatum(i))
#define pv_int8(i)			pv_datum(Int64GetDatum(i))
#define pv_bool(b)			pv_datum(BoolGetDatum(b))
#define pv_oid(o)			pv_datum(ObjectIdGetDatum(o))
#define pv_timestamptz(t)	pv_datum(TimestampTzGetDatum(t))
/* NULL pointers give SQL NULL */
extern PlanValue pv_text(const char *s);
extern PlanValue pv_jsonb(Jsonb *j);
/* a column read: NULL for SQL NULL, else a copy in the current context */
extern char *pv_cstring(PlanValue v);
extern Jsonb *pv_jsonb_copy(PlanValue v);

/* the items of an array parameter (unnest() of one array per field) */
typedef struct PlanItems
{
	Datum	   *values;
	bool	   *nulls;			/* all false until set */
} PlanItems;

extern PlanItems plan_items_new(int n);
extern PlanValue plan_items_array(PlanItems items, int n, Oid elemtype);

extern int	taskorch_execute_args(NamedPlan *p, const void *args,
								  bool read_only, long count);
extern int	taskorch_execute_args_latest(NamedPlan *p, const void *args,
										 long count);
extern void taskorch_read_row(NamedPlan *p, int row, void *out);
extern void taskorch_deform(HeapTuple tup, TupleDesc desc, Datum **values, bool **nulls);
extern void taskorch_plans_forget(void);
extern int	pin_search_path(void);
extern void unpin_search_path(int nestlevel);
extern Oid	taskorch_run_relid(bool missing_ok);
extern Oid	taskorch_extension_owner(void);
extern Jsonb *jsonb_from_cstring(const char *s);

/* json_object.c: a flat JSON object built value by value (a NULL value leaves its key out) */
typedef struct JsonObject
{
	JsonbParseState *state;
} JsonObject;

extern void json_begin(JsonObject *o);
extern void json_string(JsonObject *o, const char *key, const char *value);
extern void json_int(JsonObject *o, const char *key, int64 value);
extern void json_jsonb(JsonObject *o, const char *key, Jsonb *value);
extern Jsonb *json_end(JsonObject *o);
extern JsonbValue jsonb_value(Jsonb *jb);
extern Jsonb *jsonb_without(Jsonb *options, const char *const *drop);
extern bool jsonb_whole_int4(JsonbValue *v, int32 *out);

#endif							/* TASKORCH_H */
