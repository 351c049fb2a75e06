#!/usr/bin/env bash
# Real clients against taskorch: node-postgres, knex and kysely
# (test/clients/node.js), psycopg 3 (test/clients/psycopg_test.py) and
# SQLAlchemy (test/clients/sqlalchemy_test.py), each binding every argument
# as its language gives it, with no cast in the SQL; then the JavaScript and
# Python examples of docs/clients.md.  They connect as an ordinary role that
# owns its task.  The npm packages (test/clients/package.json) are
# installed outside the checkout, in $TASKORCH_NODE_MODULES.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/test/lib.sh"
port=${CLIENTS_PORT:-55441}
modules=${TASKORCH_NODE_MODULES:-/var/cache/taskorch-clients}

if ! cmp -s "$top/test/clients/package.json" "$modules/package.json" || [ ! -d "$modules/node_modules/pg" ]; then
	mkdir -p "$modules"
	cp "$top/test/clients/package.json" "$modules/package.json"
	(cd "$modules" && npm install --no-audit --no-fund --no-package-lock --silent)
fi

throwaway_cluster clients "$port" "taskorch.workers_per_database = 1"
psql_as "$port" postgres -c "CREATE ROLE app LOGIN" -c "CREATE DATABASE clients OWNER app"
psql_as "$port" clients -c "CREATE EXTENSION taskorch"
as_postgres "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U app -d clients <<'SQL'
CREATE FUNCTION echo(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT payload $$;
SELECT taskorch.register_task('echo', 'echo(jsonb)');
SELECT taskorch.create_queue('mail');
SQL

export PGHOST=$dir PGPORT=$port PGUSER=app PGDATABASE=clients NODE_PATH=$modules/node_modules
status=0
run() {
	echo "-- $*"
	"$@" || { echo "FAILED: $*"; status=1; }
}
run node "$top/test/clients/node.js"
# Debian's psycopg and SQLAlchemy import under /usr/bin/python3 (another python3 may come first on PATH)
run /usr/bin/python3 "$top/test/clients/psycopg_test.py"
run /usr/bin/python3 "$top/test/clients/sqlalchemy_test.py"

# the examples of docs/clients.md, each language's blocks in order
awk '/^```js$/ {on = 1; next} /^```/ {on = 0} on' "$top/docs/clients.md" >"$dir/clients-doc.js"
awk '/^```python$/ {on = 1; next} /^```/ {on = 0} on' "$top/docs/clients.md" >"$dir/clients-doc.py"
run node "$dir/clients-doc.js"
run /usr/bin/python3 "$dir/clients-doc.py"
[ $status -eq 0 ] && echo "clients: all passed"
exit $status
