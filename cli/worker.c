/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  taskorch worker TASK... [options] -- COMMAND [ARGS]
 *
 * Claims runs of external tasks (claim_runs) and works them with COMMAND:
 *
 *	- by default, one COMMAND per run: the payload JSON on its stdin,
 *	  TASKORCH_RUN_ID, TASKORCH_TASK, TASKORCH_ATTEMPT and TASKORCH_LEASE in
 *	  its environment; exit 0 completes the run with the JSON it printed
 *	  (nothing: null), another exit fails the attempt with the tail of its
 *	  stderr as the message;
 *	- with --stdio, one long-lived COMMAND for every run: a line
 *	  {"id", "task", "attempt", "payload"} per run on its stdin, a line
 *	  {"id", "output"} or {"id", "error"} per run on its stdout, in any
 *	  order; {"id", "cancel": true} tells it a run was canceled.
 *
 * One process, one connection, a poll() loop: claims when a quarter of
 * the slots is free (or all) and the server says a task has due runs
 * (LISTEN taskorch_external) or every --poll; heartbeats every third of the
 * lease; reports outcomes a quarter of the slots at a time (or every run
 * held, or after REPORT_WAIT_MS), in one statement (complete_runs).  A run
 * canceled meanwhile has its command sent SIGTERM.  SIGTERM or SIGINT:
 * stop claiming, let the commands finish for --grace, then stop them and
 * release their runs (no attempt spent).  A lost connection is made again
 * with backoff; the runs held are kept (a heartbeat binds each to the new
 * connection), and outcomes wait until they can be reported.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch_cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <unistd.h>

#define ERR_TAIL			2000		/* bytes of a command's stderr kept for its error */
#define MAX_OUTPUT			(64 * 1024 * 1024)
#define KILL_AFTER_MS		5000		/* SIGKILL a command this long after SIGTERM */
#define RESTART_AFTER_MS	1000		/* a --stdio command that exited is started again */
#define REPORT_WAIT_MS		5			/* an outcome waits at most this long for others */

typedef struct Run
{
	bool		used;
	char	   *id;
	char	   *task;
	char	   *lease;
	int			attempt;
	char	   *payload;
	int64_t		next_beat;
	/* one command per run */
	pid_t		pid;			/* 0: none, or it exited */
	int			in_fd, out_fd, err_fd;	/* -1: closed */
	size_t		in_off;
	Buf			out, err;
	int			status;			/* waitpid()'s */
	bool		exited;
	int64_t		term_at;		/* SIGTERM sent (0: not) */
	/* what becomes of it */
	bool		canceled;		/* the server canceled it, or its lease is gone: nothing to report */
	bool		release;		/* stopping: give it back */
	bool		done;			/* its outcome is known: report it */
	bool		ok;
	Buf			outcome;		/* output, or error, as JSON */
} Run;

typedef struct Worker
{
	char	  **tasks;
	int			ntasks;
	char	   *tasks_array;	/* '{a,b}' */
	int			concurrency;
	int			batch;			/* claims and reports go by this many (a quarter of concurrency) */
	int64_t		first_done_at;	/* the oldest outcome not reported yet (0: none) */
	int			lease_ms;
	int			grace_ms;
	int			poll_ms;
	bool		stdio;
	char	  **command;
	PGconn	   *conn;
	Run		   *runs;
	int			running;
	bool		want_claim;
	int64_t		next_poll;
	bool		stopping;
	int64_t		stop_deadline;	/* of the grace */
	bool		released_rest;	/* past it: the runs left were given back */
	/* --stdio: the one command */
	pid_t		child;
	int			child_in, child_out;
	Buf			to_child;
	size_t		to_child_off;
	Buf			from_child;
	int64_t		restart_at;
} Worker;

static int	sig_pipe[2];

static void
on_signal(int signo)
{
	char		c = (char) signo;
	int			save = errno;

	if (write(sig_pipe[1], &c, 1) < 0)
		(void) 0;				/* the pipe is full: a wake-up is pending anyway */
	errno = save;
}

