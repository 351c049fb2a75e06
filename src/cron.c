/*-------------------------------------------------------------------------
 *
 * cron.c
 *	  Cron expressions: parsing, the next times they name in a time zone,
 *	  and a description in words.
 *
 *	  [second] minute hour day-of-month month day-of-week
 *	  each field: a star (every value), a number or name, a range a-b, a
 *	  step (a star, a range or a start a, then /n: every n from there),
 *	  and lists of these: 1,15,20-25
 *	  macros: yearly (annually), monthly, weekly, daily (midnight), hourly
 *
 * Months take JAN..DEC, days of the week SUN..SAT (0 and 7 are Sunday),
 * in any case.  Day-of-month and day-of-week combine as in Vixie cron:
 * when both are restricted (neither field starts with '*'), a day matches
 * if either matches; otherwise both must ("0 0 1 * MON" is the 1st and
 * every Monday; with a step from a star in the day of month, every other
 * day, it is the Mondays of odd days).
 *
 * Times are found in the time zone's wall clock, then made instants by
 * PostgreSQL's own rule for local times (DetermineTimeZoneOffset): a time
 * that does not exist (spring forward: 02:30 in Europe/Paris on the last
 * Sunday of March) is read in standard time, an hour later (03:30); a time
 * that exists twice (fall back) is its second occurrence, in standard
 * time.  Instants only increase: a wall time that maps to an instant not
 * after the last is passed over, so every schedule has one run per
 * matching wall time and none twice.
 *
 * Invariants: a CronSpec has at least one value in every field; every
 * malformed expression is an error (22023) naming the field and the value
 * before anything is written.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "pgtime.h"
#include "port/pg_bitutils.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(taskorch_cron_next);
PG_FUNCTION_INFO_V1(taskorch_cron_describe);

typedef struct CronField
{
	const char *name;			/* as errors and descriptions say it */
	int			lo;
	int			hi;
	const char *const *names;	/* NULL, or names of lo..hi */
} CronField;

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL",
"AUG", "SEP", "OCT", "NOV", "DEC"};
static const char *const weekday_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

enum
{
	F_SECOND, F_MINUTE, F_HOUR, F_DAY, F_MONTH, F_WEEKDAY, N_FIELDS
};

static const CronField fields[N_FIELDS] = {
	{"second", 0, 59, NULL},
	{"minute", 0, 59, NULL},
	{"hour", 0, 23, NULL},
	{"day of month", 1, 31, NULL},
	{"month", 1, 12, month_names},
	{"day of week", 0, 7, weekday_names},	/* 7: Sunday again */
};

static const struct
{
	const char *name;
	const char *expr;
}			macros[] = {
	{"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
	{"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"}, {"@midnight", "0 0 * * *"},
	{"@hourly", "0 * * * *"},
};

static void
bad_cron(const char *expr, const char *message)
{
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("invalid cron expression \"%s\": %s", expr, message),
			errhint("Write five fields, minute hour day-of-month month day-of-week (\"0 9 * * 1-5\"), "
					"or six with seconds first, or @hourly, @daily, @weekly, @monthly, @yearly."));
}

/* a number or (for months and days of the week) a name, in field f */
static int
field_value(const char *expr, int f, const char *s, const char *end)
{
	const CronField *fd = &fields[f];
	int			v = 0;
	const char *p;

	if (s == end)
		bad_cron(expr, psprintf("%s field has an empty value", fd->name));
	if (isalpha((unsigned char) *s))
	{
		int			n = fd->names ? (f == F_MONTH ? 12 : 7) : 0;

		for (int i = 0; i < n; i++)
			if (end - s == 3 && pg_strncasecmp(s, fd->names[i], 3) == 0)
				return f == F_MONTH ? i + 1 : i;
		bad_cron(expr, psprintf("%s \"%.*s\" is not a %s", fd->name, (int) (end - s), s,
								fd->names ? (f == F_MONTH ? "month name (JAN..DEC)" : "day name (SUN..SAT)")
								: "number"));
	}
	for (p = s; p < end; p++)
	{
		if (!isdigit((unsigned char) *p) || v > 1000)
			bad_cron(expr, psprintf("%s \"%.*s\" is not a number", fd->name, (int) (end - s), s));
		v = v * 10 + (*p - '0');
	}
	if (v < fd->lo || v > fd->hi)
		bad_cron(expr, psprintf("%s %d is out of range %d-%d", fd->name, v, fd->lo, fd->hi));
	return v;
}

