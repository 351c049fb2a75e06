------------------------------------------------------------------------------
-- The types of arguments as clients bind them: durations, delays, JSON.
--
-- Durations and delays as users write them (duration.c): the type of every
-- argument that takes a duration (ttl, max_duration, idempotency_key_ttl,
-- wait_for, a wait token's timeout) or a delay (trigger's and reschedule's
-- delay: a duration from now, or a point in time).  A value is text as
-- written ("1h52m18s", "3600" seconds, "2024-12-01T09:00:00Z"), read by the
-- function it is given to, whose error names the option.  Like citext, the
-- types are text inside.  The implicit casts let every driver bind these
-- arguments as it binds anything (untyped text, a number of seconds, an
-- interval, a timestamp) with no cast in the SQL.
------------------------------------------------------------------------------
CREATE TYPE taskorch.duration;
CREATE FUNCTION taskorch_internal.duration_in(cstring) RETURNS taskorch.duration
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_text_in';
CREATE FUNCTION taskorch_internal.duration_out(taskorch.duration) RETURNS cstring
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_text_out';
CREATE FUNCTION taskorch_internal.duration_recv(internal) RETURNS taskorch.duration
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_text_recv';
CREATE FUNCTION taskorch_internal.duration_send(taskorch.duration) RETURNS bytea
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_text_send';
CREATE TYPE taskorch.duration (
	INPUT = taskorch_internal.duration_in, OUTPUT = taskorch_internal.duration_out,
	RECEIVE = taskorch_internal.duration_recv, SEND = taskorch_internal.duration_send,
	LIKE = text, CATEGORY = 'T');
CREATE TYPE taskorch.delay;
CREATE FUNCTION taskorch_internal.delay_in(cstring) RETURNS taskorch.delay
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_text_in';
CREATE FUNCTION taskorch_internal.delay_out(taskorch.delay) RETURNS cstring
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_text_out';
CREATE FUNCTION taskorch_internal.delay_recv(internal) RETURNS taskorch.delay
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_text_recv';
CREATE FUNCTION taskorch_internal.delay_send(taskorch.delay) RETURNS bytea
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_text_send';
CREATE TYPE taskorch.delay (
	INPUT = taskorch_internal.delay_in, OUTPUT = taskorch_internal.delay_out,
	RECEIVE = taskorch_internal.delay_recv, SEND = taskorch_internal.delay_send,
	LIKE = text, CATEGORY = 'T');

-- the casts: text as is; an interval as "1h30m"; a number as seconds (a
-- real or a double precision written as a numeric: 1e+06 is "1000000"); a
-- timestamp (delay) at UTC, "2024-12-01T09:00:00Z"
CREATE FUNCTION taskorch_internal.duration(interval) RETURNS taskorch.duration
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_duration_from_interval';
CREATE FUNCTION taskorch_internal.delay(interval) RETURNS taskorch.delay
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_duration_from_interval';
CREATE FUNCTION taskorch_internal.delay(timestamptz) RETURNS taskorch.delay
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_delay_from_timestamptz';
CREATE FUNCTION taskorch_internal.delay(timestamp) RETURNS taskorch.delay
	LANGUAGE sql STRICT STABLE PARALLEL SAFE RETURN taskorch_internal.delay($1::timestamptz);
