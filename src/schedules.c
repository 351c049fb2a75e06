/*-------------------------------------------------------------------------
 *
 * schedules.c
 *	  Schedules: runs of a task on a cron expression in a time zone, as
 *	  Trigger.dev's scheduled tasks.  schedule(), unschedule(),
 *	  activate_schedule(), deactivate_schedule(), run_schedule_now(), and
 *	  the maintenance step that fires due ticks (schedules_fire).
 *
 * A schedule keeps its next tick (next_tick, an instant).  The maintenance
 * pass of any worker of the database takes the due schedules FOR UPDATE
 * SKIP LOCKED, makes the runs of their due ticks and moves next_tick past
 * now, in the batch's transaction: a tick's run and the tick's advance
 * commit together or not at all, so each tick makes one run however many
 * workers there are, and a crash or an immediate shutdown before the
 * commit leaves the tick due for the next pass.
 *
 * Ticks missed while the server was down (due before it started):
 * `missed` (options "missed") says how many run, the latest ones: 1 (the
 * default, "latest"), N up to 100, or 0 ("skip").  Ticks due since it
 * started, which the scheduler reached late (busy workers, none running in
 * the database for a while), all run, up to the latest 100.  Overlap (options "overlap"):
 * "allow" (the default) or "skip": no run while the schedule's last run
 * has not finished.
 *
 * Security: a schedule belongs to the role that made it (RLS shows a role
 * its own, taskorch_admin all), which must be able to trigger the task
 * when it schedules it; its runs are triggered as that role (the trigger
 * checks run again at each tick) and execute as the task's owner.  A tick
 * that cannot trigger (the right was revoked, the task is gone) records
 * the error in last_error and the schedule goes on.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(taskorch_schedule);
PG_FUNCTION_INFO_V1(taskorch_unschedule);
PG_FUNCTION_INFO_V1(taskorch_schedule_activate);
PG_FUNCTION_INFO_V1(taskorch_run_schedule_now);

#define MAX_MISSED 100
#define UPCOMING 10				/* the payload's upcoming ticks, as Trigger.dev's */
#define FIRE_LIMIT 1000			/* due schedules a pass takes */

/* ---- plans ---- */

typedef struct ScheduleArgs
{
	PlanValue	id;
	PlanValue	task_id;
	PlanValue	cron;
	PlanValue	timezone;
	PlanValue	payload;
	PlanValue	deduplication_key;
	PlanValue	external_id;
	PlanValue	options;
	PlanValue	overlap;
	PlanValue	missed;
	PlanValue	active;
	PlanValue	owner;
	PlanValue	next_tick;
} ScheduleArgs;

static const PlanField schedule_params[] = {
	PLAN_PARAM(ScheduleArgs, id, TEXTOID),
	PLAN_PARAM(ScheduleArgs, task_id, TEXTOID),
	PLAN_PARAM(ScheduleArgs, cron, TEXTOID),
	PLAN_PARAM(ScheduleArgs, timezone, TEXTOID),
	PLAN_PARAM(ScheduleArgs, payload, JSONBOID),
	PLAN_PARAM(ScheduleArgs, deduplication_key, TEXTOID),
	PLAN_PARAM(ScheduleArgs, external_id, TEXTOID),
	PLAN_PARAM(ScheduleArgs, options, JSONBOID),
	PLAN_PARAM(ScheduleArgs, overlap, TEXTOID),
	PLAN_PARAM(ScheduleArgs, missed, INT4OID),
	PLAN_PARAM(ScheduleArgs, active, BOOLOID),
	PLAN_PARAM(ScheduleArgs, owner, OIDOID),
	PLAN_PARAM(ScheduleArgs, next_tick, TIMESTAMPTZOID),
};

typedef struct IdRow
{
	PlanValue	id;
} IdRow;

static const PlanField id_columns[] = {
	PLAN_COLUMN(IdRow, id),
};

