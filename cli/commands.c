/*-------------------------------------------------------------------------
 *
 * commands.c
 *	  taskorch trigger, runs, show, cancel, replay, logs, log, top: each a
 *	  statement or two of the SQL API, printed as a table (or --json).
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch_cli.h"

#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* What every command takes besides its own options */
#define COMMON_OPTIONS \
	{"dbname", required_argument, NULL, 'd'}, \
	{"json", no_argument, NULL, 'j'}, \
	{"help", no_argument, NULL, 'h'}

/* A common option, or an error; returns true when the command should print help */
static bool
common_option(int c, const char *help, int *exit_code)
{
	switch (c)
	{
		case 'd':
			conninfo = optarg;
			return false;
		case 'j':
			json_output = true;
			return false;
		case 'h':
			fputs(help, stdout);
			*exit_code = EXIT_OK;
			return true;
		default:
			fputs(help, stderr);
			*exit_code = EXIT_USAGE;
			return true;
	}
}

/* The one value of a one-row, one-column result, printed */
static void
print_value(PGresult *res)
{
	if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
		printf("%s\n", PQgetvalue(res, 0, 0));
}

/* Exactly one argument after the options: the run */
static const char *
run_argument(int argc, char **argv, const char *help)
{
	if (optind != argc - 1)
	{
		fputs(help, stderr);
		exit(EXIT_USAGE);
	}
	return argv[optind];
}

/*
 * A command that takes the common options and one run: read them and
 * connect.  NULL: it printed its help (or its usage), exit with *exit_code.
 */
static PGconn *
connect_for_run(int argc, char **argv, const char *help, const char **run, int *exit_code)
{
	static const struct option options[] = {COMMON_OPTIONS, {NULL, 0, NULL, 0}};
	int			c;

	while ((c = getopt_long(argc, argv, "d:h", options, NULL)) != -1)
		if (common_option(c, help, exit_code))
			return NULL;
	*run = run_argument(argc, argv, help);
	return db_connect(false);
}

/* Wait (LISTEN taskorch_runs) until run `id` has finished; returns its status */
static char *
wait_finished(PGconn *conn, const char *id, int timeout_ms)
{
	const char *params[1] = {id};
	int64_t		deadline = timeout_ms > 0 ? now_ms() + timeout_ms : INT64_MAX;

	PQclear(db_query_or_die(conn, "LISTEN taskorch_runs", 0, NULL));
	for (;;)
	{
		PGresult   *res = db_query_or_die(conn,
										  "SELECT status, taskorch.finished(status) FROM taskorch.runs WHERE id = $1",
										  1, params);
		struct pollfd pfd = {PQsocket(conn), POLLIN, 0};
		PGnotify   *n;

		if (PQntuples(res) == 0)
			die(EXIT_FAILED, "run \"%s\" does not exist", id);
		if (strcmp(PQgetvalue(res, 0, 1), "t") == 0)
		{
			char	   *status = xstrdup(PQgetvalue(res, 0, 0));

			PQclear(res);
			return status;
		}
		PQclear(res);
		if (now_ms() >= deadline)
			die(EXIT_FAILED, "run %s has not finished after %d ms", id, timeout_ms);
		/* a notification (some run changed), or a look again in a second */
		poll(&pfd, 1, 1000);
		PQconsumeInput(conn);
		while ((n = PQnotifies(conn)) != NULL)
			PQfreemem(n);
	}
}

/* ---------------------------------------------------------------------
 * trigger
 * ---------------------------------------------------------------------
 */

static const char trigger_help[] =
"Trigger a run of a task.\n\n"
"Usage: taskorch trigger TASK [PAYLOAD] [OPTIONS]\n\n"
"PAYLOAD is JSON (default {}).  Options:\n"
"      --delay=DELAY            start no sooner: a duration (\"1h\") or a time\n"
"      --ttl=DURATION           expire if not started within it\n"
"      --idempotency-key=KEY    the run this key already names, if any\n"
"      --queue=QUEUE            another queue than the task's\n"
"      --concurrency-key=KEY    a limit per key of the queue\n"
"      --priority=SECONDS       ahead in the queue by that much\n"
"      --max-attempts=N         instead of the task's\n"
"      --tag=TAG                a tag (repeat for more)\n"
"      --metadata=JSON          the run's metadata\n"
"      --wait                   wait until it has finished; print its output\n"
"                               (exit 1 unless it completed)\n"
"      --timeout=DURATION       with --wait: give up after it (exit 1)\n"
"      --json                   print {\"id\"} (with --wait: its Result object)\n"
"  -d, --dbname=CONNINFO        the database\n";