/* One field's text into its set of values; *star: it starts with '*'. */
static uint64
parse_field(const char *expr, int f, const char *s, const char *end, bool *star)
{
	const CronField *fd = &fields[f];
	uint64		set = 0;

	*star = *s == '*';
	while (s < end)
	{
		const char *item_end = memchr(s, ',', end - s);
		const char *slash;
		const char *dash;
		int			a,
					b,
					step = 1;

		if (item_end == NULL)
			item_end = end;
		slash = memchr(s, '/', item_end - s);
		dash = memchr(s, '-', (slash ? slash : item_end) - s);
		if (slash)
		{
			step = field_value(expr, F_SECOND, slash + 1, item_end);	/* 0-59 */
			if (step == 0)
				bad_cron(expr, psprintf("%s step 0 is not a step", fd->name));
		}
		if (*s == '*' && s + 1 == (slash ? slash : item_end))
			a = fd->lo, b = fd->hi;
		else if (dash)
		{
			a = field_value(expr, f, s, dash);
			b = field_value(expr, f, dash + 1, slash ? slash : item_end);
			if (a > b)
				bad_cron(expr, psprintf("%s range %d-%d runs backwards", fd->name, a, b));
		}
		else
		{
			a = field_value(expr, f, s, slash ? slash : item_end);
			b = slash ? fd->hi : a;		/* a/n: from a to the end, every n */
		}
		for (int v = a; v <= b; v += step)
			set |= UINT64CONST(1) << v;
		s = item_end + 1;
		if (item_end == end)
			break;
		if (s == end)
			bad_cron(expr, psprintf("%s field ends with a comma", fd->name));
	}
	if (f == F_WEEKDAY && (set & (UINT64CONST(1) << 7)))
		set = (set | 1) & ~(UINT64CONST(1) << 7);	/* 7 is Sunday */
	return set;
}

void
cron_parse(const char *expr, CronSpec *c)
{
	const char *text = expr;
	const char *starts[N_FIELDS + 1];
	const char *ends[N_FIELDS + 1];
	int			n = 0;
	int			first;
	bool		star;

	while (isspace((unsigned char) *text))
		text++;
	if (*text == '@')
	{
		int			len = strcspn(text, " \t\n");

		for (size_t i = 0; i < lengthof(macros); i++)
			if (strlen(macros[i].name) == (size_t) len && pg_strncasecmp(text, macros[i].name, len) == 0)
			{
				cron_parse(macros[i].expr, c);
				return;
			}
		bad_cron(expr, psprintf("unknown macro \"%.*s\"", len, text));
	}
	for (const char *p = text; *p;)
	{
		if (isspace((unsigned char) *p))
		{
			p++;
			continue;
		}
		if (n == N_FIELDS)
			bad_cron(expr, "it has more than 6 fields");
		starts[n] = p;
		while (*p && !isspace((unsigned char) *p))
			p++;
		ends[n++] = p;
	}
	if (n != 5 && n != 6)
		bad_cron(expr, psprintf("it has %d field%s, not 5 or 6", n, n == 1 ? "" : "s"));
	memset(c, 0, sizeof(*c));
	first = n == 6 ? F_SECOND : F_MINUTE;
	c->seconds = 1;				/* five fields: at second 0 */
	for (int i = 0; i < n; i++)
	{
		int			f = first + i;
		uint64		set = parse_field(expr, f, starts[i], ends[i], &star);

		switch (f)
		{
			case F_SECOND:
				c->seconds = set;
				break;
			case F_MINUTE:
				c->minutes = set;
				break;
			case F_HOUR:
				c->hours = (uint32) set;
				break;
			case F_DAY:
				c->days = (uint32) set;
				c->days_star = star;
				break;
			case F_MONTH:
				c->months = (uint16) set;
				break;
			case F_WEEKDAY:
				c->weekdays = (uint8) set;
				c->weekdays_star = star;
				break;
		}
	}
}

/* ---- the next times ---- */

static bool
day_matches(const CronSpec *c, int y, int m, int d)
{
	bool		dom = (c->days >> d) & 1;
	bool		dow = (c->weekdays >> j2day(date2j(y, m, d))) & 1;

	if (c->days_star || c->weekdays_star)
		return dom && dow;
	return dom || dow;
}