/* a schedule() with an id (found by its deduplication key) updates it */
static NamedPlan upsert_plan = {
	.sql = "INSERT INTO taskorch.schedule AS s (id, task_id, cron, timezone, payload, deduplication_key,"
	"                               external_id, options, overlap, missed, active, owner, next_tick)"
	" VALUES (coalesce(:id, 'sched_' || nextval('taskorch.schedule_id_seq')), :task_id, :cron,"
	"         :timezone, :payload, :deduplication_key, :external_id, :options, :overlap, :missed,"
	"         :active, :owner::regrole, :next_tick)"
	" ON CONFLICT (id) DO UPDATE SET task_id = EXCLUDED.task_id, cron = EXCLUDED.cron,"
	"     timezone = EXCLUDED.timezone, payload = EXCLUDED.payload, external_id = EXCLUDED.external_id,"
	"     options = EXCLUDED.options, overlap = EXCLUDED.overlap, missed = EXCLUDED.missed,"
	"     active = EXCLUDED.active, next_tick = EXCLUDED.next_tick, last_error = NULL,"
	"     updated_at = now()"
	" RETURNING id",
	PLAN_PARAMS(schedule_params), PLAN_COLUMNS(id_columns)
};

typedef struct KeyArgs
{
	PlanValue	key;
	PlanValue	owner;
} KeyArgs;

static const PlanField key_params[] = {
	PLAN_PARAM(KeyArgs, key, TEXTOID),
	PLAN_PARAM(KeyArgs, owner, OIDOID),
};

static NamedPlan by_key_plan = {
	.sql = "SELECT id FROM taskorch.schedule"
	" WHERE deduplication_key = :key AND owner = :owner::regrole",
	PLAN_PARAMS(key_params), PLAN_COLUMNS(id_columns)
};

/* a schedule, as its management and its ticks read it */
typedef struct ScheduleRow
{
	PlanValue	id;
	PlanValue	task_id;
	PlanValue	cron;
	PlanValue	timezone;
	PlanValue	payload;
	PlanValue	external_id;
	PlanValue	options;
	PlanValue	overlap;
	PlanValue	missed;
	PlanValue	owner;			/* the role's OID, 0: it does not exist */
	PlanValue	next_tick;
	PlanValue	last_tick;
	PlanValue	last_running;	/* its last run has not finished */
} ScheduleRow;

static const PlanField schedule_columns[] = {
	PLAN_COLUMN(ScheduleRow, id),
	PLAN_COLUMN(ScheduleRow, task_id),
	PLAN_COLUMN(ScheduleRow, cron),
	PLAN_COLUMN(ScheduleRow, timezone),
	PLAN_COLUMN(ScheduleRow, payload),
	PLAN_COLUMN(ScheduleRow, external_id),
	PLAN_COLUMN(ScheduleRow, options),
	PLAN_COLUMN(ScheduleRow, overlap),
	PLAN_COLUMN(ScheduleRow, missed),
	PLAN_COLUMN(ScheduleRow, owner),
	PLAN_COLUMN(ScheduleRow, next_tick),
	PLAN_COLUMN(ScheduleRow, last_tick),
	PLAN_COLUMN(ScheduleRow, last_running),
};

#define SCHEDULE_COLUMNS \
	"s.id, s.task_id, s.cron, s.timezone, s.payload, s.external_id, s.options, s.overlap," \
	" s.missed, s.owner::oid AS owner, s.next_tick, s.last_tick," \
	" coalesce((SELECT NOT taskorch.finished(r.status) FROM taskorch.run r" \
	"           WHERE r.id = s.last_run_id), false) AS last_running"

typedef struct OneArgs
{
	PlanValue	id;
} OneArgs;

static const PlanField one_params[] = {
	PLAN_PARAM(OneArgs, id, TEXTOID),
};