int
cmd_trigger(int argc, char **argv)
{
	static const struct option options[] = {
		{"delay", required_argument, NULL, 1},
		{"ttl", required_argument, NULL, 2},
		{"idempotency-key", required_argument, NULL, 3},
		{"queue", required_argument, NULL, 4},
		{"concurrency-key", required_argument, NULL, 5},
		{"priority", required_argument, NULL, 6},
		{"max-attempts", required_argument, NULL, 7},
		{"tag", required_argument, NULL, 8},
		{"metadata", required_argument, NULL, 9},
		{"wait", no_argument, NULL, 10},
		{"timeout", required_argument, NULL, 11},
		COMMON_OPTIONS,
		{NULL, 0, NULL, 0}
	};
	const char *params[11] = {0};
	Buf			tags;
	bool		wait = false;
	int			timeout_ms = 0;
	int			c;
	int			code;
	PGconn	   *conn;
	PGresult   *res;
	char	   *id;

	buf_init(&tags);
	while ((c = getopt_long(argc, argv, "d:h", options, NULL)) != -1)
	{
		if (c >= 1 && c <= 7)
			params[c + 1] = optarg;
		else if (c == 8)
		{
			buf_str(&tags, tags.len ? "," : "{");
			buf_json_string(&tags, optarg);
		}
		else if (c == 9)
			params[10] = optarg;
		else if (c == 10)
			wait = true;
		else if (c == 11)
			timeout_ms = parse_seconds(optarg, "timeout");
		else if (common_option(c, trigger_help, &code))
			return code;
	}
	if (optind >= argc || argc - optind > 2)
	{
		fputs(trigger_help, stderr);
		return EXIT_USAGE;
	}
	params[0] = argv[optind];
	params[1] = optind + 1 < argc ? argv[optind + 1] : "{}";
	if (tags.len)
	{
		buf_str(&tags, "}");
		params[9] = tags.data;
	}
	conn = db_connect(false);
	res = db_query_or_die(conn,
						  "SELECT taskorch.trigger($1, $2, delay => $3, ttl => $4, idempotency_key => $5,"
						  "       queue => $6, concurrency_key => $7, priority => $8::int,"
						  "       max_attempts => $9::int, tags => $10::text[], metadata => $11)",
						  11, params);
	id = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (!wait)
	{
		if (json_output)
			printf("{\"id\": \"%s\"}\n", id);
		else
			printf("%s\n", id);
		return EXIT_OK;
	}
	{
		char	   *status = wait_finished(conn, id, timeout_ms);
		const char *p[1] = {id};

		res = db_query_or_die(conn, json_output ?
							  "SELECT taskorch.result($1)" :
							  "SELECT coalesce(output::text, 'null'), error->>'message' FROM taskorch.runs_wide WHERE id = $1",
							  1, p);
		print_value(res);
		if (!json_output && strcmp(status, "COMPLETED") != 0)
			fprintf(stderr, "taskorch: run %s ended %s: %s\n", id, status,
					PQgetisnull(res, 0, 1) ? "" : PQgetvalue(res, 0, 1));
		PQclear(res);
		return strcmp(status, "COMPLETED") == 0 ? EXIT_OK : EXIT_FAILED;
	}
}

/* ---------------------------------------------------------------------
 * runs, show
 * ---------------------------------------------------------------------
 */

static const char runs_help[] =
"List runs, newest first.\n\n"
"Usage: taskorch runs [OPTIONS]\n\n"
"Options:\n"
"      --task=TASK       runs of this task (repeat for more)\n"
"      --status=STATUS   in this status (repeat for more)\n"
"      --tag=TAG         with this tag (repeat for more: all of them)\n"
"      --limit=N         at most N (default 20)\n"
"      --json            a JSON array of the runs, every field\n"
"  -d, --dbname=CONNINFO the database\n";

static void
add_to_array(Buf *b, const char *item)
{
	buf_str(b, b->len ? "," : "{");
	buf_json_string(b, item);
}

