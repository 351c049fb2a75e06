/*-------------------------------------------------------------------------
 *
 * crash.c
 *	  Crash accounting: a run whose execution kills its worker process
 *	  (a segfault in C task code, the OOM killer, kill -9, an immediate
 *	  shutdown) is charged a CRASHED attempt, so a run that crashes the
 *	  server every time ends CRASHED instead of being retried forever.
 *
 * A crash takes the batch's transaction with it, so the attempt cannot be
 * recorded in the database when it happens.  Instead each worker keeps a
 * tiny file, $PGDATA/pg_taskorch/worker.<dboid>.<index>, mapped into
 * memory: the run being executed is written there before its function is
 * called and cleared after, which costs a memory store, not a system call.
 * A process that dies mid-call leaves the run id behind in the page cache
 * (it survives the process, not an operating system crash).  When the
 * worker starts again it charges that run one attempt: QUEUED again after
 * the task's minimum retry delay, or CRASHED when no attempt is left.
 *
 * How a worker exits while executing user code decides whether the run is
 * to blame:
 *	- killed (SIGSEGV in C task code, the OOM killer, kill -9): the note is
 *	  left behind, the run is charged;
 *	- terminated (FATAL) by its own code or by a role's
 *	  pg_terminate_backend(): the exit callback keeps the note, the run is
 *	  charged;
 *	- stopped on purpose (SIGTERM from the postmaster, the launcher, or a
 *	  backend pausing the database for DROP DATABASE / DROP EXTENSION):
 *	  the file is removed, nothing is charged;
 *	- stopped because another process crashed, or by an immediate shutdown
 *	  (SIGQUIT from the postmaster): the note is cleared before the process
 *	  exits, nothing is charged.  The run's batch was rolled back; it runs
 *	  again.
 * A worker that exits while executing nothing removes its file.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"

#define CRASH_DIR "pg_taskorch"
#define CRASH_MAGIC 0x74616b32	/* "tak2" */

typedef struct CrashNote
{
	uint32		magic;
	Oid			dboid;
	int32		attempts;		/* attempts finished before this one */
	bool		terminated;		/* exited (FATAL), rather than killed */
	char		run_id[32];		/* empty: not executing */
} CrashNote;

static CrashNote *note = NULL;
static char crash_path[MAXPGPATH];
static volatile pid_t stop_sender = 0;	/* who sent the first SIGTERM */

typedef struct CrashedArgs
{
	PlanValue	id;
	PlanValue	attempts;		/* attempts the run had when it was claimed */
	PlanValue	error;
} CrashedArgs;

/* the run charged, for taskorch.stats (stats.c) */
typedef struct CrashedRow
{
	PlanValue	task_id;
	PlanValue	queue;
	PlanValue	status;
} CrashedRow;

static const PlanField crashed_columns[] = {
	PLAN_COLUMN(CrashedRow, task_id),
	PLAN_COLUMN(CrashedRow, queue),
	PLAN_COLUMN(CrashedRow, status),
};

static const PlanField crashed_params[] = {
	PLAN_PARAM(CrashedArgs, id, TEXTOID),
	PLAN_PARAM(CrashedArgs, attempts, INT4OID),
	PLAN_PARAM(CrashedArgs, error, JSONBOID),
};
static NamedPlan crashed_plan = {
	.sql = "WITH r AS ("
	"  UPDATE taskorch.run r"
	"     SET attempts = r.attempts + 1, error = :error, updated_at = now(),"
	"         status = CASE WHEN r.attempts + 1 >= r.max_attempts"
	"                       THEN " SQL_STATUS_TYPED(CRASHED) " ELSE " SQL_STATUS(QUEUED) " END,"
	"         finished_at = CASE WHEN r.attempts + 1 >= r.max_attempts THEN now() END,"
	"         run_at = now() + make_interval(secs => coalesce("
	"             (SELECT t.retry_min_ms FROM taskorch.task t WHERE t.id = r.task_id), 0) / 1000.0)"
	"   WHERE r.id = :id AND r.attempts = :attempts AND r.status = " SQL_STATUS(QUEUED)
	"  RETURNING r.id, r.attempts, r.task_id, r.queue, r.status::text AS status),"
	" a AS (INSERT INTO taskorch.attempt (run_id, number, status, error, started_at, finished_at)"
	"  SELECT id, attempts, " SQL_STATUS(CRASHED) ", :error, now(), now() FROM r)"
	" SELECT task_id, queue, status FROM r",
	PLAN_PARAMS(crashed_params), PLAN_COLUMNS(crashed_columns)
};

static void
crash_file_exit(int code, Datum arg)
{
	if (note == NULL)
		return;
	if (note->run_id[0] != '\0' && !taskorch_stop_requested_by(stop_sender))
	{
		note->terminated = true;	/* kept: charged when the worker starts again */
		return;
	}
	(void) unlink(crash_path);
}