static NamedPlan one_plan = {
	.sql = "SELECT " SCHEDULE_COLUMNS " FROM taskorch.schedule s WHERE s.id = :id FOR UPDATE",
	PLAN_PARAMS(one_params), PLAN_COLUMNS(schedule_columns)
};

typedef struct NowArgs
{
	PlanValue	now;
} NowArgs;

static const PlanField now_params[] = {
	PLAN_PARAM(NowArgs, now, TIMESTAMPTZOID),
};

static NamedPlan due_plan = {
	.sql = "SELECT " SCHEDULE_COLUMNS " FROM taskorch.schedule s"
	" WHERE s.active AND s.next_tick <= :now"
	" ORDER BY s.next_tick LIMIT 1000 FOR UPDATE SKIP LOCKED",
	PLAN_PARAMS(now_params), PLAN_COLUMNS(schedule_columns),
	.shape = PLAN_INDEX_ORDER
};

typedef struct AdvanceArgs
{
	PlanValue	id;
	PlanValue	next_tick;
	PlanValue	last_tick;		/* NULL: unchanged */
	PlanValue	last_run_id;	/* NULL: unchanged */
	PlanValue	last_error;
} AdvanceArgs;

static const PlanField advance_params[] = {
	PLAN_PARAM(AdvanceArgs, id, TEXTOID),
	PLAN_PARAM(AdvanceArgs, next_tick, TIMESTAMPTZOID),
	PLAN_PARAM(AdvanceArgs, last_tick, TIMESTAMPTZOID),
	PLAN_PARAM(AdvanceArgs, last_run_id, TEXTOID),
	PLAN_PARAM(AdvanceArgs, last_error, TEXTOID),
};

static NamedPlan advance_plan = {
	.sql = "UPDATE taskorch.schedule SET next_tick = :next_tick,"
	"       last_tick = coalesce(:last_tick, last_tick), last_run_id = coalesce(:last_run_id, last_run_id),"
	"       last_error = :last_error"
	" WHERE id = :id",
	PLAN_PARAMS(advance_params)
};

typedef struct ActiveArgs
{
	PlanValue	id;
	PlanValue	active;
	PlanValue	next_tick;
} ActiveArgs;

static const PlanField active_params[] = {
	PLAN_PARAM(ActiveArgs, id, TEXTOID),
	PLAN_PARAM(ActiveArgs, active, BOOLOID),
	PLAN_PARAM(ActiveArgs, next_tick, TIMESTAMPTZOID),
};

static NamedPlan active_plan = {
	.sql = "UPDATE taskorch.schedule SET active = :active, next_tick = :next_tick, updated_at = now()"
	" WHERE id = :id",
	PLAN_PARAMS(active_params)
};

static NamedPlan delete_plan = {
	.sql = "DELETE FROM taskorch.schedule WHERE id = :id",
	PLAN_PARAMS(one_params)
};

/* ---- the options of a schedule ---- */

static const char *const schedule_own_options[] = {"overlap", "missed", NULL};

/*
 * Split `options` into the schedule's own (overlap, missed) and the
 * trigger options of its runs (checked now, so a bad one is refused
 * before the schedule exists); returns those.
 */