int
cmd_runs(int argc, char **argv)
{
	static const struct option options[] = {
		{"task", required_argument, NULL, 1},
		{"status", required_argument, NULL, 2},
		{"tag", required_argument, NULL, 3},
		{"limit", required_argument, NULL, 4},
		COMMON_OPTIONS,
		{NULL, 0, NULL, 0}
	};
	Buf			tasks, statuses, tags;
	const char *params[4] = {NULL, NULL, NULL, "20"};
	int			c;
	int			code;
	PGconn	   *conn;
	PGresult   *res;

	buf_init(&tasks);
	buf_init(&statuses);
	buf_init(&tags);
	while ((c = getopt_long(argc, argv, "d:h", options, NULL)) != -1)
	{
		if (c == 1)
			add_to_array(&tasks, optarg);
		else if (c == 2)
			add_to_array(&statuses, optarg);
		else if (c == 3)
			add_to_array(&tags, optarg);
		else if (c == 4)
			params[3] = optarg;
		else if (common_option(c, runs_help, &code))
			return code;
	}
	if (optind != argc)
	{
		fputs(runs_help, stderr);
		return EXIT_USAGE;
	}
	if (statuses.len)
		params[0] = (buf_str(&statuses, "}"), statuses.data);
	if (tasks.len)
		params[1] = (buf_str(&tasks, "}"), tasks.data);
	if (tags.len)
		params[2] = (buf_str(&tags, "}"), tags.data);
	conn = db_connect(false);
	res = db_query_or_die(conn, json_output ?
						  "SELECT coalesce(jsonb_agg(to_jsonb(r)), '[]') FROM taskorch.list_runs("
						  "  status => $1::text[], task => $2::text[], tags => $3::text[],"
						  "  page_size => $4::int) r" :
						  "SELECT id, task_id AS task, status, attempts,"
						  "       to_char(created_at, 'YYYY-MM-DD HH24:MI:SS') AS created,"
						  "       round(extract(epoch FROM duration)::numeric, 3) AS seconds,"
						  "       array_to_string(tags, ',') AS tags,"
						  "       left(error->>'message', 60) AS error"
						  "  FROM taskorch.list_runs(status => $1::text[], task => $2::text[],"
						  "       tags => $3::text[], page_size => $4::int)",
						  4, params);
	if (json_output)
		print_value(res);
	else
		print_table(res);
	PQclear(res);
	return EXIT_OK;
}

static const char show_help[] =
"Show a run: its status, attempts, output, error and logs.\n\n"
"Usage: taskorch show RUN [--json] [-d CONNINFO]\n";

int
cmd_show(int argc, char **argv)
{
	int			code;
	const char *params[1];
	PGconn	   *conn;
	PGresult   *res;

	if ((conn = connect_for_run(argc, argv, show_help, &params[0], &code)) == NULL)
		return code;
	if (json_output)
	{
		res = db_query_or_die(conn,
							  "SELECT taskorch.retrieve($1) || jsonb_build_object("
							  "  'attempts', (SELECT coalesce(jsonb_agg(to_jsonb(a) ORDER BY a.number), '[]')"
							  "                 FROM taskorch.attempts a WHERE a.run_id = $1),"
							  "  'logs', (SELECT coalesce(jsonb_agg(to_jsonb(l) ORDER BY l.attempt, l.position, l.logged_at), '[]')"
							  "             FROM taskorch.logs l WHERE l.run_id = $1))",
							  1, params);
		print_value(res);
		PQclear(res);
		return EXIT_OK;
	}
	res = db_query_or_die(conn,
						  "SELECT id, task_id AS task, status, attempts || ' of ' || max_attempts AS attempts,"
						  "       queue, nullif(array_to_string(tags, ', '), '') AS tags,"
						  "       created_at AS created, started_at AS started, finished_at AS finished,"
						  "       duration, payload, output, error->>'message' AS error,"
						  "       nullif(metadata, '{}') AS metadata, parent_run_id AS parent"
						  "  FROM taskorch.runs_wide WHERE id = $1",
						  1, params);
	if (PQntuples(res) == 0)
		die(EXIT_FAILED, "run \"%s\" does not exist", params[0]);
	print_record(res, 0);
	PQclear(res);
	res = db_query_or_die(conn,
						  "SELECT number AS attempt, status, message, started_at, finished_at"
						  "  FROM taskorch.attempts WHERE run_id = $1 ORDER BY number",
						  1, params);
	if (PQntuples(res) > 0)
	{
		printf("\nfailed attempts:\n");
		print_table(res);
	}
	PQclear(res);
	res = db_query_or_die(conn,
						  "SELECT to_char(logged_at, 'HH24:MI:SS.MS') AS at, attempt, level, message,"
						  "       coalesce(data::text, '') AS data"
						  "  FROM taskorch.logs WHERE run_id = $1 ORDER BY attempt, position, logged_at",
						  1, params);
	if (PQntuples(res) > 0)
	{
		printf("\nlogs:\n");
		print_table(res);
	}
	PQclear(res);
	return EXIT_OK;
}

