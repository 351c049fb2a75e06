# test/lib.sh: throwaway PostgreSQL clusters for taskorch's shell-driven
# tests, demo and benchmark.  Source it; every server-side step runs as
# the postgres OS user, since PostgreSQL refuses to run as root.
#
#   cluster_start DIR PORT [extra postgresql.conf lines...]
#   cluster_stop DIR [mode]
#   psql_as PORT DB [psql args...]      (as the postgres superuser)
#   throwaway_cluster NAME PORT [conf lines...]
#   build_and_install
#   fail MESSAGE                        (a test's failure: prints, exits 1)
#   q SQL                               (its result, unaligned, on $port's postgres)

top=${top:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
PGBIN=${PGBIN:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}

# Install the dependencies, build and install taskorch (needs root).
build_and_install() {
	"$top/test/deps.sh"
	PGBIN=$(pg_config --bindir)
	make -s -C "$top" >/dev/null
	make -s -C "$top" install >/dev/null
}

as_postgres() {
	if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

cluster_start() {
	local dir=$1 port=$2
	shift 2
	rm -rf "$dir"
	mkdir -p "$dir"
	chown postgres: "$dir" 2>/dev/null || true
	as_postgres "$PGBIN/initdb" -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log"; return 1; }
	{
		echo "shared_preload_libraries = 'taskorch'"
		echo "port = $port"
		echo "listen_addresses = ''"
		echo "unix_socket_directories = '$dir'"
		echo "max_worker_processes = 16"
		echo "log_line_prefix = '%m [%p] %b '"
		for line in "$@"; do echo "$line"; done
	} | as_postgres tee -a "$dir/data/postgresql.conf" >/dev/null
	as_postgres "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null ||
		{ cat "$dir/server.log"; return 1; }
	export PGHOST=$dir PGPORT=$port
}

cluster_stop() {
	as_postgres "$PGBIN/pg_ctl" -D "$1/data" -m "${2:-fast}" -w stop >/dev/null 2>&1 || true
}

cluster_restart() {
	as_postgres "$PGBIN/pg_ctl" -D "$1/data" -l "$1/server.log" -w start >/dev/null ||
		{ cat "$1/server.log"; return 1; }
}

fail() { echo "FAIL: $*"; exit 1; }
q() { psql_as "$port" postgres -tAc "$1"; }

psql_as() {
	local port=$1 db=$2
	shift 2
	as_postgres "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$port" -U postgres -d "$db" "$@"
}

# Wait until the SQL query prints "t" (default 30 s).
wait_for() {
	local port=$1 db=$2 sql=$3 secs=${4:-30}
	local deadline=$((SECONDS + secs))
	while [ $SECONDS -lt $deadline ]; do
		[ "$(psql_as "$port" "$db" -tAc "$sql" 2>/dev/null)" = t ] && return 0
		sleep 0.1
	done
	echo "timed out after ${secs}s waiting for: $sql" >&2
	return 1
}

# Wait until CONDITION (an SQL boolean) holds, from one connection that
# polls every SECONDS (default 0.1) and commits between polls: it holds no
# snapshot, so the runs it watches can be pruned meanwhile (a wait inside
# one transaction would keep every dead row version until it ends), and it
# adds no connection's start to what it watches.  With TIMEOUT (seconds),
# an error once it has passed.
wait_until() {
	local port=$1 db=$2 cond=$3 secs=${4:-0.1} timeout=${5:-}
	psql_as "$port" "$db" -c "DO \$\$
	DECLARE deadline timestamptz := clock_timestamp() + '${timeout:-1000000} s';
	BEGIN
		WHILE NOT ($cond) LOOP
			IF clock_timestamp() > deadline THEN
				RAISE EXCEPTION 'timed out after ${timeout} s waiting for: %', \$c\$$cond\$c\$;
			END IF;
			COMMIT; PERFORM pg_sleep($secs);
		END LOOP;
	END \$\$" >/dev/null
}

# Start a cluster in a new directory $dir, stopped and removed when the
# script exits (KEEP=1 keeps the directory, logs included).
throwaway_cluster() {
	local name=$1 port=$2
	shift 2
	dir=$(mktemp -d "/tmp/taskorch-$name.XXXXXX")
	trap 'cluster_stop "$dir" immediate; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
	cluster_start "$dir" "$port" "$@"
}
