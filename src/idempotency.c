/*-------------------------------------------------------------------------
 *
 * idempotency.c
 *	  The scopes of idempotency keys, as Trigger.dev's: idempotency_key()
 *	  (idempotencyKeys.create) and the raw keys trigger() is given.
 *
 *	  scope 'run'      the key and the current run's id     (the default)
 *	  scope 'attempt'  the key, the run's id and its attempt
 *	  scope 'global'   the key alone
 *
 * A key made by idempotency_key() is the SHA-256 of those parts, in hex.
 * Outside a task there is no run: every scope is the key alone (hashed).
 * A raw key given to trigger() (or a batch item, or trigger_and_wait)
 * inside a task is scoped to the run, as Trigger.dev does since 4.3.1:
 * `idempotency_key => 'charge'` in a task is idempotency_key('charge').
 *
 * Invariants:
 *	- A made key is 64 lowercase hex digits, and a key of that form is
 *	  taken as made (used as is): a raw key that happens to be a SHA-256
 *	  in hex is global (docs/triggering.md says so).
 *	- Outside a task, a raw key is used as is (no hash), as before scopes:
 *	  keys stored by earlier versions keep naming their runs.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "common/cryptohash.h"
#include "common/sha2.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(taskorch_idempotency_key);

/* whether `key` is one idempotency_key() made */
static bool
key_is_made(const char *key)
{
	return strlen(key) == 2 * PG_SHA256_DIGEST_LENGTH &&
		strspn(key, "0123456789abcdef") == 2 * PG_SHA256_DIGEST_LENGTH;
}

/* the key of `name` in `scope` ('run', 'attempt' or 'global'), hashed */
char *
idempotency_key_make(const char *name, const char *scope)
{
	ClaimedRun *run = current_run();
	StringInfoData parts;
	pg_cryptohash_ctx *ctx;
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	char	   *hex = palloc(2 * PG_SHA256_DIGEST_LENGTH + 1);

	if (name[0] == '\0')
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("idempotency key name must not be empty"),
				errhint("Pass a name such as 'charge-' || order_id."));
	initStringInfo(&parts);
	appendStringInfoString(&parts, name);
	if (strcmp(scope, "run") == 0 || strcmp(scope, "attempt") == 0)
	{
		if (run)
			appendStringInfo(&parts, "\x1f%s", run->id);
		if (run && scope[0] == 'a')
			appendStringInfo(&parts, "\x1f%d", run->attempts + 1);
	}
	else if (strcmp(scope, "global") != 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("invalid idempotency key scope \"%s\"", scope),
				errhint("The scope is 'run', 'attempt' or 'global'."));
	ctx = pg_cryptohash_create(PG_SHA256);
	if (pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (uint8 *) parts.data, parts.len) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not hash an idempotency key: %s", pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
	hex[hex_encode((char *) digest, sizeof(digest), hex)] = '\0';
	return hex;
}

/*
 * The key a trigger with idempotency key `key` uses: inside a task, a raw
 * key in the run's scope; a made key, or any key outside a task, as is.
 */
const char *
idempotency_key_of_trigger(const char *key)
{
	if (current_run() == NULL || key_is_made(key))
		return key;
	return idempotency_key_make(key, "run");
}

/*
 * The key idempotency_key_reset(task, key, scope) resets: as a trigger
 * would use it ('run', the default), or `key` in another scope.
 */
const char *
idempotency_key_to_reset(const char *key, const char *scope)
{
	if (strcmp(scope, "run") == 0)
		return idempotency_key_of_trigger(key);
	return key_is_made(key) ? key : idempotency_key_make(key, scope);
}

/* SQL: taskorch.idempotency_key(name, scope DEFAULT 'run') -> text */
Datum
taskorch_idempotency_key(PG_FUNCTION_ARGS)
{
	require_arg(fcinfo, 0, "name", "Pass a name such as 'charge-' || order_id.");
	require_arg(fcinfo, 1, "scope", "The scope is 'run', 'attempt' or 'global'.");
	PG_RETURN_TEXT_P(cstring_to_text(idempotency_key_make(text_to_cstring(PG_GETARG_TEXT_PP(0)),
														  text_to_cstring(PG_GETARG_TEXT_PP(1)))));
}
