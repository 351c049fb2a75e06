#!/usr/bin/env bash
# pgTAP API contract tests (test/pgtap/*.sql), run by pg_prove against a
# throwaway cluster with shared_preload_libraries = 'taskorch'.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/test/lib.sh"
port=${PGTAP_PORT:-55433}
throwaway_cluster pgtap "$port"
cp -r "$top/test/pgtap" "$dir/tests"
# patterns.sql and tracks.sql check the examples of docs pages, which they run first
extract() { awk '/^```sql$/ {on = 1; next} /^```/ {on = 0} on' "$top/docs/$1.md" >"$dir/tests/$2.inc"; }
extract patterns patterns
extract media-pipeline media
chown -R postgres: "$dir/tests"
psql_as "$port" postgres -c "CREATE DATABASE tap"
psql_as "$port" tap -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION taskorch"
as_postgres pg_prove -h "$dir" -p "$port" -U postgres -d tap "$dir"/tests/*.sql
