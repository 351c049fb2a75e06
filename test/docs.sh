#!/usr/bin/env bash
# Runs the examples in README.md and docs/: every ```sql block of a page, in order, in a
# fresh database of a throwaway cluster, stopping at the first error; then
# checks that each ```output block of the page (what it shows psql print) is what
# the examples printed (test/doc-output.awk).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/test/lib.sh"
port=${DOCS_PORT:-55437}
throwaway_cluster docs "$port" "taskorch.workers_per_database = 1"
status=0
for page in "$top"/README.md "$top"/docs/*.md; do
	name=$(basename "$page" .md | tr '[:upper:]' '[:lower:]')
	script="$dir/$name.sql"
	awk '/^```sql$/ {on = 1; next} /^```/ {on = 0} on' "$page" >"$script"
	[ -s "$script" ] || continue
	chown postgres: "$script"
	db="doc_${name//-/_}"
	psql_as "$port" postgres -c "CREATE DATABASE $db" >/dev/null
	grep -q "CREATE EXTENSION taskorch" "$script" ||
		psql_as "$port" "$db" -c "CREATE EXTENSION taskorch" >/dev/null
	if ! psql_as "$port" "$db" -f "$script" >"$dir/$name.out" 2>&1; then
		echo "$(basename "$page"): an example failed:"
		tail -20 "$dir/$name.out"
		status=1
	elif ! awk -f "$top/test/doc-output.awk" "$page" "$dir/$name.out"; then
		echo "$(basename "$page"): the examples printed something else:"
		sed 's/^/    | /' "$dir/$name.out" | tail -60
		status=1
	else
		echo "$(basename "$page"): examples ok"
	fi
	# each page's database has workers: drop it before the next page's
	psql_as "$port" postgres -c "DROP DATABASE $db" >/dev/null
done
exit $status