static Jsonb *
schedule_options(Jsonb *options, const char **overlap, int *missed)
{
	JsonbValue *v;
	TriggerOptions o;

	*overlap = "allow";
	*missed = 1;
	if (options == NULL)
		return NULL;
	if (!JB_ROOT_IS_OBJECT(options))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("schedule options must be a JSON object"),
				errhint("Pass options such as {\"queue\": \"reports\", \"overlap\": \"skip\"}."));
	if ((v = getKeyJsonValueFromContainer(&options->root, "overlap", 7, NULL)) != NULL)
	{
		*overlap = v->type == jbvString ? pnstrdup(v->val.string.val, v->val.string.len) : "";
		if (strcmp(*overlap, "allow") != 0 && strcmp(*overlap, "skip") != 0)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("invalid schedule option overlap: \"allow\" or \"skip\""),
					errhint("\"skip\" makes no run while the schedule's last run has not finished."));
	}
	if ((v = getKeyJsonValueFromContainer(&options->root, "missed", 6, NULL)) != NULL)
	{
		int32		n;

		if (v->type == jbvString && v->val.string.len == 6 && strncmp(v->val.string.val, "latest", 6) == 0)
			*missed = 1;
		else if (v->type == jbvString && v->val.string.len == 4 && strncmp(v->val.string.val, "skip", 4) == 0)
			*missed = 0;
		else if (jsonb_whole_int4(v, &n) && n >= 1 && n <= MAX_MISSED)
			*missed = n;
		else
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("invalid schedule option missed: \"latest\", \"skip\" or a number from 1 to %d",
						   MAX_MISSED),
					errhint("It says which ticks missed while the server was down run: the latest (the default), none, or the latest N."));
	}
	options = jsonb_without(options, schedule_own_options);
	trigger_options_init(&o);
	o.now = GetCurrentTimestamp();
	if (options)
		trigger_options_jsonb(&o, options, false);
	trigger_options_finish(&o);
	return options;
}

/* ---- ticks ---- */

/* the first tick after `after`, or NULL (none within 10 years) */
static PlanValue
next_tick_after(const CronSpec *c, pg_tz *tz, TimestampTz after)
{
	TimestampTz next;

	return cron_next(c, tz, after, &next) ? pv_timestamptz(next) : PV_NULL;
}

/*
 * The latest `want` ticks from `from` to `now` (oldest first) into out;
 * returns how many.  Looks back through growing windows, so a schedule of
 * every second that missed a day reads a minute of ticks, not a day.
 */
static int
latest_ticks(const CronSpec *c, pg_tz *tz, TimestampTz from, TimestampTz now, int want,
			 TimestampTz *out)
{
	static const int64 windows[] = {USECS_PER_MINUTE, USECS_PER_HOUR, USECS_PER_DAY,
	32 * USECS_PER_DAY, 400 * USECS_PER_DAY, 0};

	if (want <= 0 || from > now)
		return 0;
	for (size_t w = 0; w < lengthof(windows); w++)
	{
		TimestampTz start = (windows[w] == 0 || now - windows[w] < from) ? from - 1 : now - windows[w];
		TimestampTz t = start;
		int			n = 0;

		while (cron_next(c, tz, t, &t) && t <= now)
		{
			if (n == want)
				memmove(out, out + 1, (want - 1) * sizeof(TimestampTz)), n--;
			out[n++] = t;
		}
		if (n == want || start < from)
			return n;
	}
	return 0;
}

/* {timestamp, lastTimestamp, timezone, scheduleId, externalId, upcoming} and the schedule's payload */
static Jsonb *
tick_payload(const ScheduleRow *s, const CronSpec *c, pg_tz *tz, TimestampTz tick,
			 TimestampTz last, bool has_last)
{
	JsonObject	o;
	JsonbParseState *state = NULL;
	JsonbValue	v;
	TimestampTz t = tick;
	Jsonb	   *fields;

	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < UPCOMING && cron_next(c, tz, t, &t); i++)
	{
		v.type = jbvString;
		v.val.string.val = iso_time(t);
		v.val.string.len = strlen(v.val.string.val);
		pushJsonbValue(&state, WJB_ELEM, &v);
	}
	json_begin(&o);
	json_string(&o, "timestamp", iso_time(tick));
	json_string(&o, "lastTimestamp", has_last ? iso_time(last) : NULL);
	json_string(&o, "timezone", pv_cstring(s->timezone));
	json_string(&o, "scheduleId", pv_cstring(s->id));
	json_string(&o, "externalId", s->external_id.present ? pv_cstring(s->external_id) : NULL);
	json_jsonb(&o, "upcoming", JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_ARRAY, NULL)));
	fields = json_end(&o);
	if (!s->payload.present)
		return fields;
	return DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, s->payload.datum, JsonbPGetDatum(fields)));
}

