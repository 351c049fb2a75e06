/*-------------------------------------------------------------------------
 *
 * duration.c
 *	  Durations and points in time as Trigger.dev users write them.
 *
 *	  "88s", "1h52m18s", "2w"   a duration string: numbers with the units
 *	                            s, m, h (or hr), d, w (and ms), combined
 *	  an interval               '90 minutes'::interval, or the string "90 minutes"
 *	  a number                  seconds (ttl: 3600)
 *	  a timestamptz or an ISO string   a point in time (delay only)
 *
 * SQL arguments have the types taskorch.duration and taskorch.delay: text as
 * written, read by the function it is given to (so that an error names the
 * option: "invalid ttl ...").  Their implicit casts from text, numbers,
 * intervals and (delay) timestamps let every driver bind them as it binds
 * anything: an untyped parameter ("1h") is taken as written; a typed one is
 * written as the text that means it (a number of seconds "3600", an interval
 * "1h30m", a timestamptz "2024-12-01T09:00:00Z").  A relative delay is read
 * when it is used: a prepared statement's "1h" is one hour from each call.
 * jsonb option values arrive as JsonbValues.  All end as milliseconds or a
 * timestamptz.
 *
 * Every malformed value is an error naming the option and the value, and
 * saying what is wrong with it: not a duration, not a number (NaN),
 * negative (or not positive where 0 is refused), longer than 100 years
 * (infinity too).  A point in time must be finite.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include <ctype.h>
#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#define MAX_DURATION_MS ((int64) 100 * 365 * 24 * 3600 * 1000)	/* 100 years */

static void
bad_duration(const char *option, const char *value, const char *why, bool allow_zero)
{
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("invalid %s \"%s\": %s", option, value, why),
			allow_zero ?
			errhint("Write a duration from 0 to 100 years: a string such as \"88s\", \"1h52m18s\" or \"2w\" (units ms, s, m, h, hr, d, w), an interval, or a number of seconds.") :
			errhint("Write a duration from 1ms to 100 years: a string such as \"88s\", \"1h52m18s\" or \"2w\" (units ms, s, m, h, hr, d, w), an interval, or a number of seconds."));
}

/*
 * Parse a duration string ("1h52m18s", or "-5s" which is negative) into
 * milliseconds, as a double so that a caller can tell a negative or too
 * long one.  Returns false when `s` is not one (so a caller may try a
 * timestamp instead).
 */
static bool
parse_duration_string(const char *s, double *ms)
{
	const char *p = s;
	double		total = 0;
	bool		negative = *p == '-';

	if (negative)
		p++;
	if (*p == '\0')
		return false;
	while (*p)
	{
		double		n = 0;
		double		unit;
		const char *start = p;

		while (isdigit((unsigned char) *p))
			n = n * 10 + (*p++ - '0');
		if (p == start)
			return false;
		if (strncmp(p, "hr", 2) == 0)
			unit = 3600e3, p += 2;
		else if (strncmp(p, "ms", 2) == 0)
			unit = 1, p += 2;
		else if (*p == 's')
			unit = 1e3, p++;
		else if (*p == 'm')
			unit = 60e3, p++;
		else if (*p == 'h')
			unit = 3600e3, p++;
		else if (*p == 'd')
			unit = 86400e3, p++;
		else if (*p == 'w')
			unit = 7 * 86400e3, p++;
		else
			return false;
		total += n * unit;		/* may reach infinity: checked by the caller */
	}
	*ms = negative ? -total : total;
	return true;
}

/* An interval in milliseconds, a month counted as 30 days (as PostgreSQL does). */
int64
interval_to_ms(Interval *iv)
{
	return iv->time / 1000 + (int64) iv->day * 86400000 +
		(int64) iv->month * DAYS_PER_MONTH * 86400000;
}

/* ms as whole milliseconds, or an error saying why it is no duration. */
static int64
checked_ms(const char *option, const char *text, double ms, bool allow_zero)
{
	if (isnan(ms))
		bad_duration(option, text, "not a number", allow_zero);
	if (ms < 0 || (ms == 0 && !allow_zero))
		bad_duration(option, text, allow_zero ? "must not be negative" : "must be positive",
					 allow_zero);
	if (ms > MAX_DURATION_MS)
		bad_duration(option, text, "is longer than 100 years", allow_zero);
	if (ms < 1 && !allow_zero)
		bad_duration(option, text, "is shorter than 1 millisecond", allow_zero);
	return (int64) ms;
}

/*
 * A number of seconds written in decimal ("3600", "1.5"), in milliseconds;
 * with `words`, also "NaN" and "Infinity" (what a float prints).  strtod
 * alone would also take hex and leading spaces.
 */
static bool
parse_seconds(const char *s, bool words, double *ms)
{
	char	   *end;
	double		secs;

	if (!words && strspn(s, "0123456789.eE+-") != strlen(s))
		return false;
	secs = strtod(s, &end);
	if (end == s || *end != '\0' || strpbrk(s, "xX \t\n\r\f\v") != NULL)
		return false;
	*ms = secs * 1000;
	return true;
}

/*
 * `s` read by a type's input function (F_INTERVAL_IN, F_TIMESTAMPTZ_IN,
 * F_ARRAY_IN of `typioparam`): false, with the input function's message in
 * *why, when it is not one (an error of class 22, data exception); other
 * errors are raised.  For messages that say what was being read.
 */