CREATE CAST (interval AS taskorch.duration) WITH FUNCTION taskorch_internal.duration(interval) AS IMPLICIT;
CREATE CAST (interval AS taskorch.delay) WITH FUNCTION taskorch_internal.delay(interval) AS IMPLICIT;
CREATE CAST (timestamptz AS taskorch.delay) WITH FUNCTION taskorch_internal.delay(timestamptz) AS IMPLICIT;
CREATE CAST (timestamp AS taskorch.delay) WITH FUNCTION taskorch_internal.delay(timestamp) AS IMPLICIT;
CREATE CAST (text AS taskorch.duration) WITHOUT FUNCTION AS IMPLICIT;
CREATE CAST (varchar AS taskorch.duration) WITHOUT FUNCTION AS IMPLICIT;
CREATE FUNCTION taskorch_internal.duration(smallint) RETURNS taskorch.duration
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::numeric::text::taskorch.duration;
CREATE CAST (smallint AS taskorch.duration) WITH FUNCTION taskorch_internal.duration(smallint) AS IMPLICIT;
CREATE FUNCTION taskorch_internal.duration(integer) RETURNS taskorch.duration
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::numeric::text::taskorch.duration;
CREATE CAST (integer AS taskorch.duration) WITH FUNCTION taskorch_internal.duration(integer) AS IMPLICIT;
CREATE FUNCTION taskorch_internal.duration(bigint) RETURNS taskorch.duration
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::numeric::text::taskorch.duration;
CREATE CAST (bigint AS taskorch.duration) WITH FUNCTION taskorch_internal.duration(bigint) AS IMPLICIT;
CREATE FUNCTION taskorch_internal.duration(numeric) RETURNS taskorch.duration
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::numeric::text::taskorch.duration;
CREATE CAST (numeric AS taskorch.duration) WITH FUNCTION taskorch_internal.duration(numeric) AS IMPLICIT;
CREATE FUNCTION taskorch_internal.duration(real) RETURNS taskorch.duration
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::numeric::text::taskorch.duration;
CREATE CAST (real AS taskorch.duration) WITH FUNCTION taskorch_internal.duration(real) AS IMPLICIT;
CREATE FUNCTION taskorch_internal.duration(double precision) RETURNS taskorch.duration
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::numeric::text::taskorch.duration;
CREATE CAST (double precision AS taskorch.duration) WITH FUNCTION taskorch_internal.duration(double precision) AS IMPLICIT;
CREATE CAST (text AS taskorch.delay) WITHOUT FUNCTION AS IMPLICIT;
CREATE CAST (varchar AS taskorch.delay) WITHOUT FUNCTION AS IMPLICIT;
CREATE FUNCTION taskorch_internal.delay(smallint) RETURNS taskorch.delay
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::numeric::text::taskorch.delay;
CREATE CAST (smallint AS taskorch.delay) WITH FUNCTION taskorch_internal.delay(smallint) AS IMPLICIT;
CREATE FUNCTION taskorch_internal.delay(integer) RETURNS taskorch.delay
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::numeric::text::taskorch.delay;
CREATE CAST (integer AS taskorch.delay) WITH FUNCTION taskorch_internal.delay(integer) AS IMPLICIT;
CREATE FUNCTION taskorch_internal.delay(bigint) RETURNS taskorch.delay
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::numeric::text::taskorch.delay;
CREATE CAST (bigint AS taskorch.delay) WITH FUNCTION taskorch_internal.delay(bigint) AS IMPLICIT;
CREATE FUNCTION taskorch_internal.delay(numeric) RETURNS taskorch.delay
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::numeric::text::taskorch.delay;
CREATE CAST (numeric AS taskorch.delay) WITH FUNCTION taskorch_internal.delay(numeric) AS IMPLICIT;
CREATE FUNCTION taskorch_internal.delay(real) RETURNS taskorch.delay
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::numeric::text::taskorch.delay;
CREATE CAST (real AS taskorch.delay) WITH FUNCTION taskorch_internal.delay(real) AS IMPLICIT;
CREATE FUNCTION taskorch_internal.delay(double precision) RETURNS taskorch.delay
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::numeric::text::taskorch.delay;
CREATE CAST (double precision AS taskorch.delay) WITH FUNCTION taskorch_internal.delay(double precision) AS IMPLICIT;

------------------------------------------------------------------------------
-- JSON as clients send it (payloads, options, metadata, outputs): a jsonb
-- that is also given as text or varchar (an ORM that types its strings, a
-- text expression), or json.  jsonb inside: the casts to and from jsonb are
-- binary, so the C functions read it as a jsonb.
------------------------------------------------------------------------------
CREATE TYPE taskorch.json_input;
CREATE FUNCTION taskorch_internal.json_input_in(cstring) RETURNS taskorch.json_input
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_jsonb_in';
CREATE FUNCTION taskorch_internal.json_input_out(taskorch.json_input) RETURNS cstring
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_jsonb_out';
CREATE FUNCTION taskorch_internal.json_input_recv(internal) RETURNS taskorch.json_input
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_jsonb_recv';
CREATE FUNCTION taskorch_internal.json_input_send(taskorch.json_input) RETURNS bytea
	LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskorch_jsonb_send';
CREATE TYPE taskorch.json_input (
	INPUT = taskorch_internal.json_input_in, OUTPUT = taskorch_internal.json_input_out,
	RECEIVE = taskorch_internal.json_input_recv, SEND = taskorch_internal.json_input_send,
	LIKE = jsonb);
CREATE CAST (jsonb AS taskorch.json_input) WITHOUT FUNCTION AS IMPLICIT;
CREATE CAST (taskorch.json_input AS jsonb) WITHOUT FUNCTION AS IMPLICIT;
CREATE FUNCTION taskorch_internal.json_input(text) RETURNS taskorch.json_input
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::jsonb::taskorch.json_input;
CREATE FUNCTION taskorch_internal.json_input(json) RETURNS taskorch.json_input
	LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE RETURN $1::jsonb::taskorch.json_input;
CREATE CAST (text AS taskorch.json_input) WITH FUNCTION taskorch_internal.json_input(text) AS IMPLICIT;
CREATE CAST (varchar AS taskorch.json_input) WITH FUNCTION taskorch_internal.json_input(text) AS IMPLICIT;
CREATE CAST (json AS taskorch.json_input) WITH FUNCTION taskorch_internal.json_input(json) AS IMPLICIT;
