/*
 * bench/latency.c: trigger-commit -> start latency of single runs.
 *
 * Triggers N runs one at a time, each in its own transaction, pausing
 * between them so the workers are idle (the latency measured is that of
 * a lone run, not of a backlog).  For each run it records, on this
 * machine's clock:
 *	  t_commit  when the client sent COMMIT
 *	  t_ack     when COMMIT returned (the commit is durable)
 * and reads the run's started_at afterwards.  Prints percentiles of
 * started_at - t_ack ("commit -> start"), of started_at - t_commit, and of
 * the commit itself (t_ack - t_commit, mostly the WAL flush).
 *
 * Then, from before the trigger statement (one statement that commits on
 * its own, so its time and the commit's count): N triggers over the same
 * connection, and N/10 each the first statement of a new connection (whose
 * backend has prepared nothing yet).  Beside the latter, the floors of this
 * server, each the first statement of a new connection: a one-row INSERT
 * into a table with a primary key, and into a table of taskorch.run's shape
 * (its columns, defaults and twelve indexes, which a new backend must read
 * before it writes a row); and the trigger's own statement time.
 *
 * usage: latency "conninfo" task count pause_ms
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "libpq-fe.h"

#define Max(a, b) ((a) > (b) ? (a) : (b))

static double
now_us(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return tv.tv_sec * 1e6 + tv.tv_usec;
}

static PGresult *
run(PGconn *conn, const char *sql)
{
	PGresult   *res = PQexec(conn, sql);

	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		fprintf(stderr, "%s: %s", sql, PQerrorMessage(conn));
		exit(1);
	}
	return res;
}

static int
cmp(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

static void
report(const char *what, double *v, int n)
{
	qsort(v, n, sizeof(double), cmp);
	printf("  %-28s p50 %7.3f ms   p95 %7.3f ms   p99 %7.3f ms   max %7.3f ms\n",
		   what, v[n / 2] / 1000, v[(int) (n * 0.95)] / 1000,
		   v[(int) (n * 0.99)] / 1000, v[n - 1] / 1000);
}

/* The run's started_at in microseconds since the epoch, once it completed. */
static double
started_us(PGconn *conn, const char *id)
{
	char		sql[256];
	PGresult   *res;
	double		started;

	snprintf(sql, sizeof(sql),
			 "SELECT extract(epoch FROM started_at)::numeric * 1000000 "
			 "FROM taskorch.run WHERE id = '%s' AND status = 'COMPLETED'", id);
	res = run(conn, sql);
	if (PQntuples(res) != 1)
	{
		fprintf(stderr, "run %s did not complete\n", id);
		exit(1);
	}
	started = atof(PQgetvalue(res, 0, 0));
	PQclear(res);
	return started;
}

/*
 * n triggers, each one statement committing on its own; before each, a new
 * connection when `fresh`.  Reports started_at - the time before the
 * statement was sent, and started_at - the time its result came (the
 * worker's wake-up and claim).
 */
static void
statement_to_start(PGconn *conn, const char *conninfo, const char *task, int n,
				   int pause_ms, int fresh, const char *what)
{
	char		sql[512];
	char	  **ids = calloc(n, sizeof(char *));
	double	   *t_before = calloc(n, sizeof(double));
	double	   *lat = calloc(n, sizeof(double));
	double	   *t_after = calloc(n, sizeof(double));
	double	   *pickup = calloc(n, sizeof(double));

	snprintf(sql, sizeof(sql), "SELECT taskorch.trigger('%s', '{}')", task);
	for (int i = 0; i < n; i++)
	{
		PGconn	   *c = conn;
		PGresult   *res;

		if (fresh && (c = PQconnectdb(conninfo)) == NULL)
			exit(1);
		if (PQstatus(c) != CONNECTION_OK)
		{
			fprintf(stderr, "%s", PQerrorMessage(c));
			exit(1);
		}
		t_before[i] = now_us();
		res = run(c, sql);
		t_after[i] = now_us();
		ids[i] = strdup(PQgetvalue(res, 0, 0));
		PQclear(res);
		if (fresh)
			PQfinish(c);
		usleep(pause_ms * 1000);
	}
	usleep(500 * 1000);
	for (int i = 0; i < n; i++)
	{
		lat[i] = started_us(conn, ids[i]) - t_before[i];
		pickup[i] = lat[i] - (t_after[i] - t_before[i]);
	}
	report(what, lat, n);
	report("  statement returned -> start", pickup, n);
}

