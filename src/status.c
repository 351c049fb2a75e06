/*-------------------------------------------------------------------------
 *
 * status.c
 *	  The run lifecycle: the statuses of a run (the C mirror of the SQL enum
 *	  taskorch.run_status, status.h) and the one table of the transitions
 *	  the engine makes, each with the module that may make it.  Every status
 *	  a module writes goes through run_transition() (or run_transitions()
 *	  for a statement that changes runs in several statuses), which refuses
 *	  a change that is not in the table: a status written by C code or by
 *	  a statement built from status.h's macros is one of the table's.
 *
 * The state machine is drawn in docs/runs.md, and printed from this table
 * by taskorch_internal.status_transitions() (the page's example checks the two
 * agree).  A run a worker executes is never written EXECUTING: the runs
 * view shows it for a QUEUED run a worker is executing (shmem.c), inside
 * the transaction that records the run's outcome.  An external run is:
 * it is EXECUTING in the table from its claim to its outcome (external.c).
 *
 * Tests: `statuses` (sql/statuses.sql) compares the C enum with
 * taskorch.run_status and run_status_finished() with taskorch.finished(),
 * and records every status change the regression suites make to check it
 * against this table.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(taskorch_statuses);
PG_FUNCTION_INFO_V1(taskorch_status_transitions);

static const char *const status_names[RUN_STATUS_COUNT] = {
#define RUN_STATUS_NAME(s) [RUN_##s] = #s,
	RUN_STATUS_LIST(RUN_STATUS_NAME)
#undef RUN_STATUS_NAME
};

/* each status's SQL_STATUS() (a status without one does not compile) */
static const char *const status_sql[RUN_STATUS_COUNT] = {
#define RUN_STATUS_SQL(s) [RUN_##s] = SQL_STATUS(s),
	RUN_STATUS_LIST(RUN_STATUS_SQL)
#undef RUN_STATUS_SQL
};

static const char *const module_names[RUN_MODULE_COUNT] = {
	[BY_TRIGGER] = "trigger",
	[BY_MAINTENANCE] = "maintenance",
	[BY_COMPLETION] = "completion",
	[BY_WAITS] = "waits",
	[BY_CRASH] = "crash",
	[BY_WORKER] = "worker",
	[BY_MANAGE] = "manage",
	[BY_REGISTRY] = "registry",
	[BY_EXTERNAL] = "external",
};

typedef struct RunTransitionRule
{
	int			from;			/* a RunStatus, or RUN_CREATED */
	RunStatus	to;
	RunModule	by;
	const char *why;
} RunTransitionRule;

/* Every status change the engine makes.  Keep docs/runs.md's drawing in step. */
static const RunTransitionRule transitions[] = {
	{RUN_CREATED, RUN_QUEUED, BY_TRIGGER, "triggered (also a replay, a hook, a wait's child)"},
	{RUN_CREATED, RUN_DELAYED, BY_TRIGGER, "triggered with a delay or a debounce key"},
	{RUN_DELAYED, RUN_DELAYED, BY_TRIGGER, "debounced again: due later"},
	{RUN_DELAYED, RUN_QUEUED, BY_TRIGGER, "debounced past its maxDelay: queued now"},
	{RUN_DELAYED, RUN_QUEUED, BY_MAINTENANCE, "its delay is over"},
	{RUN_QUEUED, RUN_EXPIRED, BY_MAINTENANCE, "not started within its ttl"},
	{RUN_QUEUED, RUN_COMPLETED, BY_COMPLETION, "the attempt returned"},
	{RUN_QUEUED, RUN_QUEUED, BY_COMPLETION, "the attempt failed, attempts are left: retry"},
	{RUN_QUEUED, RUN_FAILED, BY_COMPLETION, "failed for good (no attempt left, abort, task gone, replay mismatch)"},
	{RUN_QUEUED, RUN_TIMED_OUT, BY_COMPLETION, "the attempt ran past max_duration"},
	{RUN_QUEUED, RUN_CANCELED, BY_COMPLETION, "canceled while executing"},
	{RUN_QUEUED, RUN_EXPIRED, BY_COMPLETION, "claimed after its ttl ran out"},
	{RUN_QUEUED, RUN_WAITING, BY_COMPLETION, "the attempt stopped at a durable wait"},
	{RUN_WAITING, RUN_QUEUED, BY_WAITS, "its wait is over (time, children, token)"},
	{RUN_WAITING, RUN_COMPLETED, BY_WAITS, "a track's last step ended: the engine finished it"},
	{RUN_WAITING, RUN_FAILED, BY_WAITS, "a track's step failed and stopped it: the engine finished it"},
	{RUN_QUEUED, RUN_QUEUED, BY_CRASH, "its worker died during it, attempts are left"},
	{RUN_QUEUED, RUN_CRASHED, BY_CRASH, "its worker died during it, no attempt left"},
	{RUN_QUEUED, RUN_SYSTEM_FAILURE, BY_WORKER, "its outcome could not be recorded"},
	{RUN_DELAYED, RUN_CANCELED, BY_MANAGE, "cancel()"},
	{RUN_QUEUED, RUN_CANCELED, BY_MANAGE, "cancel()"},
	{RUN_WAITING, RUN_CANCELED, BY_MANAGE, "cancel()"},
	{RUN_DELAYED, RUN_DELAYED, BY_MANAGE, "reschedule()"},
	{RUN_QUEUED, RUN_EXECUTING, BY_EXTERNAL, "claimed by an external worker (claim_runs)"},
	{RUN_EXECUTING, RUN_QUEUED, BY_EXTERNAL, "released by its external worker unfinished: no attempt spent"},
	{RUN_EXECUTING, RUN_COMPLETED, BY_COMPLETION, "its external worker completed it"},
	{RUN_EXECUTING, RUN_QUEUED, BY_COMPLETION, "failed or lost (lease expired, connection ended), attempts are left: retry"},
	{RUN_EXECUTING, RUN_FAILED, BY_COMPLETION, "its external worker failed it for good"},
	{RUN_EXECUTING, RUN_TIMED_OUT, BY_COMPLETION, "executing past max_duration"},
	{RUN_EXECUTING, RUN_CRASHED, BY_COMPLETION, "lost with no attempt left"},
	{RUN_EXECUTING, RUN_CANCELED, BY_MANAGE, "cancel() of an external run"},
	{RUN_DELAYED, RUN_CANCELED, BY_REGISTRY, "its task was unregistered"},
	{RUN_QUEUED, RUN_CANCELED, BY_REGISTRY, "its task was unregistered"},
};