bool
try_input(Oid input, const char *s, Oid typioparam, Datum *value, char **why)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = true;

	PG_TRY();
	{
		*value = OidInputFunctionCall(input, unconstify(char *, s), typioparam, -1);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_DATA_EXCEPTION)
			PG_RE_THROW();
		FlushErrorState();
		*why = edata->message;
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/* A duration in PostgreSQL's interval syntax ("90 minutes", "01:30:00"), in ms. */
static bool
parse_interval(const char *s, double *ms)
{
	Datum		iv;
	char	   *why;

	if (!try_input(F_INTERVAL_IN, s, InvalidOid, &iv, &why))
		return false;
	*ms = (double) interval_to_ms(DatumGetIntervalP(iv));
	return true;
}

/*
 * A duration given as text or a jsonb string: "1h", seconds "3600", or an
 * interval "90 minutes".
 */
int64
duration_ms_from_text(const char *option, const char *s, bool allow_zero)
{
	double		ms;

	if (!parse_duration_string(s, &ms) && !parse_seconds(s, true, &ms) &&
		!parse_interval(s, &ms))
		bad_duration(option, s, "not a duration", allow_zero);
	return checked_ms(option, s, ms, allow_zero);
}

/* A duration inside a jsonb options object. */
int64
duration_ms_from_jsonb(const char *option, JsonbValue *v, bool allow_zero)
{
	if (v->type == jbvString)
		return duration_ms_from_text(option, pnstrdup(v->val.string.val, v->val.string.len),
									 allow_zero);
	if (v->type == jbvNumeric)
	{
		char	   *text = DatumGetCString(DirectFunctionCall1(numeric_out,
															   NumericGetDatum(v->val.numeric)));

		return checked_ms(option, text, strtod(text, NULL) * 1000, allow_zero);
	}
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("invalid %s: not a string or a number", option),
			errhint("Write a duration such as \"1h\" or a number of seconds."));
	return 0;
}

/* A delay given as a point in time: it must be one, not +/-infinity. */
static TimestampTz
finite_time(TimestampTz t)
{
	if (TIMESTAMP_NOT_FINITE(t))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("invalid delay \"%s\": not a finite time", timestamptz_to_str(t)),
				errhint("Write a time such as \"2024-12-01T00:00:00Z\", or a duration such as \"1h\"."));
	return t;
}

/*
 * A delay: a duration from now, or a point in time.  Returns when the run
 * becomes due.
 */
TimestampTz
delay_from_text(const char *s, TimestampTz now)
{
	double		ms;
	Datum		t;
	char	   *why = NULL;

	if (parse_duration_string(s, &ms) || parse_seconds(s, false, &ms))
		return TimestampTzPlusMilliseconds(now, checked_ms("delay", s, ms, true));
	/* "2024-12-01 09:00", "09:00"; else an interval ("90 minutes") */
	if ((strpbrk(s, "-:") != NULL || pg_strcasecmp(s, "infinity") == 0) &&
		try_input(F_TIMESTAMPTZ_IN, s, InvalidOid, &t, &why))
		return finite_time(DatumGetTimestampTz(t));
	if (parse_interval(s, &ms))
		return TimestampTzPlusMilliseconds(now, checked_ms("delay", s, ms, true));
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("invalid delay \"%s\": neither a duration nor a timestamp", s),
			why ? errdetail("%s", why) : 0,
			errhint("Write a duration such as \"1h52m18s\" or \"90 minutes\", or a time such as \"2024-12-01T00:00:00Z\"."));
	return 0;
}

/* ---- the SQL types taskorch.duration and taskorch.delay ---- */

PG_FUNCTION_INFO_V1(taskorch_duration_from_interval);
PG_FUNCTION_INFO_V1(taskorch_delay_from_timestamptz);

/*
 * An interval as a duration string: '90 minutes' is "1h30m", a month 30
 * days (as interval_to_ms counts it); the cast of an interval to either type.
 */
Datum
taskorch_duration_from_interval(PG_FUNCTION_ARGS)
{
	static const struct
	{
		const char *unit;
		int64		ms;
	}			units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
	int64		ms = interval_to_ms(PG_GETARG_INTERVAL_P(0));
	uint64		left = ms < 0 ? -(uint64) ms : (uint64) ms;
	StringInfoData s;

	initStringInfo(&s);
	if (ms < 0)
		appendStringInfoChar(&s, '-');
	for (size_t i = 0; i < lengthof(units); i++)
		if (left >= (uint64) units[i].ms)
		{
			appendStringInfo(&s, UINT64_FORMAT "%s", left / units[i].ms, units[i].unit);
			left %= units[i].ms;
		}
	if (ms == 0)
		appendStringInfoString(&s, "0s");
	PG_RETURN_TEXT_P(cstring_to_text(s.data));
}

/*
 * A point in time in ISO 8601 at UTC ("2024-12-01T09:00:00Z"): the same
 * instant whatever the TimeZone of the session that reads it.
 */
char *
iso_time(TimestampTz t)
{
	struct pg_tm tm;
	fsec_t		fsec;
	char		buf[MAXDATELEN + 2];

	if (timestamp2tm(finite_time(t), NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				errmsg("timestamp out of range"));
	EncodeDateTime(&tm, fsec, false, 0, NULL, USE_XSD_DATES, buf);
	return pstrdup(strcat(buf, "Z"));
}

Datum
taskorch_delay_from_timestamptz(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(iso_time(PG_GETARG_TIMESTAMPTZ(0))));
}