/* ---------------------------------------------------------------------
 * cancel, replay
 * ---------------------------------------------------------------------
 */

static const char cancel_help[] =
"Cancel a run that has not finished (exit 1 if it had).\n\n"
"Usage: taskorch cancel RUN [--json] [-d CONNINFO]\n";

int
cmd_cancel(int argc, char **argv)
{
	int			code;
	const char *params[1];
	PGconn	   *conn;
	PGresult   *res;
	bool		canceled;

	if ((conn = connect_for_run(argc, argv, cancel_help, &params[0], &code)) == NULL)
		return code;
	res = db_query_or_die(conn, "SELECT taskorch.cancel($1)", 1, params);
	canceled = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (json_output)
		printf("{\"id\": \"%s\", \"canceled\": %s}\n", params[0], canceled ? "true" : "false");
	else if (canceled)
		printf("canceled %s\n", params[0]);
	else
		fprintf(stderr, "taskorch: run %s had already finished\n", params[0]);
	return canceled ? EXIT_OK : EXIT_FAILED;
}

static const char replay_help[] =
"Trigger a new run with a run's payload and options; prints its id.\n\n"
"Usage: taskorch replay RUN [--json] [-d CONNINFO]\n";

int
cmd_replay(int argc, char **argv)
{
	int			code;
	const char *params[1];
	PGconn	   *conn;
	PGresult   *res;

	if ((conn = connect_for_run(argc, argv, replay_help, &params[0], &code)) == NULL)
		return code;
	res = db_query_or_die(conn, "SELECT taskorch.replay($1)", 1, params);
	if (json_output)
		printf("{\"id\": \"%s\", \"replayed_from\": \"%s\"}\n", PQgetvalue(res, 0, 0), params[0]);
	else
		print_value(res);
	PQclear(res);
	return EXIT_OK;
}

/* ---------------------------------------------------------------------
 * logs
 * ---------------------------------------------------------------------
 */

static const char logs_help[] =
"Print a run's logs.\n\n"
"Usage: taskorch logs RUN [--follow] [--json] [-d CONNINFO]\n\n"
"  -f, --follow   print entries as they come, until the run has finished\n"
"      --json     a JSON object per line\n";