/*
 * The time of `sql` as the first statement of each of n new connections
 * (the backend fills its catalog caches for it).
 */
static void
first_statement(const char *conninfo, const char *sql, int n, const char *what)
{
	double	   *t = calloc(n, sizeof(double));

	for (int i = 0; i < n; i++)
	{
		PGconn	   *c = PQconnectdb(conninfo);
		double		before;

		if (PQstatus(c) != CONNECTION_OK)
		{
			fprintf(stderr, "%s", PQerrorMessage(c));
			exit(1);
		}
		before = now_us();
		PQclear(run(c, sql));
		t[i] = now_us() - before;
		PQfinish(c);
	}
	report(what, t, n);
}

int
main(int argc, char **argv)
{
	PGconn	   *conn;
	int			n,
				pause_ms;
	char	  **ids;
	double	   *t_commit,
			   *t_ack,
			   *to_start,
			   *from_commit,
			   *commit;
	char		sql[512];

	if (argc != 5)
	{
		fprintf(stderr, "usage: %s conninfo task count pause_ms\n", argv[0]);
		return 2;
	}
	n = atoi(argv[3]);
	pause_ms = atoi(argv[4]);
	conn = PQconnectdb(argv[1]);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "%s", PQerrorMessage(conn));
		return 1;
	}
	ids = calloc(n, sizeof(char *));
	t_commit = calloc(n, sizeof(double));
	t_ack = calloc(n, sizeof(double));
	to_start = calloc(n, sizeof(double));
	from_commit = calloc(n, sizeof(double));
	commit = calloc(n, sizeof(double));

	snprintf(sql, sizeof(sql), "SELECT taskorch.trigger('%s', '{}')", argv[2]);
	for (int i = 0; i < n; i++)
	{
		PGresult   *res;

		PQclear(run(conn, "BEGIN"));
		res = run(conn, sql);
		ids[i] = strdup(PQgetvalue(res, 0, 0));
		PQclear(res);
		t_commit[i] = now_us();
		PQclear(run(conn, "COMMIT"));
		t_ack[i] = now_us();
		usleep(pause_ms * 1000);
	}
	usleep(500 * 1000);

	for (int i = 0; i < n; i++)
	{
		double		started = started_us(conn, ids[i]);

		to_start[i] = started - t_ack[i];
		from_commit[i] = started - t_commit[i];
		commit[i] = t_ack[i] - t_commit[i];
	}
	printf("latency of %d single triggers (one transaction each, workers idle):\n", n);
	report("commit acknowledged -> start", to_start, n);
	report("COMMIT sent -> start", from_commit, n);
	report("COMMIT itself (WAL flush)", commit, n);
	statement_to_start(conn, argv[1], argv[2], n, pause_ms, 0, "trigger statement -> start");
	statement_to_start(conn, argv[1], argv[2], Max(n / 10, 1), pause_ms, 1,
					   "the same, new connection");
	snprintf(sql, sizeof(sql), "SELECT taskorch.trigger('%s', '{}')", argv[2]);
	first_statement(argv[1], sql, Max(n / 10, 1), "  the trigger statement alone");
	PQclear(run(conn, "CREATE TABLE IF NOT EXISTS latency_floor (id bigserial PRIMARY KEY, payload jsonb)"));
	first_statement(argv[1], "INSERT INTO latency_floor (payload) VALUES ('{}')", Max(n / 10, 1),
					"  a one-row INSERT instead");
	PQclear(run(conn, "DROP TABLE latency_floor"));
	PQclear(run(conn, "CREATE TABLE latency_floor_run (LIKE taskorch.run INCLUDING ALL);"
				" ALTER TABLE latency_floor_run ALTER owner DROP NOT NULL,"
				" ALTER triggered_by DROP NOT NULL"));
	first_statement(argv[1], "INSERT INTO latency_floor_run (task_id, payload, max_attempts, queue, run_at)"
					" VALUES ('noop', '{}', 1, 'noop', now())", Max(n / 10, 1),
					"  a one-row INSERT into a table shaped like taskorch.run");
	PQclear(run(conn, "DROP TABLE latency_floor_run"));
	PQfinish(conn);
	return 0;
}