/* carry an overflowing field of a wall time into the next */
static void
carry(struct pg_tm *t)
{
	if (t->tm_sec > 59)
		t->tm_sec = 0, t->tm_min++;
	if (t->tm_min > 59)
		t->tm_min = 0, t->tm_hour++;
	if (t->tm_hour > 23)
		t->tm_hour = 0, t->tm_mday++;
	if (t->tm_mday > day_tab[isleap(t->tm_year)][t->tm_mon - 1])
		t->tm_mday = 1, t->tm_mon++;
	if (t->tm_mon > 12)
		t->tm_mon = 1, t->tm_year++;
}

/*
 * The first wall time at or after *t that the spec names, in *t; false if
 * none within 10 years (30 February, say).
 */
static bool
next_wall_time(const CronSpec *c, struct pg_tm *t)
{
	int			limit = t->tm_year + 10;

	while (t->tm_year <= limit)
	{
		if (!((c->months >> t->tm_mon) & 1))
		{
			t->tm_mon++, t->tm_mday = 1, t->tm_hour = t->tm_min = t->tm_sec = 0;
			if (t->tm_mon > 12)
				t->tm_mon = 1, t->tm_year++;
		}
		else if (!day_matches(c, t->tm_year, t->tm_mon, t->tm_mday))
		{
			t->tm_mday++, t->tm_hour = t->tm_min = t->tm_sec = 0;
			carry(t);
		}
		else if (!((c->hours >> t->tm_hour) & 1))
		{
			t->tm_hour++, t->tm_min = t->tm_sec = 0;
			carry(t);
		}
		else if (!((c->minutes >> t->tm_min) & 1))
		{
			t->tm_min++, t->tm_sec = 0;
			carry(t);
		}
		else if (!((c->seconds >> t->tm_sec) & 1))
		{
			t->tm_sec++;
			carry(t);
		}
		else
			return true;
	}
	return false;
}

/* The time zone of that name, or an error. */
pg_tz *
cron_timezone(const char *name)
{
	pg_tz	   *tz = pg_tzset(name);

	if (tz == NULL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("time zone \"%s\" is not recognized", name),
				errhint("Use a name from pg_timezone_names, such as 'Europe/Paris' or 'UTC'."));
	return tz;
}

/*
 * The first instant after `after` that the spec names in time zone `tz`;
 * false if none within 10 years.
 */
bool
cron_next(const CronSpec *c, pg_tz *tz, TimestampTz after, TimestampTz *next)
{
	struct pg_tm t;
	fsec_t		fsec;
	int			offset;
	int			earlier_offset;

	/*
	 * From the wall time of `after`; but if the zone's offset changed in the
	 * three hours before (fall back), from the wall time of three hours
	 * before: a wall time that repeats maps to its second occurrence, which
	 * may come after `after` though the wall clock of `after` is past it.
	 */
	if (timestamp2tm(after - 3 * USECS_PER_HOUR, &earlier_offset, &t, &fsec, NULL, tz) != 0 ||
		timestamp2tm(after, &offset, &t, &fsec, NULL, tz) != 0)
		return false;
	if (offset != earlier_offset &&
		timestamp2tm(after - 3 * USECS_PER_HOUR, &offset, &t, &fsec, NULL, tz) != 0)
		return false;
	t.tm_sec++;					/* whole seconds */
	carry(&t);
	while (next_wall_time(c, &t))
	{
		TimestampTz instant;

		offset = DetermineTimeZoneOffset(&t, tz);
		if (tm2timestamp(&t, 0, &offset, &instant) != 0)
			return false;
		if (instant > after)
		{
			*next = instant;
			return true;
		}
		t.tm_sec++;				/* an instant already passed (a repeated or skipped hour) */
		carry(&t);
	}
	return false;
}

/*
 * SQL: taskorch.cron_next(cron, timezone, count, after) -> the next
 * `count` times (at most 1000) the expression names after `after`.
 */
