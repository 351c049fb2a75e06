/*-------------------------------------------------------------------------
 *
 * type_io.c
 *	  The input, output, receive and send functions of the argument types
 *	  that are text or jsonb inside (taskorch.duration and taskorch.delay:
 *	  text; taskorch.json_input and taskorch.items: jsonb), as C functions
 *	  of this module that call PostgreSQL's own.
 *
 * Declared LANGUAGE internal, these functions were found by name: fmgr
 * knows a built-in function by its OID, and an alias of one made with
 * CREATE FUNCTION has another OID, so each call of fmgr_info() for it (a
 * literal's coercion at parse time, a parameter's input at each Bind)
 * compared the name with every built-in function's in turn, some 13-20 us a
 * time.  A C function is found once, then by its OID in fmgr's hash.
 *
 * Invariants: each passes its call on unchanged; the functions called use
 * nothing of the FmgrInfo they are handed (no fn_extra, no fn_expr), so it
 * may be this module's.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "fmgr.h"
#include "utils/builtins.h"

#define PASS_ON(name, builtin) \
	PG_FUNCTION_INFO_V1(name); \
	Datum name(PG_FUNCTION_ARGS) { return builtin(fcinfo); }

PASS_ON(taskorch_text_in, textin)
PASS_ON(taskorch_text_out, textout)
PASS_ON(taskorch_text_recv, textrecv)
PASS_ON(taskorch_text_send, textsend)
PASS_ON(taskorch_jsonb_in, jsonb_in)
PASS_ON(taskorch_jsonb_out, jsonb_out)
PASS_ON(taskorch_jsonb_recv, jsonb_recv)
PASS_ON(taskorch_jsonb_send, jsonb_send)
