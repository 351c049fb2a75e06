/*-------------------------------------------------------------------------
 *
 * run_insert.c
 *	  The row of a new run, inserted without a plan: the columns a trigger
 *	  sets, the others from their defaults, through the executor's simple
 *	  insert (as logical replication applies a row): NOT NULL and CHECK
 *	  constraints, unique indexes and row triggers as for an INSERT, under
 *	  the extension owner's identity like the statements of spi_util.c.
 *	  A new connection's first trigger would otherwise parse and plan an
 *	  INSERT of 27 columns, and every trigger start an executor for it.
 *
 * Invariants: taskorch.run's defaults are defined once, in its CREATE
 * TABLE; each expression is prepared once per backend, when a trigger
 * first leaves its column out, and again after an invalidation of the
 * table's relation cache entry (ALTER TABLE).  Statement-level triggers
 * on taskorch.run do not fire (as for logical replication's inserts).
 *
 * Transaction: the caller's; the insert runs as SPI runs a statement that
 * writes: the command counter advanced before it, under a snapshot of its
 * own.  Memory: the caller's context (the returned id); the prepared
 * defaults in a context of their own.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "access/table.h"
#include "access/xact.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_relation.h"
#include "rewrite/rewriteHandler.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

/*
 * The defaults of taskorch.run for relid, by attribute, each prepared the
 * first time a trigger leaves its column out (most columns are always
 * given: their defaults are never planned)
 */
static MemoryContext defaults_cxt = NULL;
static ExprState **defaults = NULL;
static bool *defaults_prepared = NULL;
static Oid	defaults_relid = InvalidOid;
static bool defaults_valid = false;

static void
defaults_invalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == defaults_relid)
		defaults_valid = false;
}

/* the default of rel's attribute i (0-based), prepared once; NULL: none */
static ExprState *
column_default(Relation rel, int i)
{
	static bool callback = false;
	MemoryContext old;

	if (!defaults_valid || defaults_relid != RelationGetRelid(rel))
	{
		if (!callback)
		{
			CacheRegisterRelcacheCallback(defaults_invalidate, (Datum) 0);
			callback = true;
		}
		if (defaults_cxt)
			MemoryContextDelete(defaults_cxt);
		defaults_cxt = AllocSetContextCreate(TopMemoryContext, "taskorch run defaults",
											 ALLOCSET_SMALL_SIZES);
		defaults = MemoryContextAllocZero(defaults_cxt,
										  sizeof(ExprState *) * RelationGetNumberOfAttributes(rel));
		defaults_prepared = MemoryContextAllocZero(defaults_cxt,
												   sizeof(bool) * RelationGetNumberOfAttributes(rel));
		defaults_relid = RelationGetRelid(rel);
		defaults_valid = true;
	}
	if (!defaults_prepared[i])
	{
		Node	   *d = NULL;

		old = MemoryContextSwitchTo(defaults_cxt);
		if (!TupleDescAttr(RelationGetDescr(rel), i)->attisdropped)
			d = build_column_default(rel, i + 1);
		if (d)
			defaults[i] = ExecInitExpr(expression_planner((Expr *) d), NULL);
		MemoryContextSwitchTo(old);
		defaults_prepared[i] = true;
	}
	return defaults[i];
}

/*
 * Insert the run whose columns[0..n) are given (by name, in the column's
 * type, or as text for its input function); the other columns take their
 * defaults.  Returns the new run's id.
 */
Datum
run_insert(const RunColumn *columns, int n)
{
	Relation	rel;
	TupleDesc	desc;
	EState	   *estate;
	ResultRelInfo *rri;
	RangeTblEntry *rte;
	TupleTableSlot *slot;
	ExprContext *econtext;
	bool	   *given;
	Datum		id;
	bool		id_isnull;
	Oid			save_uid;
	int			save_sec;

	/* what the executor checks of a statement that writes (a standby is read-only) */
	PreventCommandIfReadOnly("taskorch.trigger()");
	PreventCommandIfParallelMode("taskorch.trigger()");
	/* as SPI runs a statement that writes: a snapshot of its own, a new command id */
	PushActiveSnapshot(GetTransactionSnapshot());
	CommandCounterIncrement();
	UpdateActiveSnapshotCommandId();
	GetUserIdAndSecContext(&save_uid, &save_sec);
	SetUserIdAndSecContext(taskorch_extension_owner(),
						   save_sec | SECURITY_LOCAL_USERID_CHANGE);
	rel = table_open(taskorch_run_relid(false), RowExclusiveLock);
	desc = RelationGetDescr(rel);

	estate = CreateExecutorState();
	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(rel);
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	ExecInitRangeTable(estate, list_make1(rte));
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	/* where the executor looks for the relation of an AFTER trigger's event */
	estate->es_opened_result_relations = list_make1(rri);
	estate->es_output_cid = GetCurrentCommandId(true);
	ExecOpenIndices(rri, false);
	econtext = GetPerTupleExprContext(estate);

	slot = ExecInitExtraTupleSlot(estate, desc, &TTSOpsVirtual);
	ExecClearTuple(slot);
	given = palloc0(sizeof(bool) * desc->natts);
	for (int k = 0; k < n; k++)
	{
		AttrNumber	attnum = attnameAttNum(rel, columns[k].name, false);
		Form_pg_attribute att;

		if (attnum <= 0)
			elog(ERROR, "taskorch: column \"%s\" of taskorch.run is missing", columns[k].name);
		att = TupleDescAttr(desc, attnum - 1);
		given[attnum - 1] = true;
		slot->tts_isnull[attnum - 1] = columns[k].isnull;
		if (columns[k].isnull)
			slot->tts_values[attnum - 1] = (Datum) 0;
		else if (columns[k].as_text)
		{
			Oid			input;
			Oid			ioparam;

			getTypeInputInfo(att->atttypid, &input, &ioparam);
			slot->tts_values[attnum - 1] =
				OidInputFunctionCall(input, DatumGetCString(columns[k].value), ioparam, att->atttypmod);
		}
		else
			slot->tts_values[attnum - 1] = columns[k].value;
	}
	for (int i = 0; i < desc->natts; i++)
	{
		ExprState  *d;

		if (given[i])
			continue;
		slot->tts_isnull[i] = true;
		slot->tts_values[i] = (Datum) 0;
		if ((d = column_default(rel, i)) != NULL)
			slot->tts_values[i] = ExecEvalExprSwitchContext(d, econtext, &slot->tts_isnull[i]);
	}
	ExecStoreVirtualTuple(slot);

	AfterTriggerBeginQuery();
	ExecSimpleRelationInsert(rri, estate, slot);
	AfterTriggerEndQuery(estate);
	id = slot_getattr(slot, attnameAttNum(rel, "id", false), &id_isnull);
	id = PointerGetDatum(DatumGetTextPCopy(id));	/* the executor's memory goes */

	ExecCloseResultRelations(estate);
	ExecCloseRangeTableRelations(estate);
	ExecResetTupleTable(estate->es_tupleTable, false);
	FreeExecutorState(estate);
	table_close(rel, NoLock);
	SetUserIdAndSecContext(save_uid, save_sec);
	PopActiveSnapshot();
	return id;
}