/* The SQL label of a status */
const char *
run_status_name(RunStatus status)
{
	if ((int) status < 0 || status >= RUN_STATUS_COUNT)
		elog(ERROR, "taskorch: run status %d out of range", (int) status);
	return status_names[status];
}

/* The status whose SQL label is `name` (as read from taskorch.run) */
RunStatus
run_status_parse(const char *name)
{
	for (int s = 0; s < RUN_STATUS_COUNT; s++)
		if (strcmp(status_names[s], name) == 0)
			return (RunStatus) s;
	elog(ERROR, "taskorch: unknown run status \"%s\"", name);
	pg_unreachable();
}

/* A run in this status has finished: it never changes again */
bool
run_status_finished(RunStatus status)
{
	return (RUN_SET_UNFINISHED & ((uint32) 1 << status)) == 0;
}

/*
 * The status change from -> to, by module `by`: returns `to` when the
 * table has it, else raises an internal error (a module that writes a
 * status the lifecycle does not allow is a bug).
 */
RunStatus
run_transition(int from, RunStatus to, RunModule by)
{
	for (size_t i = 0; i < lengthof(transitions); i++)
		if (transitions[i].from == from && transitions[i].to == to &&
			transitions[i].by == by)
			return to;
	elog(ERROR, "taskorch: %s may not change a run from %s to %s",
		 module_names[by], from == RUN_CREATED ? "(new)" : run_status_name(from),
		 run_status_name(to));
	pg_unreachable();
}

/* The same for a statement that moves runs in any status of from_set to `to` */
void
run_transitions(uint32 from_set, RunStatus to, RunModule by)
{
	for (int s = 0; s < RUN_STATUS_COUNT; s++)
		if (from_set & ((uint32) 1 << s))
			(void) run_transition(s, to, by);
}

/*
 * SQL: taskorch_internal.statuses() -> (status, sql, finished): the C enum in
 * order, the SQL text its statements use for each, and whether it is a
 * finished status, to compare with taskorch.run_status.
 */
Datum
taskorch_statuses(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int s = 0; s < RUN_STATUS_COUNT; s++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		values[0] = CStringGetTextDatum(status_names[s]);
		values[1] = CStringGetTextDatum(status_sql[s]);
		values[2] = BoolGetDatum(run_status_finished((RunStatus) s));
		values[3] = BoolGetDatum((RUN_SET_FAILED & ((uint32) 1 << s)) != 0);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * SQL: taskorch_internal.status_transitions() -> (from_status, to_status, module,
 * why): the transition table, in its order; from_status NULL for a run
 * being created.
 */
Datum
taskorch_status_transitions(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (size_t i = 0; i < lengthof(transitions); i++)
	{
		const RunTransitionRule *t = &transitions[i];
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		nulls[0] = t->from == RUN_CREATED;
		values[0] = nulls[0] ? (Datum) 0 : CStringGetTextDatum(status_names[t->from]);
		values[1] = CStringGetTextDatum(status_names[t->to]);
		values[2] = CStringGetTextDatum(module_names[t->by]);
		values[3] = CStringGetTextDatum(t->why);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
