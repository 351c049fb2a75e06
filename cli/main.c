/*-------------------------------------------------------------------------
 *
 * main.c
 *	  The taskorch command: global options, the dispatch to a command, the
 *	  help, and small utilities (a growable buffer, errors, durations).
 *
 *	  taskorch [-d CONNINFO] [--json] COMMAND [ARGS]
 *
 * Exit codes: 0 done; 1 the run failed or was not canceled, or what was
 * named (a run, a task) does not exist; 2 bad arguments; 3 no connection,
 * or the server refused.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch_cli.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *conninfo = NULL;
bool		json_output = false;

static const struct
{
	const char *name;
	int			(*main) (int argc, char **argv);
	const char *summary;
}			commands[] = {
	{"worker", cmd_worker, "run the runs of external tasks with a command"},
	{"trigger", cmd_trigger, "trigger a run of a task"},
	{"runs", cmd_runs, "list runs"},
	{"show", cmd_show, "show a run: status, attempts, output, logs"},
	{"cancel", cmd_cancel, "cancel a run"},
	{"replay", cmd_replay, "trigger a finished run again"},
	{"logs", cmd_logs, "print a run's logs (--follow: as they come)"},
	{"log", cmd_log, "from a worker's command: an entry in its run's logs"},
	{"top", cmd_top, "live counts per task and queue, runs/s, workers"},
};

static void
usage(FILE *out)
{
	fprintf(out,
			"taskorch: durable tasks in PostgreSQL, from the command line.\n\n"
			"Usage: taskorch [-d CONNINFO] [--json] COMMAND [ARGS]\n\n"
			"Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(out,
			"\nOptions:\n"
			"  -d, --dbname=CONNINFO  the database (a connection string or URI; default:\n"
			"                         libpq's, from PGHOST, PGDATABASE, PGUSER, ...)\n"
			"      --json             print JSON for scripts instead of tables\n"
			"  -h, --help             this help; COMMAND --help: the command's\n\n"
			"Exit codes: 0 done, 1 the run failed or what was named does not exist,\n"
			"2 bad arguments, 3 no connection or the server refused.  See docs/cli.md.\n");
}

int
main(int argc, char **argv)
{
	static const struct option options[] = {
		{"dbname", required_argument, NULL, 'd'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	int			c;

	setvbuf(stdout, NULL, _IOLBF, 0);
	/* "+": stop at the command; its own options follow it */
	while ((c = getopt_long(argc, argv, "+d:h", options, NULL)) != -1)
	{
		switch (c)
		{
			case 'd':
				conninfo = optarg;
				break;
			case 'j':
				json_output = true;
				break;
			case 'h':
				usage(stdout);
				return EXIT_OK;
			default:
				usage(stderr);
				return EXIT_USAGE;
		}
	}
	if (optind >= argc)
	{
		usage(stderr);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
		{
			int			cargc = argc - optind;
			char	  **cargv = argv + optind;

			optind = 0;			/* the command parses its own arguments (0: glibc starts afresh) */
			return commands[i].main(cargc, cargv);
		}
	fprintf(stderr, "taskorch: unknown command \"%s\"\n", argv[optind]);
	usage(stderr);
	return EXIT_USAGE;
}

/* ---------------------------------------------------------------------
 * Utilities
 * ---------------------------------------------------------------------
 */

void
die(int code, const char *fmt, ...)
{
	va_list		ap;

	fprintf(stderr, "taskorch: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

void *
xmalloc(size_t n)
{
	void	   *p = malloc(n ? n : 1);

	if (p == NULL)
		die(EXIT_SERVER, "out of memory");
	return p;
}

char *
xstrdup(const char *s)
{
	size_t		n = strlen(s) + 1;

	return memcpy(xmalloc(n), s, n);
}

void
buf_init(Buf *b)
{
	b->cap = 256;
	b->len = 0;
	b->data = xmalloc(b->cap);
	b->data[0] = '\0';
}

void
buf_add(Buf *b, const char *data, size_t len)
{
	if (b->len + len + 1 > b->cap)
	{
		while (b->len + len + 1 > b->cap)
			b->cap *= 2;
		b->data = realloc(b->data, b->cap);
		if (b->data == NULL)
			die(EXIT_SERVER, "out of memory");
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void
buf_str(Buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void
buf_printf(Buf *b, const char *fmt, ...)
{
	va_list		ap;
	char		small[256];
	int			n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < (int) sizeof(small))
	{
		buf_add(b, small, n);
		return;
	}
	{
		char	   *big = xmalloc(n + 1);

		va_start(ap, fmt);
		vsnprintf(big, n + 1, fmt, ap);
		va_end(ap);
		buf_add(b, big, n);
		free(big);
	}
}

/* s as a JSON string */
void
buf_json_string(Buf *b, const char *s)
{
	buf_add(b, "\"", 1);
	for (; *s; s++)
	{
		unsigned char ch = (unsigned char) *s;

		if (ch == '"' || ch == '\\')
		{
			buf_add(b, "\\", 1);
			buf_add(b, s, 1);
		}
		else if (ch == '\n')
			buf_str(b, "\\n");
		else if (ch == '\t')
			buf_str(b, "\\t");
		else if (ch == '\r')
			buf_str(b, "\\r");
		else if (ch < 0x20)
			buf_printf(b, "\\u%04x", ch);
		else
			buf_add(b, s, 1);
	}
	buf_add(b, "\"", 1);
}

void
buf_reset(Buf *b)
{
	b->len = 0;
	b->data[0] = '\0';
}

void
buf_free(Buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "30s", "5m", "1h", "250ms" or a number of seconds, in milliseconds */
int
parse_seconds(const char *s, const char *what)
{
	char	   *end;
	double		v = strtod(s, &end);
	double		unit = 1000;

	if (end == s || v < 0)
		die(EXIT_USAGE, "invalid %s \"%s\": not a duration such as 30s, 5m or 1h", what, s);
	if (strcmp(end, "ms") == 0)
		unit = 1;
	else if (strcmp(end, "m") == 0)
		unit = 60000;
	else if (strcmp(end, "h") == 0)
		unit = 3600000;
	else if (*end != '\0' && strcmp(end, "s") != 0)
		die(EXIT_USAGE, "invalid %s \"%s\": not a duration such as 30s, 5m or 1h", what, s);
	if (v * unit > 86400000.0 * 24)
		die(EXIT_USAGE, "invalid %s \"%s\": too long", what, s);
	return (int) (v * unit);
}