static void
usage(FILE *out)
{
	fprintf(out,
			"Run the runs of external tasks with a command.\n\n"
			"Usage: taskorch worker TASK... [OPTIONS] -- COMMAND [ARGS]\n\n"
			"Options:\n"
			"  -c, --concurrency=N   runs at once (default 1)\n"
			"      --lease=DURATION  lease of each claimed run (default 30s); heartbeats\n"
			"                        every third of it\n"
			"      --stdio           one long-lived COMMAND: a JSON line per run on its\n"
			"                        stdin, a JSON line per result on its stdout\n"
			"      --grace=DURATION  on SIGTERM, how long running commands may finish\n"
			"                        before they are stopped and their runs released\n"
			"                        (default 30s)\n"
			"      --poll=DURATION   claim at least this often (default 5s)\n"
			"  -d, --dbname=CONNINFO the database\n\n"
			"A command per run gets the payload on stdin and TASKORCH_RUN_ID,\n"
			"TASKORCH_TASK, TASKORCH_ATTEMPT, TASKORCH_LEASE in its environment; exit 0\n"
			"with JSON (or nothing) on stdout completes the run, another exit fails the\n"
			"attempt with the end of stderr as its message.  See docs/cli.md.\n");
}

static void
set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/* ---------------------------------------------------------------------
 * The connection
 * ---------------------------------------------------------------------
 */

static void heartbeat_all(Worker *w);

static Worker *the_worker;

/*
 * Stop trying to connect once a stopping worker's grace is over: its runs
 * are freed by their leases (or at once, if their connection ended).
 */
static bool
give_up_connecting(void)
{
	return the_worker->stopping && now_ms() >= the_worker->stop_deadline;
}

static void
connect_worker(Worker *w)
{
	PGresult   *res;

	if (w->conn)
		PQfinish(w->conn);
	w->conn = db_connect_until(give_up_connecting);
	res = db_query(w->conn, "LISTEN taskorch_external", 0, NULL);
	PQclear(res);
	w->want_claim = true;
}

/*
 * Run a statement; when the connection is gone, make it again (binding
 * the runs held to it) and run the statement once more.  Returns the
 * result, whatever its status.
 */
static PGresult *
worker_query(Worker *w, const char *sql, int n, const char *const *params)
{
	for (;;)
	{
		PGresult   *res = db_query(w->conn, sql, n, params);

		if (!db_connection_lost(w->conn))
			return res;
		PQclear(res);
		fprintf(stderr, "taskorch worker: the connection was lost; connecting again\n");
		connect_worker(w);
		heartbeat_all(w);
	}
}

static bool
result_ok(PGresult *res)
{
	return PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK;
}

/* A lease that is no longer current (SQLSTATE 55000): the run is not ours */
static bool
lease_gone(PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	return state && strcmp(state, "55000") == 0;
}

/* ---------------------------------------------------------------------
 * Commands
 * ---------------------------------------------------------------------
 */

static void
stop_command(Run *r)
{
	if (r->pid > 0 && !r->exited && r->term_at == 0)
	{
		kill(-r->pid, SIGTERM);	/* its process group: what it started too */
		r->term_at = now_ms();
	}
}

