#!/usr/bin/env bash
# taskorch soak (not a test): five minutes of steady trigger + execute with
# a short retention, twice: alone, and with a transaction held open for 60 s
# in the middle.  Prints, every 30 s, the runs completed per second, the
# rows and the size of the runs table and its indexes; then the last
# minute's rate over the first's.  Retention must keep the table level.
# Usage: bench/soak.sh [rate] [seconds]   (defaults 2000 runs/s, 300 s)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/test/lib.sh"
build_and_install

rate=${1:-2000}
secs=${2:-300}
port=${SOAK_PORT:-55438}
throwaway_cluster soak "$port" "shared_buffers = 512MB" "max_wal_size = 4GB" \
	"taskorch.workers_per_database = 2" "taskorch.retention = 30s"
sql() { psql_as "$port" postgres -tA "$@"; }
sql >/dev/null <<'SQL'
CREATE EXTENSION taskorch;
CREATE FUNCTION noop(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT NULL::jsonb $$;
SELECT taskorch.register_task('noop', 'noop(jsonb)');
SQL
echo "SELECT taskorch.trigger('noop', '{}');" >"$dir/trigger.sql"
chown postgres: "$dir/trigger.sql"

# soak LABEL HOLD: $secs s of $rate triggers/s; HOLD=1 keeps a snapshot open from 1/3 to 1/3 + 60 s
soak() {
	local label=$1 hold=$2 first="" last="" t=0
	echo "$label: $rate triggers/s for $secs s, retention 30 s"
	as_postgres "$PGBIN/pgbench" -h "$dir" -p "$port" -U postgres -n -c 2 -j 2 -R "$rate" -T "$secs" \
		-f "$dir/trigger.sql" postgres >"$dir/pgbench.log" 2>&1 &
	local bench=$!
	if [ "$hold" = 1 ]; then
		(sleep $((secs / 3)); sql -c "BEGIN ISOLATION LEVEL REPEATABLE READ" -c "SELECT count(*) FROM taskorch.run" \
			-c "SELECT pg_sleep(60)" -c "COMMIT" >/dev/null) &
	fi
	while [ $t -lt "$secs" ]; do
		sleep 30
		t=$((t + 30))
		local line
		line=$(sql -c "SELECT round(count(*) FILTER (WHERE finished_at > now() - interval '10 seconds') / 10.0)
							  || ' ' || count(*)
							  || ' ' || pg_size_pretty(pg_table_size('taskorch.run'))
							  || ' ' || pg_size_pretty(pg_indexes_size('taskorch.run'))
						 FROM taskorch.run")
		set -- $line
		printf "  %4d s: %6s runs/s completed, %8s rows, table %s %s, indexes %s %s\n" "$t" "$1" "$2" "$3" "$4" "$5" "$6"
		[ $t -le 60 ] && first="$first $1"
		[ $t -gt $((secs - 60)) ] && last="$last $1"
	done
	wait $bench || true
	awk -v f="$first" -v l="$last" 'BEGIN { nf = split(f, a); nl = split(l, b); sf = 0; sl = 0;
		for (i = 1; i <= nf; i++) sf += a[i]; for (i = 1; i <= nl; i++) sl += b[i];
		printf "  last minute / first minute: %.2f\n", (sl / nl) / (sf / nf) }'
	sql -c "SELECT count(*) FROM taskorch.run WHERE NOT taskorch.finished(status)" |
		xargs printf "  unfinished at the end: %s\n"
}
soak "alone" 0
sleep 40	# the retention empties the table
soak "with a transaction open 60 s" 1
