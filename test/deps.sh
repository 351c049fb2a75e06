#!/usr/bin/env bash
# Installs what building, testing and benchmarking taskorch need, from
# Debian's archive, when it is missing.  Needs root (or sudo).
set -euo pipefail
pkgs="make gcc bc postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap libpq-dev
      postgresql-contrib libtap-parser-sourcehandler-pgtap-perl
      python3-psycopg python3-psycopg2 python3-sqlalchemy"
# the client tests' JavaScript (test/clients.sh): Debian's node and npm,
# unless this machine has them already (another node's package may own them)
command -v node >/dev/null && command -v npm >/dev/null || pkgs="$pkgs nodejs npm"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing:$missing"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
