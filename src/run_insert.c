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
 *	  Of the table's indexes, only those the row enters are opened (most
 *	  are partial, for runs in some status or with some option).
 *
 * Invariants: taskorch.run's defaults are defined once, in its CREATE
 * TABLE; each expression is prepared once per backend, when a trigger
 * first leaves its column out, and again after an invalidation of the
 * table's relation cache entry (ALTER TABLE, CREATE or DROP INDEX), as are
 * the predicates of its partial indexes.  The row enters exactly the
 * indexes an INSERT would put it in (test indexes checks each with
 * amcheck).  Statement-level triggers on taskorch.run do not fire (as for
 * logical replication's inserts).
 *
 * Transaction: the caller's; the insert runs as SPI runs a statement that
 * writes: the command counter advanced before it, under a snapshot of its
 * own.  Memory: the caller's context (the returned id); the prepared
 * defaults and predicates in a context of their own.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_index.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_relation.h"
#include "rewrite/rewriteHandler.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

/*
 * What this backend prepared of taskorch.run (relid), in a context of its
 * own, until an invalidation of the table's relation cache entry: the
 * defaults, by attribute, each prepared the first time a trigger leaves its
 * column out (most columns are always given: their defaults are never
 * planned); and the predicates of its partial indexes, read from pg_index
 * in one scan.
 */
typedef struct RunIndex
{
	Oid			oid;
	ExprState  *predicate;		/* NULL: not a partial index */
} RunIndex;

static MemoryContext prepared_cxt = NULL;
static Oid	prepared_relid = InvalidOid;
static bool prepared_valid = false;
static ExprState **defaults = NULL;
static bool *defaults_prepared = NULL;
static RunIndex *indexes = NULL;	/* nindexes of them, read_indexes() */
static int	nindexes = 0;

static void
prepared_invalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == prepared_relid)
		prepared_valid = false;
}

/* Start over what is prepared, unless it is rel's and still valid */
static void
prepared_check(Relation rel)
{
	static bool callback = false;

	if (prepared_valid && prepared_relid == RelationGetRelid(rel))
		return;
	if (!callback)
	{
		CacheRegisterRelcacheCallback(prepared_invalidate, (Datum) 0);
		callback = true;
	}
	if (prepared_cxt)
		MemoryContextDelete(prepared_cxt);
	prepared_cxt = AllocSetContextCreate(TopMemoryContext, "taskorch run inserts",
										 ALLOCSET_SMALL_SIZES);
	defaults = MemoryContextAllocZero(prepared_cxt,
									  sizeof(ExprState *) * RelationGetNumberOfAttributes(rel));
	defaults_prepared = MemoryContextAllocZero(prepared_cxt,
											   sizeof(bool) * RelationGetNumberOfAttributes(rel));
	indexes = NULL;
	nindexes = 0;
	prepared_relid = RelationGetRelid(rel);
	prepared_valid = true;
}

/* the default of rel's attribute i (0-based), prepared once; NULL: none */
static ExprState *
column_default(Relation rel, int i)
{
	prepared_check(rel);
	if (!defaults_prepared[i])
	{
		MemoryContext old = MemoryContextSwitchTo(prepared_cxt);
		Node	   *d = NULL;

		if (!TupleDescAttr(RelationGetDescr(rel), i)->attisdropped)
			d = build_column_default(rel, i + 1);
		if (d)
			defaults[i] = ExecInitExpr(expression_planner((Expr *) d), NULL);
		MemoryContextSwitchTo(old);
		defaults_prepared[i] = true;
	}
	return defaults[i];
}

/* rel's indexes with their predicates, read from pg_index (one scan) */
static void
read_indexes(Relation rel)
{
	Relation	pg_index = table_open(IndexRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	int			allocated = 16;
	MemoryContext old = MemoryContextSwitchTo(prepared_cxt);

	indexes = palloc0(sizeof(RunIndex) * allocated);
	nindexes = 0;
	ScanKeyInit(&key, Anum_pg_index_indrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(RelationGetRelid(rel)));
	scan = systable_beginscan(pg_index, IndexIndrelidIndexId, true, NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Datum		pred;
		bool		isnull;

		if (nindexes == allocated)
			indexes = repalloc(indexes, sizeof(RunIndex) * (allocated *= 2));
		indexes[nindexes].oid = ((Form_pg_index) GETSTRUCT(tup))->indexrelid;
		indexes[nindexes].predicate = NULL;
		pred = heap_getattr(tup, Anum_pg_index_indpred, RelationGetDescr(pg_index), &isnull);
		if (!isnull)
		{
			/* as RelationGetIndexPredicate() reads it, for evaluation only */
			List	   *qual = make_ands_implicit((Expr *) stringToNode(TextDatumGetCString(pred)));

			fix_opfuncids((Node *) qual);
			indexes[nindexes].predicate = ExecInitQual(qual, NULL);
		}
		nindexes++;
	}
	systable_endscan(scan);
	table_close(pg_index, AccessShareLock);
	MemoryContextSwitchTo(old);
}

/* The index `oid` of what read_indexes() read; NULL: not among them */
static RunIndex *
find_index(Oid oid)
{
	for (int k = 0; k < nindexes; k++)
		if (indexes[k].oid == oid)
			return &indexes[k];
	return NULL;
}

/*
 * Open the indexes of rel (rri's relation) that the new row in econtext's
 * scan tuple enters, as ExecOpenIndices() opens them all: an index whose
 * predicate the row fails stays closed (NULL), as ExecInsertIndexTuples()
 * would pass it over.  A new connection's first trigger builds the
 * relation cache entries of 3 or 4 of taskorch.run's dozen indexes, and
 * every trigger locks only those.  All are opened when the insert could
 * still change the row (a BEFORE trigger, a generated column).
 */
static void
open_entered_indexes(ResultRelInfo *rri, Relation rel, ExprContext *econtext)
{
	List	   *oids;
	ListCell   *lc;
	int			i = 0;
	bool		all = (rel->trigdesc && rel->trigdesc->trig_insert_before_row) ||
		(rel->rd_att->constr && rel->rd_att->constr->has_generated_stored);

	if (all)
	{
		ExecOpenIndices(rri, false);
		return;
	}
	oids = RelationGetIndexList(rel);
	prepared_check(rel);
	rri->ri_NumIndices = list_length(oids);
	rri->ri_IndexRelationDescs = palloc0(sizeof(Relation) * list_length(oids));
	rri->ri_IndexRelationInfo = palloc0(sizeof(IndexInfo *) * list_length(oids));
	foreach(lc, oids)
	{
		Oid			oid = lfirst_oid(lc);
		RunIndex   *index = find_index(oid);

		if (index == NULL)
		{
			read_indexes(rel);	/* first use, or an index made since */
			if ((index = find_index(oid)) == NULL)
				elog(ERROR, "taskorch: index %u of taskorch.run is not in pg_index", oid);
		}
		if (index->predicate == NULL || ExecQual(index->predicate, econtext))
		{
			Relation	desc = index_open(oid, RowExclusiveLock);

			rri->ri_IndexRelationDescs[i] = desc;
			rri->ri_IndexRelationInfo[i] = BuildIndexInfo(desc);
			/* ExecInsertIndexTuples() tests it again, prepared here once */
			rri->ri_IndexRelationInfo[i]->ii_PredicateState = index->predicate;
		}
		i++;
	}
	list_free(oids);
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
	econtext->ecxt_scantuple = slot;
	open_entered_indexes(rri, rel, econtext);

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
