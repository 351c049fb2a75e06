/*-------------------------------------------------------------------------
 *
 * taskorch_cli.h
 *	  The taskorch command: what its files offer each other.
 *
 *	  main.c       arguments, the commands' dispatch, help, exit codes, a
 *	               growable buffer
 *	  db.c         the connection (libpq's conninfo and PG* environment),
 *	               queries with text parameters, reconnecting with backoff
 *	  output.c     results as an aligned table, or as JSON (--json)
 *	  json_line.c  the fields of a one-line JSON object (worker --stdio)
 *	  worker.c     `taskorch worker`: runs of external tasks, a command per
 *	               run or one long-lived command (--stdio)
 *	  commands.c   trigger, runs, show, cancel, replay, logs, log, top
 *
 * Everything goes through the SQL API (docs/external-tasks.md): the
 * command knows no table but what the views show.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TASKORCH_CLI_H
#define TASKORCH_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libpq-fe.h"

/* Exit codes (docs/cli.md) */
#define EXIT_OK			0
#define EXIT_FAILED		1		/* the run failed or was not canceled; what was named does not exist */
#define EXIT_USAGE		2		/* bad arguments */
#define EXIT_SERVER		3		/* no connection, or the server refused the request */

/* main.c */
extern const char *conninfo;	/* -d; NULL: libpq's defaults and PG* variables */
extern bool json_output;		/* --json */

typedef struct Buf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} Buf;

extern void buf_init(Buf *b);
extern void buf_add(Buf *b, const char *data, size_t len);
extern void buf_str(Buf *b, const char *s);
extern void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
extern void buf_json_string(Buf *b, const char *s);
extern void buf_reset(Buf *b);
extern void buf_free(Buf *b);
extern void *xmalloc(size_t n);
extern char *xstrdup(const char *s);
extern void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
extern int64_t now_ms(void);
extern int	parse_seconds(const char *s, const char *what);

/* db.c */
extern PGconn *db_connect(bool retry_forever);
extern PGconn *db_connect_until(bool (*give_up) (void));
extern bool db_give_up_now(void);
extern PGresult *db_query(PGconn *conn, const char *sql, int nparams,
						  const char *const *params);
extern PGresult *db_query_or_die(PGconn *conn, const char *sql, int nparams,
								 const char *const *params);
extern bool db_connection_lost(PGconn *conn);

/* output.c */
extern void print_table(PGresult *res);
extern void print_record(PGresult *res, int row);

/* json_line.c */
extern bool json_line_field(const char *line, const char *key, const char **value, size_t *len);

/* worker.c, commands.c: each command's main */
extern int	cmd_worker(int argc, char **argv);
extern int	cmd_trigger(int argc, char **argv);
extern int	cmd_runs(int argc, char **argv);
extern int	cmd_show(int argc, char **argv);
extern int	cmd_cancel(int argc, char **argv);
extern int	cmd_replay(int argc, char **argv);
extern int	cmd_logs(int argc, char **argv);
extern int	cmd_log(int argc, char **argv);
extern int	cmd_top(int argc, char **argv);

#endif							/* TASKORCH_CLI_H */
