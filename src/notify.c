/*-------------------------------------------------------------------------
 *
 * notify.c
 *	  The notifications of runs' outcomes to LISTENers on NOTIFY_CHANNEL
 *	  (taskorch_runs): the one builder of their payload, and when they
 *	  are sent.
 *
 * A session's notification (a cancel) is sent at its transaction's
 * commit, as NOTIFY is.  A worker's (a batch's outcomes) is sent after
 * the batch commits, in a transaction of its own that writes nothing else
 * (so its commit waits for no disk and no standby).  PostgreSQL
 * serializes the commits of all transactions that notify, in every
 * database: a lock on "database 0" is held from the notification's
 * queueing to the end of the commit, WAL flush and synchronous standbys
 * included.  Batches that notified at their own commit therefore flushed
 * one after the other instead of together, waited for any session's
 * notifying commit (one waiting for a standby held them all), and could
 * not commit at all once the notification queue was full (a LISTENer
 * idle in a transaction holds it back).  A crash between the two commits
 * loses the notification, as a crash loses any not yet delivered;
 * LISTENers take it as a hint and read the runs for what changed.
 *
 * Invariants: a worker's notification is sent only if the transaction
 * that noted it committed (an xact callback drops those of a transaction
 * that aborts), and only by notify_send_committed(), outside any
 * transaction; one noted inside a subtransaction (user code that
 * completes a run) is sent at commit like a session's, as its
 * subtransaction may still roll back.  Memory: the payloads waiting are
 * in TopMemoryContext, freed when sent or dropped.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "access/xact.h"
#include "commands/async.h"
#include "lib/stringinfo.h"
#include "utils/json.h"
#include "utils/memutils.h"

static List *noted = NIL;		/* by the current transaction: sent if it commits */
static List *committed = NIL;	/* by transactions that committed: to send */

/*
 * {"runs": [{"id", "task", "status"}, ...]}, cut short (with "more":
 * count) to fit the notification size limit.  The cut falls between
 * whole entries, never inside a string, so the payload is valid JSON in
 * any encoding; an entry is small (a run id is "run_<n>", a task id at
 * most 128 bytes, check_name()), so the last one added still fits in the
 * 8000 bytes NOTIFY allows, above NOTIFY_PAYLOAD_BUDGET.
 */
static char *
runs_payload(int n, const char *const *ids, const char *const *tasks, const RunStatus *statuses)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"runs\": [");
	for (i = 0; i < n && buf.len < NOTIFY_PAYLOAD_BUDGET; i++)
	{
		if (i > 0)
			appendStringInfoString(&buf, ", ");
		appendStringInfoString(&buf, "{\"id\": ");
		escape_json(&buf, ids[i]);
		appendStringInfoString(&buf, ", \"task\": ");
		escape_json(&buf, tasks[i]);
		appendStringInfo(&buf, ", \"status\": \"%s\"}", run_status_name(statuses[i]));
	}
	appendStringInfoChar(&buf, ']');
	if (i < n)
		appendStringInfo(&buf, ", \"more\": %d", n - i);
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

static void
notify_xact_callback(XactEvent event, void *arg)
{
	if (noted == NIL)
		return;
	if (event == XACT_EVENT_COMMIT)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		committed = list_concat(committed, noted);
		MemoryContextSwitchTo(old);
		list_free(noted);
		noted = NIL;
	}
	else if (event == XACT_EVENT_ABORT)
	{
		list_free_deep(noted);
		noted = NIL;
	}
}

/*
 * Tell LISTENers that runs changed: in a worker's top-level transaction
 * once it committed (notify_send_committed()), anywhere else at the
 * current transaction's commit.
 */
void
notify_runs(int n, const char *const *ids, const char *const *tasks, const RunStatus *statuses)
{
	static bool callback = false;
	char	   *payload;
	MemoryContext old;

	if (MySlot < 0 || IsSubTransaction())
	{
		Async_Notify(NOTIFY_CHANNEL, runs_payload(n, ids, tasks, statuses));
		return;
	}
	if (!callback)
	{
		RegisterXactCallback(notify_xact_callback, NULL);
		callback = true;
	}
	old = MemoryContextSwitchTo(TopMemoryContext);
	payload = runs_payload(n, ids, tasks, statuses);
	noted = lappend(noted, payload);
	MemoryContextSwitchTo(old);
}

/*
 * Send what committed transactions of this worker noted, in a transaction
 * of its own; called between transactions.  A failure to send (the
 * notification queue full) is reported and drops them; the worker goes on.
 */
void
notify_send_committed(void)
{
	List	   *sending = committed;
	MemoryContext cxt = CurrentMemoryContext;
	ListCell   *lc;

	if (sending == NIL)
		return;
	committed = NIL;
	PG_TRY();
	{
		StartTransactionCommand();
		foreach(lc, sending)
			Async_Notify(NOTIFY_CHANNEL, (const char *) lfirst(lc));
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		worker_hold_cancels();	/* the ERROR reset the holdoff count (execute.c) */
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	list_free_deep(sending);
}