/* A run of the schedule's task, triggered as the schedule's owner (who must exist). */
static char *
trigger_as_owner(const ScheduleRow *s, Jsonb *payload)
{
	Oid			owner = DatumGetObjectId(s->owner.datum);
	Oid			save_uid;
	int			save_sec;
	TriggerOptions o;
	char	   *run_id;

	if (!OidIsValid(owner))
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("the role that owns schedule %s does not exist", pv_cstring(s->id)),
				errhint("Create the role (see taskorch.missing_roles), or unschedule it."));
	GetUserIdAndSecContext(&save_uid, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	trigger_options_init(&o);
	o.now = GetCurrentTimestamp();
	if (s->options.present)
		trigger_options_jsonb(&o, DatumGetJsonbP(s->options.datum), false);
	trigger_options_finish(&o);
	run_id = TextDatumGetCString(create_run(pv_cstring(s->task_id), payload, &o, NULL));
	SetUserIdAndSecContext(save_uid, save_sec);
	return run_id;
}

/*
 * Fire one tick in a subtransaction: the run's id, or NULL with the
 * error's message in *error (the tick is over either way).
 */
static char *
fire_tick(const ScheduleRow *s, Jsonb *payload, char **error)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	Oid			save_uid;
	int			save_sec;
	char	   *run_id = NULL;

	GetUserIdAndSecContext(&save_uid, &save_sec);
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		run_id = trigger_as_owner(s, payload);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		SetUserIdAndSecContext(save_uid, save_sec);
		*error = edata->message;
		run_id = NULL;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return run_id;
}

/* The due ticks of one schedule (locked), its runs, and its next tick. */
static int
fire_schedule(ScheduleRow *s, TimestampTz now)
{
	CronSpec	c;
	pg_tz	   *tz;
	TimestampTz ticks[MAX_MISSED];
	TimestampTz from;
	int			missed = DatumGetInt32(s->missed.datum);
	int			n;
	int			made = 0;
	AdvanceArgs adv = {0};
	bool		has_last = s->last_tick.present;
	TimestampTz last = has_last ? DatumGetTimestampTz(s->last_tick.datum) : 0;

	cron_parse(pv_cstring(s->cron), &c);
	tz = cron_timezone(pv_cstring(s->timezone));
	/*
	 * Ticks from before the server started were missed while it was down:
	 * the latest `missed` of them run.  Ticks since, the scheduler was only
	 * late for (busy workers): they all run (the latest MAX_MISSED).
	 */
	from = DatumGetTimestampTz(s->next_tick.datum);
	n = 0;
	if (from < PgStartTime)
	{
		if (missed > 0)
			n = latest_ticks(&c, tz, from, Min(now, PgStartTime - 1), missed, ticks);
		from = PgStartTime;
	}
	n += latest_ticks(&c, tz, from, now, MAX_MISSED - n, ticks + n);
	if (DatumGetBool(s->last_running.datum) && strcmp(pv_cstring(s->overlap), "skip") == 0)
		n = 0;					/* its last run goes on: no overlap */
	adv.id = s->id;
	for (int i = 0; i < n; i++)
	{
		char	   *error = NULL;
		char	   *run_id = fire_tick(s, tick_payload(s, &c, tz, ticks[i], last, has_last), &error);

		adv.last_tick = pv_timestamptz(ticks[i]);
		adv.last_error = error ? pv_text(error) : PV_NULL;
		if (run_id)
			adv.last_run_id = pv_text(run_id), made++;
		last = ticks[i], has_last = true;
	}
	adv.next_tick = next_tick_after(&c, tz, now);
	taskorch_execute_args(&advance_plan, &adv, false, 0);
	return made;
}