int
cmd_logs(int argc, char **argv)
{
	static const struct option options[] = {
		{"follow", no_argument, NULL, 'f'},
		COMMON_OPTIONS,
		{NULL, 0, NULL, 0}
	};
	int			c;
	int			code;
	bool		follow = false;
	const char *params[2];
	char		offset[32];
	long		printed = 0;
	PGconn	   *conn;

	while ((c = getopt_long(argc, argv, "fd:h", options, NULL)) != -1)
	{
		if (c == 'f')
			follow = true;
		else if (common_option(c, logs_help, &code))
			return code;
	}
	params[0] = run_argument(argc, argv, logs_help);
	params[1] = offset;
	conn = db_connect(false);
	{
		const char *p[1] = {params[0]};
		PGresult   *res = db_query_or_die(conn, "SELECT FROM taskorch.runs WHERE id = $1", 1, p);

		if (PQntuples(res) == 0)
			die(EXIT_FAILED, "run \"%s\" does not exist", params[0]);
		PQclear(res);
	}
	for (;;)
	{
		PGresult   *res;
		bool		finished;

		snprintf(offset, sizeof(offset), "%ld", printed);
		res = db_query_or_die(conn, json_output ?
							  "SELECT to_jsonb(l) - 'run_id' - 'task_id', taskorch.finished(r.status)"
							  "  FROM taskorch.logs l, taskorch.runs r WHERE l.run_id = $1 AND r.id = $1"
							  " ORDER BY l.attempt, l.position, l.logged_at OFFSET $2::int" :
							  "SELECT to_char(l.logged_at, 'YYYY-MM-DD HH24:MI:SS.MS') || ' [' || l.attempt || '] '"
							  "       || rpad(l.level, 6) || l.message || coalesce(' ' || l.data::text, ''),"
							  "       taskorch.finished(r.status)"
							  "  FROM taskorch.logs l, taskorch.runs r WHERE l.run_id = $1 AND r.id = $1"
							  " ORDER BY l.attempt, l.position, l.logged_at OFFSET $2::int",
							  2, params);
		for (int i = 0; i < PQntuples(res); i++)
			printf("%s\n", PQgetvalue(res, i, 0));
		printed += PQntuples(res);
		PQclear(res);
		if (!follow)
			return EXIT_OK;
		{
			const char *p[1] = {params[0]};

			res = db_query_or_die(conn, "SELECT taskorch.finished(status) FROM taskorch.runs WHERE id = $1",
								  1, p);
			finished = PQntuples(res) == 0 || strcmp(PQgetvalue(res, 0, 0), "t") == 0;
			PQclear(res);
		}
		if (finished)
		{
			/* what was written with its end */
			snprintf(offset, sizeof(offset), "%ld", printed);
			res = db_query_or_die(conn, json_output ?
								  "SELECT to_jsonb(l) - 'run_id' - 'task_id' FROM taskorch.logs l WHERE l.run_id = $1"
								  " ORDER BY l.attempt, l.position, l.logged_at OFFSET $2::int" :
								  "SELECT to_char(l.logged_at, 'YYYY-MM-DD HH24:MI:SS.MS') || ' [' || l.attempt || '] '"
								  "       || rpad(l.level, 6) || l.message || coalesce(' ' || l.data::text, '')"
								  "  FROM taskorch.logs l WHERE l.run_id = $1"
								  " ORDER BY l.attempt, l.position, l.logged_at OFFSET $2::int",
								  2, params);
			for (int i = 0; i < PQntuples(res); i++)
				printf("%s\n", PQgetvalue(res, i, 0));
			PQclear(res);
			return EXIT_OK;
		}
		usleep(500 * 1000);
	}
}

/* ---------------------------------------------------------------------
 * log (from a worker's command)
 * ---------------------------------------------------------------------
 */

static const char log_help[] =
"Write an entry in the logs of the run a worker's command is working.\n\n"
"Usage: taskorch log LEVEL MESSAGE [--data=JSON] [--lease=LEASE] [-d CONNINFO]\n\n"
"LEVEL is debug, log, info, warn or error.  The lease is $TASKORCH_LEASE,\n"
"which `taskorch worker` gives its command.\n";

int
cmd_log(int argc, char **argv)
{
	static const struct option options[] = {
		{"data", required_argument, NULL, 1},
		{"lease", required_argument, NULL, 2},
		COMMON_OPTIONS,
		{NULL, 0, NULL, 0}
	};
	const char *params[4] = {getenv("TASKORCH_LEASE"), NULL, NULL, NULL};
	int			c;
	int			code;
	PGconn	   *conn;

	while ((c = getopt_long(argc, argv, "d:h", options, NULL)) != -1)
	{
		if (c == 1)
			params[3] = optarg;
		else if (c == 2)
			params[0] = optarg;
		else if (common_option(c, log_help, &code))
			return code;
	}
	if (argc - optind != 2)
	{
		fputs(log_help, stderr);
		return EXIT_USAGE;
	}
	if (params[0] == NULL)
		die(EXIT_USAGE, "log: no lease: run it from a command of `taskorch worker`, or pass --lease");
	params[1] = argv[optind];
	params[2] = argv[optind + 1];
	conn = db_connect(false);
	PQclear(db_query_or_die(conn, "SELECT taskorch.lease_log($1, $2, $3, $4)", 4, params));
	return EXIT_OK;
}

/* ---------------------------------------------------------------------
 * top
 * ---------------------------------------------------------------------
 */

static const char top_help[] =
"Live counts of runs per task and queue, runs/s, latencies, and the workers\n"
"(from taskorch.stats: what waits is counted once a second).\n\n"
"Usage: taskorch top [--interval=DURATION] [--once] [--json] [-d CONNINFO]\n\n"
"      --interval=DURATION  refresh this often (default 1s)\n"
"      --once               print once and exit (with --json: one JSON object)\n";

