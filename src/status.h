/*-------------------------------------------------------------------------
 *
 * status.h
 *	  The statuses of a run, as C sees them (status.c owns them): the enum
 *	  that mirrors the SQL type taskorch.run_status, and the SQL text of a
 *	  status or a set of statuses for the statements of other files.  No
 *	  other file spells a status: C code names RUN_<STATUS>, SQL statements
 *	  embedded in C use SQL_STATUS(<STATUS>) or a set below.
 *
 * Invariants (checked by the regression test `statuses`):
 *	  - RUN_STATUS_LIST is taskorch.run_status's labels, in its order
 *	    (sql/parts/schema/statuses.sql);
 *	  - run_status_finished() agrees with taskorch.finished();
 *	  - every status change the engine makes is a row of status.c's
 *	    transition table, which docs/runs.md draws.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TASKORCH_STATUS_H
#define TASKORCH_STATUS_H

/* taskorch.run_status's labels, in the SQL enum's order */
#define RUN_STATUS_LIST(X) \
	X(DELAYED) X(QUEUED) X(EXECUTING) X(WAITING) \
	X(COMPLETED) X(FAILED) X(CANCELED) X(EXPIRED) X(TIMED_OUT) X(CRASHED) \
	X(SYSTEM_FAILURE)

typedef enum RunStatus
{
#define RUN_STATUS_ENUM(s) RUN_##s,
	RUN_STATUS_LIST(RUN_STATUS_ENUM)
#undef RUN_STATUS_ENUM
	RUN_STATUS_COUNT
} RunStatus;

/* the "from" of a transition that creates the run */
#define RUN_CREATED			(-1)

/* A status in a set of statuses (a bit mask) */
#define RUN_SET(s)			((uint32) 1 << (RUN_##s))

/* The unfinished statuses: the complement of taskorch.finished() */
#define RUN_SET_UNFINISHED	(RUN_SET(DELAYED) | RUN_SET(QUEUED) | RUN_SET(EXECUTING) | RUN_SET(WAITING))

/* The failures, taskorch.failed(): a task's on_failure hook fires for them */
#define RUN_SET_FAILED		(RUN_SET(FAILED) | RUN_SET(TIMED_OUT) | RUN_SET(CRASHED) | \
							 RUN_SET(SYSTEM_FAILURE))

/*
 * The SQL literal of a status, for statements: SQL_STATUS(QUEUED) is
 * "'QUEUED'" (untyped, as the partial indexes' predicates spell it, so that
 * the planner matches them; cast it where the type is not inferred).  A
 * name that is not a status does not compile.
 */
#define SQL_STATUS(s)		SQL_STATUS_##s
#define SQL_STATUS_DELAYED			"'DELAYED'"
#define SQL_STATUS_QUEUED			"'QUEUED'"
#define SQL_STATUS_EXECUTING		"'EXECUTING'"
#define SQL_STATUS_WAITING			"'WAITING'"
#define SQL_STATUS_COMPLETED		"'COMPLETED'"
#define SQL_STATUS_FAILED			"'FAILED'"
#define SQL_STATUS_CANCELED			"'CANCELED'"
#define SQL_STATUS_EXPIRED			"'EXPIRED'"
#define SQL_STATUS_TIMED_OUT		"'TIMED_OUT'"
#define SQL_STATUS_CRASHED			"'CRASHED'"
#define SQL_STATUS_SYSTEM_FAILURE	"'SYSTEM_FAILURE'"

/* The same, typed, where SQL cannot infer the type (a CASE's branches) */
#define SQL_STATUS_TYPED(s)	SQL_STATUS(s) "::taskorch.run_status"

/*
 * status IN SQL_UNFINISHED: a run that has not finished.  Written as
 * run_waited_idx's predicate is (sql/parts/schema/waits.sql), so that the
 * planner matches that index.
 */
#define SQL_UNFINISHED \
	"(" SQL_STATUS(DELAYED) ", " SQL_STATUS(QUEUED) ", " \
	SQL_STATUS(EXECUTING) ", " SQL_STATUS(WAITING) ")"

/*
 * status IN SQL_CANCELABLE: a run cancel() cancels in the caller's
 * transaction (EXECUTING: an external run; its worker learns it at its
 * next heartbeat)
 */
#define SQL_CANCELABLE \
	"(" SQL_STATUS(DELAYED) ", " SQL_STATUS(QUEUED) ", " SQL_STATUS(WAITING) ", " \
	SQL_STATUS(EXECUTING) ")"
#define RUN_SET_CANCELABLE	(RUN_SET(DELAYED) | RUN_SET(QUEUED) | RUN_SET(WAITING) | \
							 RUN_SET(EXECUTING))

/* status IN SQL_NOT_STARTED: a run unregister_task() cancels */
#define SQL_NOT_STARTED \
	"(" SQL_STATUS(DELAYED) ", " SQL_STATUS(QUEUED) ")"
#define RUN_SET_NOT_STARTED	(RUN_SET(DELAYED) | RUN_SET(QUEUED))

/*
 * Who changes a run's status: each module may make only its rows of the
 * transition table (status.c).
 */
typedef enum RunModule
{
	BY_TRIGGER,					/* trigger.c: new runs, debounced runs */
	BY_MAINTENANCE,				/* maintenance.c: delays over, ttls over */
	BY_COMPLETION,				/* complete.c, with runs.c: a batch's outcomes */
	BY_WAITS,					/* wait_time.c, wait_children.c, wait_tokens.c */
	BY_CRASH,					/* crash.c: a run whose worker died */
	BY_WORKER,					/* worker.c: a batch that failed outside its task */
	BY_MANAGE,					/* manage.c: cancel(), reschedule() */
	BY_REGISTRY,				/* registry.c: unregister_task() */
	BY_EXTERNAL,				/* external.c: claims and releases by external workers */
	RUN_MODULE_COUNT
} RunModule;

extern const char *run_status_name(RunStatus status);
extern RunStatus run_status_parse(const char *name);
extern bool run_status_finished(RunStatus status);
extern RunStatus run_transition(int from, RunStatus to, RunModule by);
extern void run_transitions(uint32 from_set, RunStatus to, RunModule by);

#endif							/* TASKORCH_STATUS_H */