static void
start_command(Worker *w, Run *r)
{
	int			in[2], out[2], err[2];
	char		attempt[16];

	if (pipe(in) < 0 || pipe(out) < 0 || pipe(err) < 0)
		die(EXIT_SERVER, "pipe: %s", strerror(errno));
	r->pid = fork();
	if (r->pid < 0)
		die(EXIT_SERVER, "fork: %s", strerror(errno));
	if (r->pid == 0)
	{
		setpgid(0, 0);			/* a group of its own, stopped as one */
#ifdef __linux__
		prctl(PR_SET_PDEATHSIG, SIGTERM);	/* and stopped if the worker dies */
#endif
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		close(in[1]);
		close(out[0]);
		close(err[0]);
		snprintf(attempt, sizeof(attempt), "%d", r->attempt);
		setenv("TASKORCH_RUN_ID", r->id, 1);
		setenv("TASKORCH_TASK", r->task, 1);
		setenv("TASKORCH_ATTEMPT", attempt, 1);
		setenv("TASKORCH_LEASE", r->lease, 1);
		signal(SIGPIPE, SIG_DFL);
		execvp(w->command[0], w->command);
		fprintf(stderr, "taskorch worker: cannot run %s: %s\n", w->command[0], strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	r->in_fd = in[1];
	r->out_fd = out[0];
	r->err_fd = err[0];
	set_nonblock(r->in_fd);
	set_nonblock(r->out_fd);
	set_nonblock(r->err_fd);
	r->in_off = 0;
}

static void
start_stdio_child(Worker *w)
{
	int			in[2], out[2];

	if (pipe(in) < 0 || pipe(out) < 0)
		die(EXIT_SERVER, "pipe: %s", strerror(errno));
	w->child = fork();
	if (w->child < 0)
		die(EXIT_SERVER, "fork: %s", strerror(errno));
	if (w->child == 0)
	{
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		signal(SIGPIPE, SIG_DFL);
#ifdef __linux__
		prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
		execvp(w->command[0], w->command);
		fprintf(stderr, "taskorch worker: cannot run %s: %s\n", w->command[0], strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	w->child_in = in[1];
	w->child_out = out[0];
	set_nonblock(w->child_in);
	set_nonblock(w->child_out);
	buf_reset(&w->to_child);
	w->to_child_off = 0;
	buf_reset(&w->from_child);
}

/* The command of run r ended: decide what to report */
static void
command_ended(Run *r)
{
	r->done = true;
	buf_reset(&r->outcome);
	if (WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0)
	{
		const char *p = r->out.data;

		while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
			p++;
		r->ok = true;
		buf_str(&r->outcome, *p ? r->out.data : "null");
		return;
	}
	r->ok = false;
	buf_str(&r->outcome, "{\"message\": ");
	{
		Buf			msg;
		const char *tail = r->err.data;
		size_t		len = r->err.len;

		while (len > 0 && (tail[len - 1] == '\n' || tail[len - 1] == ' '))
			len--;
		buf_init(&msg);
		if (len > 0)
			buf_add(&msg, tail, len);
		else if (WIFEXITED(r->status))
			buf_printf(&msg, "the command exited with %d", WEXITSTATUS(r->status));
		else
			buf_printf(&msg, "the command was killed by signal %d", WTERMSIG(r->status));
		buf_json_string(&r->outcome, msg.data);
		buf_free(&msg);
	}
	if (WIFEXITED(r->status))
		buf_printf(&r->outcome, ", \"exitCode\": %d}", WEXITSTATUS(r->status));
	else
		buf_printf(&r->outcome, ", \"signal\": %d}", WTERMSIG(r->status));
}

/* Read what a command wrote (stdout whole, stderr's tail); false at EOF */
static bool
drain(int fd, Buf *b, bool tail_only)
{
	char		chunk[65536];

	for (;;)
	{
		ssize_t		n = read(fd, chunk, sizeof(chunk));

		if (n > 0)
		{
			buf_add(b, chunk, n);
			if (tail_only && b->len > ERR_TAIL)
			{
				memmove(b->data, b->data + b->len - ERR_TAIL, ERR_TAIL);
				b->len = ERR_TAIL;
				b->data[b->len] = '\0';
			}
			else if (b->len > MAX_OUTPUT)
				return false;	/* past any output the server takes */
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return true;
		return false;
	}
}

static void
free_run(Worker *w, Run *r)
{
	free(r->id);
	free(r->task);
	free(r->lease);
	free(r->payload);
	buf_free(&r->out);
	buf_free(&r->err);
	buf_free(&r->outcome);
	memset(r, 0, sizeof(Run));
	r->in_fd = r->out_fd = r->err_fd = -1;
	w->running--;
	w->want_claim = true;
}

/* ---------------------------------------------------------------------
 * The protocol
 * ---------------------------------------------------------------------
 */

static Run *
find_run(Worker *w, const char *id, size_t len)
{
	for (int i = 0; i < w->concurrency; i++)
		if (w->runs[i].used && strlen(w->runs[i].id) == len && strncmp(w->runs[i].id, id, len) == 0)
			return &w->runs[i];
	return NULL;
}

static void
send_stdio(Worker *w, Run *r)
{
	buf_str(&w->to_child, "{\"id\": ");
	buf_json_string(&w->to_child, r->id);
	buf_str(&w->to_child, ", \"task\": ");
	buf_json_string(&w->to_child, r->task);
	buf_printf(&w->to_child, ", \"attempt\": %d, \"payload\": %s}\n", r->attempt, r->payload);
}

static void
claim(Worker *w)
{
	char		n[16], lease[32];
	const char *params[3] = {w->tasks_array, n, lease};
	PGresult   *res;
	int			want = w->concurrency - w->running;
	int			got;

	snprintf(n, sizeof(n), "%d", want);
	snprintf(lease, sizeof(lease), "%d milliseconds", w->lease_ms);
	res = worker_query(w, "SELECT run_id, task, payload, attempt, lease"
					   "  FROM taskorch.claim_runs($1::text[], $2::int, $3)", 3, params);
	if (!result_ok(res))
		die(EXIT_SERVER, "could not claim runs: %s", PQresultErrorMessage(res));
	got = PQntuples(res);
	for (int i = 0, slot = 0; i < got; i++)
	{
		Run		   *r;

		while (w->runs[slot].used)
			slot++;
		r = &w->runs[slot];
		r->used = true;
		r->id = xstrdup(PQgetvalue(res, i, 0));
		r->task = xstrdup(PQgetvalue(res, i, 1));
		r->payload = xstrdup(PQgetvalue(res, i, 2));
		r->attempt = atoi(PQgetvalue(res, i, 3));
		r->lease = xstrdup(PQgetvalue(res, i, 4));
		r->next_beat = now_ms() + w->lease_ms / 3;
		buf_init(&r->out);
		buf_init(&r->err);
		buf_init(&r->outcome);
		r->in_fd = r->out_fd = r->err_fd = -1;
		w->running++;
		if (w->stdio)
			send_stdio(w, r);
		else
			start_command(w, r);
	}
	PQclear(res);
	w->want_claim = got == want;	/* a full claim: more may be due */
	w->next_poll = now_ms() + w->poll_ms;
}

/* A heartbeat for each run due one (all: after a reconnection) */
static void
heartbeat_run(Worker *w, Run *r)
{
	const char *params[1] = {r->lease};
	PGresult   *res = db_query(w->conn, "SELECT canceled FROM taskorch.heartbeat($1)", 1, params);

	r->next_beat = now_ms() + w->lease_ms / 3;
	if (db_connection_lost(w->conn))
	{
		PQclear(res);
		return;					/* the next statement connects again */
	}
	if ((result_ok(res) && strcmp(PQgetvalue(res, 0, 0), "t") == 0) || lease_gone(res))
	{
		/* canceled, or lost meanwhile: stop its work, report nothing */
		r->canceled = true;
		if (w->stdio)
		{
			/* its answer, if one comes, is for no run of ours any more */
			buf_str(&w->to_child, "{\"id\": ");
			buf_json_string(&w->to_child, r->id);
			buf_str(&w->to_child, ", \"cancel\": true}\n");
			r->done = true;
		}
		else
			stop_command(r);
	}
	else if (!result_ok(res))
		fprintf(stderr, "taskorch worker: heartbeat of %s: %s", r->id, PQresultErrorMessage(res));
	PQclear(res);
}

static void
heartbeat_all(Worker *w)
{
	for (int i = 0; i < w->concurrency; i++)
		if (w->runs[i].used && !w->runs[i].done && !w->runs[i].canceled)
			heartbeat_run(w, &w->runs[i]);
}

/*
 * Report the outcomes known, in one statement: complete_runs() settles
 * each on its own, so a lease gone (canceled meanwhile) spoils no other.
 */
static void
report(Worker *w)
{
	Buf			outcomes;
	bool		any = false;
	PGresult   *res;
	const char *params[1];

	buf_init(&outcomes);
	buf_str(&outcomes, "[");
	for (int i = 0; i < w->concurrency; i++)
	{
		Run		   *r = &w->runs[i];

		if (!r->used || !r->done || r->canceled)
			continue;
		buf_str(&outcomes, any ? ", {\"lease\": " : "{\"lease\": ");
		buf_json_string(&outcomes, r->lease);
		if (r->release)
			buf_str(&outcomes, ", \"release\": true}");
		else
		{
			/* as text: the server parses each, so one bad output spoils no other */
			buf_str(&outcomes, r->ok ? ", \"output_text\": " : ", \"error_text\": ");
			buf_json_string(&outcomes, r->outcome.data);
			buf_str(&outcomes, "}");
		}
		any = true;
	}
	buf_str(&outcomes, "]");
	if (any)
	{
		params[0] = outcomes.data;
		res = worker_query(w, "SELECT lease, status, error FROM taskorch.complete_runs($1)", 1, params);
		if (!result_ok(res))
			fprintf(stderr, "taskorch worker: could not report outcomes: %s", PQresultErrorMessage(res));
		else
			for (int k = 0; k < PQntuples(res); k++)
				if (!PQgetisnull(res, k, 2))
					fprintf(stderr, "taskorch worker: %s\n", PQgetvalue(res, k, 2));
		PQclear(res);
	}
	buf_free(&outcomes);
	for (int i = 0; i < w->concurrency; i++)
		if (w->runs[i].used && w->runs[i].done)
			free_run(w, &w->runs[i]);
}

/* ---------------------------------------------------------------------
 * The loop
 * ---------------------------------------------------------------------
 */

/* The --stdio command's answers, a line each */
static void
read_answers(Worker *w)
{
	char	   *line = w->from_child.data;
	char	   *nl;

	while ((nl = strchr(line, '\n')) != NULL)
	{
		const char *v;
		size_t		len;
		Run		   *r = NULL;

		*nl = '\0';
		if (json_line_field(line, "id", &v, &len) && len >= 2 && v[0] == '"')
			r = find_run(w, v + 1, len - 2);
		if (r == NULL || r->done)
		{
			if (!json_line_field(line, "id", &v, &len))
				fprintf(stderr, "taskorch worker: an answer without an \"id\": %s\n", line);
		}
		else
		{
			r->done = true;
			buf_reset(&r->outcome);
			if (json_line_field(line, "error", &v, &len))
				r->ok = false;
			else if (!json_line_field(line, "output", &v, &len))
			{
				v = "null";
				len = 4;
				r->ok = true;
			}
			else
				r->ok = true;
			buf_add(&r->outcome, v, len);
		}
		line = nl + 1;
	}
	{
		size_t		rest = strlen(line);

		memmove(w->from_child.data, line, rest + 1);
		w->from_child.len = rest;
	}
}

/* The --stdio command exited: its runs in flight fail, and it starts again */
static void
stdio_child_exited(Worker *w, int status)
{
	for (int i = 0; i < w->concurrency; i++)
	{
		Run		   *r = &w->runs[i];

		if (!r->used || r->done)
			continue;
		r->done = true;
		r->ok = false;
		buf_reset(&r->outcome);
		buf_printf(&r->outcome, "{\"message\": \"the worker command exited (status %d) during the run\"}",
				   status);
	}
	close(w->child_in);
	close(w->child_out);
	w->child = 0;
	w->restart_at = now_ms() + RESTART_AFTER_MS;
}

static void
reap(Worker *w)
{
	int			status;
	pid_t		pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
	{
		if (w->stdio && pid == w->child)
		{
			stdio_child_exited(w, status);
			continue;
		}
		for (int i = 0; i < w->concurrency; i++)
			if (w->runs[i].used && w->runs[i].pid == pid)
			{
				w->runs[i].exited = true;
				w->runs[i].status = status;
			}
	}
}

static void
handle_signals(Worker *w)
{
	char		c;

	while (read(sig_pipe[0], &c, 1) == 1)
	{
		if (c == SIGCHLD)
			reap(w);
		else if (!w->stopping)
		{
			w->stopping = true;
			w->stop_deadline = now_ms() + w->grace_ms;
			fprintf(stderr, "taskorch worker: stopping: %d run%s to finish (grace %d ms)\n",
					w->running, w->running == 1 ? "" : "s", w->grace_ms);
		}
	}
}

/* Past the grace period: stop the commands, give their runs back */
static void
release_the_rest(Worker *w)
{
	for (int i = 0; i < w->concurrency; i++)
	{
		Run		   *r = &w->runs[i];

		if (!r->used || r->done)
			continue;
		r->release = true;
		if (w->stdio)
			r->done = true;		/* given back at once; the command is stopped below */
		else
			stop_command(r);
	}
	if (w->stdio && w->child > 0)
		kill(w->child, SIGTERM);
}

/*
 * Notifications that a task of ours has due runs: those read with the last
 * statements' results, and those read from the socket.
 */
static void
notifications(Worker *w)
{
	PGnotify   *n;

	while ((n = PQnotifies(w->conn)) != NULL)
	{
		for (int t = 0; t < w->ntasks; t++)
			if (strcmp(n->extra, w->tasks[t]) == 0)
				w->want_claim = true;
		PQfreemem(n);
	}
}

static int
worker_loop(Worker *w)
{
	struct pollfd *fds = xmalloc(sizeof(struct pollfd) * (3 * w->concurrency + 4));

	for (;;)
	{
		int64_t		now = now_ms();
		int64_t		timeout = w->poll_ms;
		int			nfds = 0;
		int			to_report = 0;

		/* commands that ended: their outcome */
		for (int i = 0; i < w->concurrency; i++)
		{
			Run		   *r = &w->runs[i];

			if (!w->stdio && r->used && !r->done && r->exited)
			{
				/* what it wrote before it exited; what it started may hold the pipes */
				if (r->out_fd >= 0)
				{
					(void) drain(r->out_fd, &r->out, false);
					close(r->out_fd);
					r->out_fd = -1;
				}
				if (r->err_fd >= 0)
				{
					(void) drain(r->err_fd, &r->err, true);
					close(r->err_fd);
					r->err_fd = -1;
				}
				if (r->in_fd >= 0)
				{
					close(r->in_fd);
					r->in_fd = -1;
				}
				command_ended(r);
				if (r->release || r->canceled)
					r->ok = false;
			}
			if (r->used && r->done && r->canceled)
				free_run(w, r);
			else if (r->used && r->done)
				to_report++;
			/* SIGKILL what does not stop */
			if (r->used && r->term_at && !r->exited && now - r->term_at > KILL_AFTER_MS)
				kill(-r->pid, SIGKILL);
		}
		/*
		 * Outcomes go in batches: a quarter of the slots, every run held, or
		 * the oldest waiting REPORT_WAIT_MS; claims too, once a quarter of
		 * the slots is free (or all): a transaction per run would cost a
		 * commit per run.
		 */
		if (to_report == 0)
			w->first_done_at = 0;
		else if (w->first_done_at == 0)
			w->first_done_at = now;
		if (to_report > 0 && (to_report >= w->batch || to_report == w->running ||
							  now - w->first_done_at >= REPORT_WAIT_MS || w->stopping))
		{
			report(w);
			w->first_done_at = 0;
		}
		else if (to_report > 0 && w->first_done_at + REPORT_WAIT_MS - now < timeout)
			timeout = w->first_done_at + REPORT_WAIT_MS - now;
		notifications(w);		/* some came with the results of the statements above */
		if (w->stopping)
		{
			if (w->running == 0)
				break;
			if (now >= w->stop_deadline && !w->released_rest)
			{
				release_the_rest(w);
				w->released_rest = true;
			}
			timeout = 100;
		}
		else
		{
			bool		room = w->running == 0 || w->concurrency - w->running >= w->batch;

			if (w->stdio && w->child == 0 && now >= w->restart_at)
				start_stdio_child(w);
			else if (w->stdio && w->child == 0 && w->restart_at - now < timeout)
				timeout = w->restart_at - now;

			if (room && (w->want_claim || now >= w->next_poll) && (!w->stdio || w->child > 0))
			{
				claim(w);
				continue;		/* start the runs, then look again */
			}
			/* no room: the next claim waits for runs to end, not for a time */
			if (room && w->next_poll - now < timeout)
				timeout = w->next_poll - now;
		}
		/* heartbeats */
		for (int i = 0; i < w->concurrency; i++)
		{
			Run		   *r = &w->runs[i];

			if (!r->used || r->done || r->canceled)
				continue;
			if (r->next_beat <= now)
				heartbeat_run(w, r);
			if (r->next_beat - now < timeout)
				timeout = r->next_beat - now;
		}

		notifications(w);		/* read with the heartbeats' results */
		if (w->want_claim && !w->stopping &&
			(w->running == 0 || w->concurrency - w->running >= w->batch))
			timeout = 0;
		fds[nfds++] = (struct pollfd) {sig_pipe[0], POLLIN, 0};
		fds[nfds++] = (struct pollfd) {PQsocket(w->conn), POLLIN, 0};
		if (w->stdio && w->child > 0)
		{
			fds[nfds++] = (struct pollfd) {w->child_out, POLLIN, 0};
			if (w->to_child_off < w->to_child.len)
				fds[nfds++] = (struct pollfd) {w->child_in, POLLOUT, 0};
		}
		for (int i = 0; i < w->concurrency; i++)
		{
			Run		   *r = &w->runs[i];

			if (!r->used || w->stdio)
				continue;
			if (r->out_fd >= 0)
				fds[nfds++] = (struct pollfd) {r->out_fd, POLLIN, 0};
			if (r->err_fd >= 0)
				fds[nfds++] = (struct pollfd) {r->err_fd, POLLIN, 0};
			if (r->in_fd >= 0)
				fds[nfds++] = (struct pollfd) {r->in_fd, POLLOUT, 0};
		}
		if (timeout < 0)
			timeout = 0;
		if (poll(fds, nfds, (int) timeout) < 0 && errno != EINTR)
			die(EXIT_SERVER, "poll: %s", strerror(errno));

		handle_signals(w);
		/* the server: notifications that tasks have due runs */
		if (PQconsumeInput(w->conn) == 0)
		{
			fprintf(stderr, "taskorch worker: the connection was lost; connecting again\n");
			connect_worker(w);
			heartbeat_all(w);
		}
		notifications(w);
		/* the commands' pipes */
		if (w->stdio && w->child > 0)
		{
			if (w->to_child_off < w->to_child.len)
			{
				ssize_t		k = write(w->child_in, w->to_child.data + w->to_child_off,
									  w->to_child.len - w->to_child_off);

				if (k > 0)
					w->to_child_off += k;
				if (w->to_child_off == w->to_child.len)
				{
					buf_reset(&w->to_child);
					w->to_child_off = 0;
				}
			}
			if (!drain(w->child_out, &w->from_child, false))
				kill(w->child, SIGTERM);	/* it closed its stdout: have it exit */
			read_answers(w);
		}
		for (int i = 0; i < w->concurrency && !w->stdio; i++)
		{
			Run		   *r = &w->runs[i];

			if (!r->used)
				continue;
			if (r->in_fd >= 0)
			{
				size_t		len = strlen(r->payload);
				ssize_t		k = write(r->in_fd, r->payload + r->in_off, len - r->in_off);

				if (k > 0)
					r->in_off += k;
				if (r->in_off == len || (k < 0 && errno != EAGAIN && errno != EINTR))
				{
					close(r->in_fd);
					r->in_fd = -1;
				}
			}
			if (r->out_fd >= 0 && !drain(r->out_fd, &r->out, false))
			{
				close(r->out_fd);
				r->out_fd = -1;
			}
			if (r->err_fd >= 0 && !drain(r->err_fd, &r->err, true))
			{
				close(r->err_fd);
				r->err_fd = -1;
			}
		}
	}
	if (w->stdio && w->child > 0)
	{
		close(w->child_in);		/* EOF: the command may exit on its own */
		kill(w->child, SIGTERM);
	}
	free(fds);
	return EXIT_OK;
}

int
cmd_worker(int argc, char **argv)
{
	static const struct option options[] = {
		{"concurrency", required_argument, NULL, 'c'},
		{"lease", required_argument, NULL, 'l'},
		{"stdio", no_argument, NULL, 's'},
		{"grace", required_argument, NULL, 'g'},
		{"poll", required_argument, NULL, 'p'},
		{"dbname", required_argument, NULL, 'd'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	Worker		w = {0};
	int			c;
	int			dashes = -1;
	Buf			array;
	struct sigaction sa;

	w.concurrency = 1;
	w.lease_ms = 30000;
	w.grace_ms = 30000;
	w.poll_ms = 5000;
	/* COMMAND starts after "--": getopt must not see it */
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--") == 0)
		{
			dashes = i;
			break;
		}
	if (dashes < 0)
	{
		for (int i = 1; i < argc; i++)
			if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			{
				usage(stdout);
				return EXIT_OK;
			}
		fprintf(stderr, "taskorch worker: no command: put it after \"--\"\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	while ((c = getopt_long(dashes, argv, "c:d:h", options, NULL)) != -1)
	{
		switch (c)
		{
			case 'c':
				w.concurrency = atoi(optarg);
				if (w.concurrency < 1 || w.concurrency > 1000)
					die(EXIT_USAGE, "invalid concurrency \"%s\": between 1 and 1000", optarg);
				break;
			case 'l':
				w.lease_ms = parse_seconds(optarg, "lease");
				if (w.lease_ms < 1000)
					die(EXIT_USAGE, "invalid lease \"%s\": at least 1s", optarg);
				break;
			case 's':
				w.stdio = true;
				break;
			case 'g':
				w.grace_ms = parse_seconds(optarg, "grace");
				break;
			case 'p':
				w.poll_ms = parse_seconds(optarg, "poll");
				if (w.poll_ms < 10)
					w.poll_ms = 10;
				break;
			case 'd':
				conninfo = optarg;
				break;
			case 'h':
				usage(stdout);
				return EXIT_OK;
			default:
				usage(stderr);
				return EXIT_USAGE;
		}
	}
	w.batch = w.concurrency / 4 > 1 ? w.concurrency / 4 : 1;
	w.tasks = argv + optind;
	w.ntasks = dashes - optind;
	w.command = argv + dashes + 1;
	if (w.ntasks < 1)
		die(EXIT_USAGE, "worker: name at least one task before \"--\"");
	if (w.command[0] == NULL)
		die(EXIT_USAGE, "worker: no command after \"--\"");
	buf_init(&array);
	buf_str(&array, "{");
	for (int i = 0; i < w.ntasks; i++)
	{
		if (i)
			buf_str(&array, ",");
		buf_json_string(&array, w.tasks[i]);	/* an array element is quoted as a JSON string is */
	}
	buf_str(&array, "}");
	w.tasks_array = array.data;
	w.runs = xmalloc(sizeof(Run) * w.concurrency);
	memset(w.runs, 0, sizeof(Run) * w.concurrency);
	for (int i = 0; i < w.concurrency; i++)
		w.runs[i].in_fd = w.runs[i].out_fd = w.runs[i].err_fd = -1;
	buf_init(&w.to_child);
	buf_init(&w.from_child);

	if (pipe(sig_pipe) < 0)
		die(EXIT_SERVER, "pipe: %s", strerror(errno));
	set_nonblock(sig_pipe[0]);
	set_nonblock(sig_pipe[1]);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	the_worker = &w;
	connect_worker(&w);
	if (w.stdio)
		start_stdio_child(&w);
	return worker_loop(&w);
}
