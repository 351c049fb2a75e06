/*-------------------------------------------------------------------------
 *
 * db.c
 *	  The connection: libpq's conninfo (-d) or its defaults and PG*
 *	  variables; queries with text parameters; reconnecting with backoff.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BACKOFF_FIRST_MS	100
#define BACKOFF_MAX_MS		5000

/*
 * A connection; with retry_forever, wait for the server as long as it
 * takes (a worker across a restart), else exit with EXIT_SERVER.
 */
PGconn *
db_connect(bool retry_forever)
{
	return db_connect_until(retry_forever ? NULL : db_give_up_now);
}

/* For db_connect_until(): do not try again */
bool
db_give_up_now(void)
{
	return true;
}

/*
 * A connection, trying again with backoff (0.1 s doubling to 5 s) until
 * give_up() says to stop (NULL: never), then exit with EXIT_SERVER.
 */
PGconn *
db_connect_until(bool (*give_up) (void))
{
	const char *const keywords[] = {"dbname", "fallback_application_name", NULL};
	const char *const values[] = {conninfo ? conninfo : "", "taskorch", NULL};
	int			backoff = BACKOFF_FIRST_MS;

	for (;;)
	{
		PGconn	   *conn = PQconnectdbParams(keywords, values, 1);

		if (PQstatus(conn) == CONNECTION_OK)
			return conn;
		if (give_up && give_up())
			die(EXIT_SERVER, "could not connect: %s", PQerrorMessage(conn));
		fprintf(stderr, "taskorch: could not connect, trying again in %d ms: %s",
				backoff, PQerrorMessage(conn));
		PQfinish(conn);
		usleep(backoff * 1000);
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
}

/* The result of sql with text parameters; the caller checks its status. */
PGresult *
db_query(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	return PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
}

/* Did the statement fail because the connection is gone? */
bool
db_connection_lost(PGconn *conn)
{
	return PQstatus(conn) == CONNECTION_BAD;
}

/*
 * The result of sql, or exit: EXIT_FAILED when the server says what was
 * named does not exist, EXIT_SERVER otherwise, with the server's message.
 */
PGresult *
db_query_or_die(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	PGresult   *res = db_query(conn, sql, nparams, params);
	ExecStatusType st = PQresultStatus(res);
	const char *state;

	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return res;
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	fprintf(stderr, "taskorch: %s", PQresultErrorMessage(res));	/* its HINT too */
	exit(state && strcmp(state, "42704") == 0 ? EXIT_FAILED : EXIT_SERVER);
}
