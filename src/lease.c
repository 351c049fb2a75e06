/*-------------------------------------------------------------------------
 *
 * lease.c
 *	  The lease of a run an external worker claimed (external.c): its text,
 *	  "<run id>.<attempt>.<claim time>.<signature>", signed with HMAC-SHA-256
 *	  under a key made at install (taskorch_internal.lease_key, which no
 *	  role but the extension's owner reads), and whether a lease is the
 *	  current one of its run.
 *
 * A genuine lease says which claim it was, so a stale one is refused with
 * the reason (canceled, lost, released, claimed again, ended).  The key is
 * read once per transaction: a dropped and re-created extension has a new
 * one.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "access/xact.h"
#include "common/hmac.h"
#include "common/sha2.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#define SIGNATURE_BYTES		16	/* of the HMAC-SHA-256, in hex in the lease */

typedef struct KeyRow
{
	PlanValue	key;
} KeyRow;

static const PlanField key_columns[] = {
	PLAN_COLUMN(KeyRow, key),
};
static NamedPlan key_plan = {
	.sql = "SELECT key FROM taskorch_internal.lease_key LIMIT 1",
	PLAN_COLUMNS(key_columns)
};

static bytea *key = NULL;		/* in TopMemoryContext */
static LocalTransactionId key_lxid = InvalidLocalTransactionId;

/* The signing key, read once per transaction (inside SPI) */
static bytea *
lease_key(void)
{
	KeyRow		row;
	bytea	   *k;

	if (key != NULL && key_lxid == MyProc->lxid)
		return key;
	if (taskorch_execute_args(&key_plan, NULL, true, 1) != 1)
		elog(ERROR, "taskorch: the lease key is missing");
	taskorch_read_row(&key_plan, 0, &row);
	k = DatumGetByteaPP(row.key.datum);
	if (key)
		pfree(key);
	key = MemoryContextAlloc(TopMemoryContext, VARSIZE_ANY(k));
	memcpy(key, k, VARSIZE_ANY(k));
	key_lxid = MyProc->lxid;
	return key;
}

/* The signature of `claim` (a lease's text before its last dot), in hex */
static char *
signature(const char *claim)
{
	bytea	   *k = lease_key();
	pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA256);
	uint8		mac[PG_SHA256_DIGEST_LENGTH];
	char	   *hex = palloc(SIGNATURE_BYTES * 2 + 1);

	if (ctx == NULL || pg_hmac_init(ctx, (uint8 *) VARDATA_ANY(k), VARSIZE_ANY_EXHDR(k)) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) claim, strlen(claim)) < 0 ||
		pg_hmac_final(ctx, mac, sizeof(mac)) < 0)
		elog(ERROR, "taskorch: could not sign a lease: %s", pg_hmac_error(ctx));
	pg_hmac_free(ctx);
	for (int i = 0; i < SIGNATURE_BYTES; i++)
		sprintf(hex + 2 * i, "%02x", mac[i]);
	return hex;
}

/* The lease of run `id` claimed at `claimed_at` for `attempt` (inside SPI) */
char *
lease_make(const char *id, int32 attempt, TimestampTz claimed_at)
{
	char	   *claim = psprintf("%s.%d." INT64_FORMAT, id, attempt, (int64) claimed_at);

	return psprintf("%s.%s", claim, signature(claim));
}

/* Read lease `text` into *l (inside SPI): false unless it is genuine */
bool
lease_read(const char *text, Lease *l)
{
	char	   *copy = pstrdup(text);
	char	   *sig = strrchr(copy, '.');
	char	   *claim_time;
	char	   *attempt;
	char	   *end;

	l->text = text;
	if (sig == NULL || strncmp(copy, "run_", 4) != 0)
		return false;
	*sig++ = '\0';
	claim_time = strrchr(copy, '.');
	if (claim_time == NULL || strlen(sig) != SIGNATURE_BYTES * 2 ||
		strcmp(sig, signature(copy)) != 0)
		return false;
	*claim_time++ = '\0';
	attempt = strrchr(copy, '.');
	if (attempt == NULL)
		return false;
	*attempt++ = '\0';
	l->run_id = copy;
	l->attempt = (int32) strtol(attempt, &end, 10);
	l->claimed_at = (TimestampTz) strtoi64(claim_time, &end, 10);
	return true;
}

/*
 * NULL when `l` is the current lease of `run` (read from its row: EXECUTING
 * in that attempt under that claim; with canceled_ok, also CANCELED in it),
 * else why it is not.
 */
const char *
lease_stale(const ClaimedRun *run, const Lease *l, bool canceled_ok)
{
	bool		this_claim = run->attempts + 1 == l->attempt && run->started_at == l->claimed_at;

	if (this_claim && (run->row_status == RUN_EXECUTING ||
					   (canceled_ok && run->row_status == RUN_CANCELED)))
		return NULL;
	switch (run->row_status)
	{
		case RUN_CANCELED:
			return "the run was canceled";
		case RUN_EXECUTING:
			return "the run was claimed again";
		case RUN_QUEUED:
			return run->attempts >= l->attempt ?
				"the lease was lost (it expired, or the connection that claimed the run ended) and the attempt was charged" :
				"the run was released";
		default:
			return psprintf("the run has ended %s", run_status_name(run->row_status));
	}
}
