#!/usr/bin/env bash
# JSON Schema checks are bounded and interruptible:
#   1. a validate() of 16,000 elements against a 100-value enum, and the
#      same check of a payload in trigger(), leave the backend's peak
#      memory (VmHWM) within 100 MB of where it was (it took 3.7 GB when
#      every comparison and message was kept until the statement ended);
#   2. statement_timeout stops a check well before it would end, both a
#      long one (40,000 elements x 2,000 values) and a single value
#      against a 10,000,000-value enum (where no interrupt used to be
#      checked): each check is timed whole first, then run with a timeout of
#      a tenth of that, and must be canceled before half of it (a check
#      that never looks at interrupts is canceled only at its end).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/test/lib.sh"
port=${MEMORY_PORT:-55443}
throwaway_cluster memory "$port" "taskorch.workers_per_database = 0"
psql_as "$port" postgres >/dev/null <<'SQL'
CREATE EXTENSION taskorch;
CREATE FUNCTION noop(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT payload $$;
CREATE TABLE input AS
SELECT (SELECT jsonb_agg(g) FROM generate_series(1, 16000) g) AS value,
	   (SELECT jsonb_build_object('items', jsonb_build_object('enum', jsonb_agg(-g)))
		  FROM generate_series(1, 100) g) AS schema;
SELECT taskorch.register_task('strict', 'noop(jsonb)',
							  payload_schema => jsonb_build_object('properties', jsonb_build_object('list', schema)))
  FROM input;
-- the long check: 40,000 elements x 2,000 values (seconds of work)
CREATE TABLE long_input AS
SELECT (SELECT jsonb_agg(g) FROM generate_series(1, 40000) g) AS value,
	   (SELECT jsonb_build_object('items', jsonb_build_object('enum', jsonb_agg(-g)))
		  FROM generate_series(1, 2000) g) AS schema;
-- one value against a 10,000,000-value enum (stored uncompressed: reading it
-- is not what is measured)
CREATE TABLE wide_input (value jsonb, schema jsonb);
ALTER TABLE wide_input ALTER schema SET STORAGE EXTERNAL;
INSERT INTO wide_input SELECT '"x"', ('{"enum": [' || repeat('1,', 9999999) || '1]}')::jsonb;
SQL

# 1. peak memory (VmHWM) of a fresh session, before and after one check
growth() {
	psql_as "$port" postgres -At <<SQL
CREATE FUNCTION pg_temp.hwm_mb() RETURNS bigint LANGUAGE sql AS \$\$
	SELECT (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'),
						 'VmHWM:\\s+(\\d+)'))[1]::bigint / 1024 \$\$;
SELECT pg_temp.hwm_mb() AS before \\gset
$1
SELECT 'growth ' || (pg_temp.hwm_mb() - :before);
SQL
}
check_growth() {
	local what=$1 out=$2 mb
	echo "$what: $(echo "$out" | tr '\n' ' ')"
	mb=$(echo "$out" | sed -n 's/^growth //p')
	[ -n "$mb" ] || fail "$what: no peak memory measured"
	[ "$mb" -lt 100 ] || fail "$what grew the backend's peak memory by $mb MB"
}
out=$(growth "SELECT 'failures ' || cardinality(taskorch.validate(value, schema)) FROM input;")
check_growth validate "$out"
echo "$out" | grep -qx 'failures 10' || fail "validate() did not report 10 failures"
out=$(growth "DO \$\$
BEGIN
	PERFORM taskorch.trigger('strict', jsonb_build_object('list', value)) FROM input;
	RAISE EXCEPTION 'the payload was accepted';
EXCEPTION WHEN invalid_parameter_value THEN
	RAISE NOTICE 'refused';
END \$\$;
SELECT 'runs ' || count(*) FROM taskorch.run;" 2>&1)
check_growth trigger "$out"
echo "$out" | grep -q 'NOTICE:  refused' || fail "trigger() did not refuse the payload"
echo "$out" | grep -qx 'runs 0' || fail "trigger() made a run of a refused payload"

# 2. a cancel (statement_timeout) stops a check promptly
check_ms() {	# check_ms TABLE [TIMEOUT_MS]: how long its check ran, or its SQLSTATE
	psql_as "$port" postgres -At -v ON_ERROR_STOP=0 -v VERBOSITY=sqlstate 2>&1 <<SQL
SET statement_timeout = ${2:-0};
SELECT clock_timestamp() AS start \gset
SELECT 'result ' || cardinality(taskorch.validate(value, schema)) FROM $1;
SELECT 'ms ' || round(extract(epoch FROM clock_timestamp() - :'start') * 1000);
SQL
}
for table in long_input wide_input; do
	whole=$(check_ms $table | sed -n 's/^ms //p')
	[ -n "$whole" ] && [ "$whole" -ge 50 ] || fail "$table: its check took ${whole:-?} ms, too short to test a cancel"
	timeout=$((whole / 10 > 5 ? whole / 10 : 5))
	res=$(check_ms $table $timeout)
	echo "$table: whole ${whole} ms, timeout ${timeout} ms:" $res
	echo "$res" | grep -q '57014' || fail "$table: the check was not canceled: $res"
	ms=$(echo "$res" | sed -n 's/^ms //p')
	[ -n "$ms" ] && [ "$ms" -lt $((whole / 2)) ] || fail "$table: canceled only after ${ms} ms of ${whole}"
done
echo "memory.sh: PASS"