/*
 * Maintenance: fire the due ticks of the schedules of this database, up to
 * FIRE_LIMIT schedules (*more: there may be more due).  The caller commits
 * (worker.c: a transaction of its own).  Returns the runs made.
 */
int
schedules_fire(bool *more)
{
	NowArgs		args = {pv_timestamptz(GetCurrentTimestamp())};
	MemoryContext cxt = CurrentMemoryContext;
	ScheduleRow *rows;
	int			n;
	int			made = 0;

	SPI_connect();
	n = taskorch_execute_args(&due_plan, &args, false, FIRE_LIMIT);
	rows = MemoryContextAlloc(cxt, Max(n, 1) * sizeof(ScheduleRow));
	for (int i = 0; i < n; i++)
		taskorch_read_row(&due_plan, i, &rows[i]);
	for (int i = 0; i < n; i++)
		made += fire_schedule(&rows[i], DatumGetTimestampTz(args.now.datum));
	SPI_finish();
	*more = n == FIRE_LIMIT;
	return made;
}

/* ---- the SQL functions ---- */

/* The schedule `id`, locked, if the caller may manage it (inside SPI). */
static void
own_schedule(FunctionCallInfo fcinfo, ScheduleRow *s)
{
	OneArgs		args;
	char	   *id;

	require_arg(fcinfo, 0, "schedule", "Pass the id schedule() returned; see taskorch.schedules.");
	id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	args.id = pv_text(id);
	if (taskorch_execute_args(&one_plan, &args, false, 1) == 0)
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("schedule \"%s\" does not exist", id),
				errhint("taskorch.schedules lists the schedules you may see."));
	taskorch_read_row(&one_plan, 0, s);
	if (!acts_for(DatumGetObjectId(s->owner.datum)) && !is_taskorch_admin())
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("schedule \"%s\" does not exist", id),
				errhint("taskorch.schedules lists the schedules you may see."));
}

/*
 * SQL: taskorch.schedule(task, cron, timezone, payload, deduplication_key,
 * external_id, options, active) -> schedule id.  The same deduplication
 * key (of the caller's role) updates that schedule.
 */
Datum
taskorch_schedule(PG_FUNCTION_ARGS)
{
	ScheduleArgs a = {0};
	CronSpec	c;
	pg_tz	   *tz;
	const char *overlap;
	int			missed;
	Jsonb	   *options;
	IdRow		row;
	char	   *cron;
	char	   *id;
	MemoryContext caller = CurrentMemoryContext;

	require_args(fcinfo, 3, "task, cron and timezone", "Pass a task's id and a cron expression such as '0 9 * * 1-5'.");
	require_arg(fcinfo, 7, "active", "Pass true or false.");
	cron = text_to_cstring(PG_GETARG_TEXT_PP(1));
	cron_parse(cron, &c);
	tz = cron_timezone(text_to_cstring(PG_GETARG_TEXT_PP(2)));
	if (!PG_ARGISNULL(3) && !JB_ROOT_IS_OBJECT(PG_GETARG_JSONB_P(3)))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("a schedule's payload must be a JSON object"),
				errhint("Its fields are added to those of each tick: timestamp, lastTimestamp, timezone, scheduleId, externalId, upcoming."));
	if (!PG_ARGISNULL(4))
		check_key("deduplication_key", VARDATA_ANY(PG_GETARG_TEXT_PP(4)),
				  VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(4)));
	options = schedule_options(PG_ARGISNULL(6) ? NULL : PG_GETARG_JSONB_P(6), &overlap, &missed);
	a.task_id = pv_text(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	trigger_check_task(pv_cstring(a.task_id));
	a.cron = pv_text(cron);
	a.timezone = pv_text(text_to_cstring(PG_GETARG_TEXT_PP(2)));
	a.payload = PG_ARGISNULL(3) ? PV_NULL : pv_jsonb(PG_GETARG_JSONB_P(3));
	a.deduplication_key = PG_ARGISNULL(4) ? PV_NULL : pv_text(text_to_cstring(PG_GETARG_TEXT_PP(4)));
	a.external_id = PG_ARGISNULL(5) ? PV_NULL : pv_text(text_to_cstring(PG_GETARG_TEXT_PP(5)));
	a.options = pv_jsonb(options);
	a.overlap = pv_text(overlap);
	a.missed = pv_int4(missed);
	a.active = pv_bool(PG_GETARG_BOOL(7));
	a.owner = pv_oid(GetUserId());
	a.next_tick = PG_GETARG_BOOL(7) ? next_tick_after(&c, tz, GetCurrentTimestamp()) : PV_NULL;
	SPI_connect();
	if (a.deduplication_key.present)
	{
		KeyArgs		key = {a.deduplication_key, a.owner};

		lock_role_key(LOCK_SCHEDULE_KEY, "", pv_cstring(a.deduplication_key));
		if (taskorch_execute_args_latest(&by_key_plan, &key, 1) == 1)
		{
			taskorch_read_row(&by_key_plan, 0, &row);
			a.id = row.id;
		}
	}
	taskorch_execute_args(&upsert_plan, &a, false, 1);
	taskorch_read_row(&upsert_plan, 0, &row);
	id = MemoryContextStrdup(caller, pv_cstring(row.id));
	SPI_finish();
	taskorch_wake_at_commit();	/* a worker recomputes when to wake */
	PG_RETURN_TEXT_P(cstring_to_text(id));
}