Datum
taskorch_cron_next(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	CronSpec	c;
	pg_tz	   *tz;
	int			count;
	TimestampTz at;

	require_args(fcinfo, 4, "cron, timezone, count and after", "Pass a cron expression such as '0 9 * * 1-5'.");
	cron_parse(text_to_cstring(PG_GETARG_TEXT_PP(0)), &c);
	tz = cron_timezone(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	count = PG_GETARG_INT32(2);
	at = PG_GETARG_TIMESTAMPTZ(3);
	if (count < 0 || count > 1000)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("count %d is out of range 0-1000", count),
				errhint("Ask for at most 1000 times at once; pass the last as `after` for more."));
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	for (int i = 0; i < count && cron_next(&c, tz, at, &at); i++)
	{
		Datum		value = TimestampTzGetDatum(at);
		bool		null = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &null);
	}
	return (Datum) 0;
}

/* ---- in words ---- */

/* "1", "1 and 15", "1, 15 and 31", "1 through 5"; names where the field has them */
static void
describe_values(StringInfo s, uint64 set, int f, bool words)
{
	static const char *const month_words[] = {"January", "February", "March", "April", "May", "June",
	"July", "August", "September", "October", "November", "December"};
	static const char *const weekday_words[] = {"Sunday", "Monday", "Tuesday", "Wednesday",
	"Thursday", "Friday", "Saturday"};
	int			runs[64][2];
	int			n = 0;

	for (int v = fields[f].lo; v <= Min(fields[f].hi, 63); v++)
		if ((set >> v) & 1)
		{
			if (n > 0 && runs[n - 1][1] == v - 1)
				runs[n - 1][1] = v;
			else
				runs[n][0] = runs[n][1] = v, n++;
		}
	for (int i = 0; i < n; i++)
	{
		for (int end = 0; end < 2; end++)
		{
			int			v = runs[i][end];

			if (end == 1 && runs[i][1] == runs[i][0])
				break;
			if (end == 1)
				appendStringInfoString(s, runs[i][1] == runs[i][0] + 1 ? (i == n - 1 ? " and " : ", ") : " through ");
			if (words && f == F_MONTH)
				appendStringInfoString(s, month_words[v - 1]);
			else if (words && f == F_WEEKDAY)
				appendStringInfoString(s, weekday_words[v]);
			else
				appendStringInfo(s, "%d", v);
		}
		if (i < n - 2)
			appendStringInfoString(s, ", ");
		else if (i == n - 2)
			appendStringInfoString(s, " and ");
	}
}

/* the step k when set is lo, lo+k, lo+2k... to the end of the field (k > 1) */
static int
step_of(uint64 set, int f)
{
	int			lo = fields[f].lo;
	int			hi = fields[f].hi;

	if (!(set & (UINT64CONST(1) << lo)))
		return 0;
	for (int k = 2; k <= (hi - lo + 1) / 2; k++)
	{
		uint64		want = 0;

		for (int v = lo; v <= hi; v += k)
			want |= UINT64CONST(1) << v;
		if (want == set)
			return k;
	}
	return 0;
}

static uint64
all_of(int f)
{
	uint64		set = 0;
	int			hi = f == F_WEEKDAY ? 6 : fields[f].hi;	/* 7 is read as 0 */

	for (int v = fields[f].lo; v <= hi; v++)
		set |= UINT64CONST(1) << v;
	return set;
}

static int
count_of(uint64 set)
{
	int			n = 0;

	for (; set; set &= set - 1)
		n++;
	return n;
}

static int
single(uint64 set)
{
	for (int v = 0; v < 64; v++)
		if (set == UINT64CONST(1) << v)
			return v;
	return -1;
}

/* "every 5 minutes", "at minute 15", "every minute" ... of one unit */
static void
describe_unit(StringInfo s, uint64 set, int f, const char *unit)
{
	int			k = step_of(set, f);

	if (set == all_of(f))
		appendStringInfo(s, "every %s", unit);
	else if (k)
		appendStringInfo(s, "every %d %ss", k, unit);
	else
	{
		appendStringInfo(s, "at %s%s ", unit, count_of(set) > 1 ? "s" : "");
		describe_values(s, set, f, false);
	}
}