static volatile sig_atomic_t top_stop = 0;

static void
top_signal(int signo)
{
	top_stop = 1;
}

/* from taskorch.stats: shared memory, no scan of the runs table */
#define TOP_TASKS_SQL \
	"SELECT name AS task, delayed, queued, executing, waiting, due," \
	"       completed_per_s AS \"completed/s\", failed_per_s AS \"failed/s\"," \
	"       exec_p50_ms, exec_p95_ms, wait_p95_ms" \
	"  FROM taskorch.stats WHERE scope = 'task' ORDER BY name"

#define TOP_QUEUES_SQL \
	"SELECT name AS queue, queued, executing, due, oldest_due_s," \
	"       completed_per_s AS \"completed/s\", concurrency_limit AS \"limit\"" \
	"  FROM taskorch.stats WHERE scope = 'queue' ORDER BY name"

#define TOP_WORKERS_SQL \
	"SELECT (SELECT running FROM taskorch.database_workers WHERE database = current_database()) AS server_workers," \
	"       (SELECT wanted FROM taskorch.database_workers WHERE database = current_database()) AS wanted," \
	"       (SELECT count(DISTINCT claimed_by_pid) FROM taskorch.run" \
	"         WHERE status = 'EXECUTING' AND external) AS external_connections"

int
cmd_top(int argc, char **argv)
{
	static const struct option options[] = {
		{"interval", required_argument, NULL, 'i'},
		{"once", no_argument, NULL, 'o'},
		COMMON_OPTIONS,
		{NULL, 0, NULL, 0}
	};
	int			c;
	int			code;
	int			interval_ms = 1000;
	bool		once = false;
	PGconn	   *conn;

	while ((c = getopt_long(argc, argv, "d:h", options, NULL)) != -1)
	{
		if (c == 'i')
			interval_ms = parse_seconds(optarg, "interval");
		else if (c == 'o')
			once = true;
		else if (common_option(c, top_help, &code))
			return code;
	}
	if (optind != argc)
	{
		fputs(top_help, stderr);
		return EXIT_USAGE;
	}
	conn = db_connect(false);
	if (json_output)
	{
		PGresult   *res = db_query_or_die(conn,
										  "SELECT jsonb_build_object('tasks', (SELECT coalesce(jsonb_agg(to_jsonb(t)), '[]') FROM (" TOP_TASKS_SQL ") t),"
										  "                          'queues', (SELECT coalesce(jsonb_agg(to_jsonb(q)), '[]') FROM (" TOP_QUEUES_SQL ") q),"
										  "                          'workers', (SELECT to_jsonb(w) FROM (" TOP_WORKERS_SQL ") w))",
										  0, NULL);

		print_value(res);
		PQclear(res);
		return EXIT_OK;
	}
	signal(SIGINT, top_signal);
	signal(SIGTERM, top_signal);
	while (!top_stop)
	{
		PGresult   *tasks = db_query_or_die(conn, TOP_TASKS_SQL, 0, NULL);
		PGresult   *queues = db_query_or_die(conn, TOP_QUEUES_SQL, 0, NULL);
		PGresult   *workers = db_query_or_die(conn, TOP_WORKERS_SQL, 0, NULL);
		time_t		t = time(NULL);
		char		when[32];

		strftime(when, sizeof(when), "%H:%M:%S", localtime(&t));
		if (!once)
			printf("\033[H\033[2J");
		printf("taskorch top -- %s -- %s%s\n\n", PQdb(conn), when, once ? "" : "  (Ctrl-C quits)");
		printf("workers: %s of %s in the server, %s external connection%s holding runs\n\n",
			   PQgetisnull(workers, 0, 0) ? "0" : PQgetvalue(workers, 0, 0),
			   PQgetisnull(workers, 0, 1) ? "0" : PQgetvalue(workers, 0, 1),
			   PQgetvalue(workers, 0, 2), strcmp(PQgetvalue(workers, 0, 2), "1") == 0 ? "" : "s");
		print_table(tasks);
		putchar('\n');
		print_table(queues);
		PQclear(tasks);
		PQclear(queues);
		PQclear(workers);
		if (once)
			break;
		usleep(interval_ms * 1000);
	}
	return EXIT_OK;
}
