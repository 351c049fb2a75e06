#!/usr/bin/env bash
# pgTAP API contract tests (test/pgtap/*.sql), run by pg_prove against a
# throwaway cluster with shared_preload_libraries = 'taskorch'.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/test/lib.sh"
port=${PGTAP_PORT:-55433}
throwaway_cluster pgtap "$port"
cp -r "$top/test/pgtap" "$dir/tests"
chown -R postgres: "$dir/tests"
psql_as "$port" postgres -c "CREATE DATABASE tap"
psql_as "$port" tap -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION taskorch"
as_postgres pg_prove -h "$dir" -p "$port" -U postgres -d tap "$dir"/tests/*.sql