char *
cron_describe(const CronSpec *c)
{
	StringInfoData s;
	int			minute = single(c->minutes);
	int			second = single(c->seconds);
	bool		every_day = c->days == all_of(F_DAY) && c->weekdays == all_of(F_WEEKDAY);

	initStringInfo(&s);
	/* the time of day */
	if (second >= 0 && minute >= 0 && count_of(c->hours) <= 4 && c->hours != all_of(F_HOUR))
	{
		bool		first = true;

		appendStringInfoString(&s, "at ");
		for (int h = 0; h < 24; h++)
			if ((c->hours >> h) & 1)
			{
				if (!first)
					appendStringInfoString(&s, (c->hours >> (h + 1)) ? ", " : " and ");
				if (second)
					appendStringInfo(&s, "%02d:%02d:%02d", h, minute, second);
				else
					appendStringInfo(&s, "%02d:%02d", h, minute);
				first = false;
			}
	}
	else if (minute >= 0 && c->seconds == 1)
	{
		/* once an hour, in some hours */
		int			k = step_of(c->hours, F_HOUR);
		int			first = pg_rightmost_one_pos32(c->hours);
		int			last = pg_leftmost_one_pos32(c->hours);

		if (c->hours == all_of(F_HOUR) && minute == 0)
			appendStringInfoString(&s, "every hour");
		else if (c->hours == all_of(F_HOUR))
			appendStringInfo(&s, "at minute %d of every hour", minute);
		else if (k && minute == 0)
			appendStringInfo(&s, "every %d hours", k);
		else if (k)
			appendStringInfo(&s, "at minute %d, every %d hours", minute, k);
		else if (count_of(c->hours) == last - first + 1)
			appendStringInfo(&s, "every hour from %02d:%02d through %02d:%02d", first, minute, last, minute);
		else
		{
			appendStringInfo(&s, "at minute %d, during hours ", minute);
			describe_values(&s, c->hours, F_HOUR, false);
		}
	}
	else
	{
		if (c->seconds != 1)
		{
			describe_unit(&s, c->seconds, F_SECOND, "second");
			appendStringInfoString(&s, c->minutes == all_of(F_MINUTE) ? "" : ", ");
		}
		if (c->minutes != all_of(F_MINUTE) || c->seconds == 1)
			describe_unit(&s, c->minutes, F_MINUTE, "minute");
		if (c->hours != all_of(F_HOUR))
		{
			appendStringInfoString(&s, ", during hour");
			appendStringInfoString(&s, count_of(c->hours) > 1 ? "s " : " ");
			describe_values(&s, c->hours, F_HOUR, false);
		}
	}
	/* the days */
	if (!every_day)
	{
		bool		dom = !c->days_star && c->days != all_of(F_DAY);
		bool		dow = !c->weekdays_star && c->weekdays != all_of(F_WEEKDAY);

		if (dom)
		{
			appendStringInfo(&s, ", on day%s ", count_of(c->days) > 1 ? "s" : "");
			describe_values(&s, c->days, F_DAY, false);
			appendStringInfoString(&s, " of the month");
		}
		if (dow)
		{
			appendStringInfoString(&s, dom ? (c->days_star || c->weekdays_star ? " and " : " or ") : ", ");
			if (count_of(c->weekdays) <= 2 || step_of(c->weekdays, F_WEEKDAY))
				appendStringInfoString(&s, "on ");
			describe_values(&s, c->weekdays, F_WEEKDAY, true);
		}
		if (!dom && !dow)
		{
			appendStringInfoString(&s, ", on ");
			if (c->days != all_of(F_DAY))
			{
				appendStringInfo(&s, "day%s ", count_of(c->days) > 1 ? "s" : "");
				describe_values(&s, c->days, F_DAY, false);
				appendStringInfoString(&s, " of the month, if ");
			}
			describe_values(&s, c->weekdays, F_WEEKDAY, true);
		}
	}
	if (c->months != (uint16) (all_of(F_MONTH)))
	{
		appendStringInfoString(&s, ", in ");
		describe_values(&s, c->months, F_MONTH, true);
	}
	return s.data;
}

/* SQL: taskorch.cron_describe(cron) -> the expression in words */
Datum
taskorch_cron_describe(PG_FUNCTION_ARGS)
{
	CronSpec	c;

	require_arg(fcinfo, 0, "cron", "Pass a cron expression such as '0 9 * * 1-5'.");
	cron_parse(text_to_cstring(PG_GETARG_TEXT_PP(0)), &c);
	PG_RETURN_TEXT_P(cstring_to_text(cron_describe(&c)));
}