/* SQL: taskorch.unschedule(schedule) */
Datum
taskorch_unschedule(PG_FUNCTION_ARGS)
{
	ScheduleRow s;

	SPI_connect();
	own_schedule(fcinfo, &s);
	taskorch_execute_args(&delete_plan, &(OneArgs) {s.id}, false, 0);
	SPI_finish();
	PG_RETURN_VOID();
}

/* SQL: activate_schedule(schedule) and deactivate_schedule(schedule): taskorch_schedule_activate(schedule, active) */
Datum
taskorch_schedule_activate(PG_FUNCTION_ARGS)
{
	ScheduleRow s;
	ActiveArgs	a;
	bool		active = PG_GETARG_BOOL(1);

	SPI_connect();
	own_schedule(fcinfo, &s);
	a.id = s.id;
	a.active = pv_bool(active);
	a.next_tick = PV_NULL;
	if (active)
	{
		CronSpec	c;

		cron_parse(pv_cstring(s.cron), &c);
		a.next_tick = next_tick_after(&c, cron_timezone(pv_cstring(s.timezone)), GetCurrentTimestamp());
	}
	taskorch_execute_args(&active_plan, &a, false, 0);
	SPI_finish();
	taskorch_wake_at_commit();
	PG_RETURN_VOID();
}

/*
 * SQL: taskorch.run_schedule_now(schedule) -> run id: a run as a tick
 * now would make, triggered as the schedule's owner; the schedule's own
 * ticks go on as they were.
 */
Datum
taskorch_run_schedule_now(PG_FUNCTION_ARGS)
{
	ScheduleRow s;
	CronSpec	c;
	TimestampTz now = GetCurrentTimestamp();
	AdvanceArgs adv = {0};
	char	   *run_id;
	MemoryContext caller = CurrentMemoryContext;

	SPI_connect();
	own_schedule(fcinfo, &s);
	cron_parse(pv_cstring(s.cron), &c);
	run_id = trigger_as_owner(&s, tick_payload(&s, &c, cron_timezone(pv_cstring(s.timezone)), now,
											   s.last_tick.present ? DatumGetTimestampTz(s.last_tick.datum) : 0,
											   s.last_tick.present));
	adv.id = s.id;
	adv.next_tick = s.next_tick;
	adv.last_run_id = pv_text(run_id);
	taskorch_execute_args(&advance_plan, &adv, false, 0);
	run_id = MemoryContextStrdup(caller, run_id);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(run_id));
}