/* SIGTERM: remember the sender (is the stop deliberate?), then die(). */
static void
crash_sigterm(int signo, siginfo_t *info, void *context)
{
	if (stop_sender == 0 && info != NULL)
		stop_sender = info->si_pid;
	die(signo);
}

/*
 * SIGQUIT: the postmaster stops every process at once (another process
 * crashed, or an immediate shutdown).  The run executing here is not to
 * blame: clear the note, then exit as PostgreSQL's own handler does.
 */
static void
crash_sigquit(SIGNAL_ARGS)
{
	if (note)
		note->run_id[0] = '\0';
	_exit(2);
}

/* A worker's SIGTERM and SIGQUIT handlers (before signals are unblocked). */
void
crash_signals_init(void)
{
	struct sigaction act;

	memset(&act, 0, sizeof(act));
	act.sa_sigaction = crash_sigterm;
	sigemptyset(&act.sa_mask);
	act.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGTERM, &act, NULL);
	pqsignal(SIGQUIT, crash_sigquit);
}

/*
 * Map this worker's note, creating it if needed.  Returns the run left in
 * it by a previous process that died mid-call (palloc'd), or NULL.
 */
static char *
crash_file_open(Oid dboid, int index, int32 *attempts, bool *terminated)
{
	int			fd;
	char	   *left = NULL;

	(void) MakePGDirectory(CRASH_DIR);
	snprintf(crash_path, sizeof(crash_path), CRASH_DIR "/worker.%u.%d", dboid, index);
	fd = OpenTransientFile(crash_path, O_RDWR | O_CREAT | PG_BINARY);
	if (fd < 0 || ftruncate(fd, sizeof(CrashNote)) != 0)
		ereport(ERROR,
				errcode_for_file_access(),
				errmsg("could not open file \"%s\": %m", crash_path));
	note = mmap(NULL, sizeof(CrashNote), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CloseTransientFile(fd);
	if (note == MAP_FAILED)
	{
		note = NULL;
		ereport(ERROR,
				errcode_for_file_access(),
				errmsg("could not map file \"%s\": %m", crash_path));
	}
	if (note->magic == CRASH_MAGIC && note->dboid == dboid && note->run_id[0] != '\0')
	{
		note->run_id[sizeof(note->run_id) - 1] = '\0';
		left = pstrdup(note->run_id);
		*attempts = note->attempts;
		*terminated = note->terminated;
	}
	memset(note, 0, sizeof(CrashNote));
	note->magic = CRASH_MAGIC;
	note->dboid = dboid;
	before_shmem_exit(crash_file_exit, (Datum) 0);
	return left;
}

/* Charge a crashed attempt to the run (in the current transaction). */
static void
charge_crash(const char *run_id, int32 attempts, bool terminated)
{
	CrashedArgs args;

	args.id = pv_text(run_id);
	args.attempts = pv_int4(attempts);
	args.error = pv_jsonb(jsonb_from_cstring(terminated ?
		"{\"message\": \"the worker process executing this run was terminated\","
		" \"name\": \"CrashedError\"}" :
		"{\"message\": \"the worker process executing this run exited unexpectedly\","
		" \"name\": \"CrashedError\"}"));
	SPI_connect();
	(void) run_transition(RUN_QUEUED, RUN_QUEUED, BY_CRASH);
	(void) run_transition(RUN_QUEUED, RUN_CRASHED, BY_CRASH);
	if (taskorch_execute_args(&crashed_plan, &args, false, 0) > 0)
	{
		CrashedRow	row;

		taskorch_read_row(&crashed_plan, 0, &row);
		if (run_status_parse(TextDatumGetCString(row.status.datum)) == RUN_CRASHED)
			stats_note_end(TextDatumGetCString(row.task_id.datum),
						   TextDatumGetCString(row.queue.datum), RUN_CRASHED);
		ereport(LOG,
				errmsg("taskorch run %s was executing when its worker %s; charged a %s attempt",
					   run_id, terminated ? "was terminated" : "died",
					   run_status_name(RUN_CRASHED)));
	}
	SPI_finish();
	hooks_fire_ended(run_id);	/* if that was its last attempt */
}

/*
 * At worker start, inside a transaction: set up this worker's note and
 * charge the run a previous process died executing, if any.
 */
void
crash_recover(Oid dboid, int index)
{
	int32		attempts = 0;
	bool		terminated = false;
	char	   *left = crash_file_open(dboid, index, &attempts, &terminated);

	if (left)
		charge_crash(left, attempts, terminated);
}

/* The worker is about to call the run's function (NULL: it returned). */
void
crash_note_run(const ClaimedRun *run)
{
	if (note == NULL)
		return;
	if (run == NULL)
	{
		note->run_id[0] = '\0';
		return;
	}
	note->attempts = run->attempts;
	note->terminated = false;
	strlcpy(note->run_id, run->id, sizeof(note->run_id));
}
