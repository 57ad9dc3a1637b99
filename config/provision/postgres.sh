#!/usr/bin/env bash
# Make the PostgreSQL server of the postgres test tier reachable (idempotent), then print its URL.
# - A server that already accepts the test role is used as it is.
# - On Debian as root: install postgresql from Debian, create or start a cluster, and create the
#   role `erchub` (password `erchub`) and the database `erchub_test` it owns.
# - Anywhere else: say what is missing and exit 3, so callers can skip the postgres tier.
# The URL printed on stdout is the one the tests read from ERCHUB_TEST_POSTGRES_URL (default).
set -euo pipefail

log() { printf '[erchub provision] %s\n' "$*" >&2; }

ROLE=erchub
PASSWORD=erchub
DATABASE=erchub_test
HOST=127.0.0.1

accepts_role() { # $1: port
  PGPASSWORD=$PASSWORD PGCONNECT_TIMEOUT=3 \
    psql -h "$HOST" -p "$1" -U "$ROLE" -d "$DATABASE" -Atqc 'select 1' >/dev/null 2>&1
}

print_url() { echo "postgresql+psycopg://$ROLE:$PASSWORD@$HOST:$1/$DATABASE"; }

if command -v psql >/dev/null 2>&1 && accepts_role 5432; then
  log "postgresql: reachable on port 5432"
  print_url 5432
  exit 0
fi

if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
  log "postgresql: no server accepts role $ROLE on $HOST:5432, and this is not Debian as root;" \
    "start PostgreSQL with that role and database $DATABASE, or set ERCHUB_TEST_POSTGRES_URL"
  exit 3
fi

if ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
  log "postgresql: installing postgresql from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
fi

# The newest installed server version, and its cluster `main` (Debian's package makes one; a
# machine whose cluster was dropped gets a new one).
version=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' |
  sed 's|/usr/lib/postgresql/\([^/]*\)/.*|\1|' | sort -n | tail -1)
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main"' | grep -q .; then
  log "postgresql: creating cluster $version/main"
  pg_createcluster "$version" main >/dev/null
fi
port=$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $4}' | grep -q online; then
  log "postgresql: starting cluster $version/main on port $port"
  pg_ctlcluster "$version" main start
fi

as_postgres() { runuser -u postgres -- psql -p "$port" -v ON_ERROR_STOP=1 -Atq "$@"; }

if [ -z "$(as_postgres -c "select 1 from pg_roles where rolname = '$ROLE'")" ]; then
  log "postgresql: creating role $ROLE"
  as_postgres -c "create role $ROLE login password '$PASSWORD'"
fi
if [ -z "$(as_postgres -c "select 1 from pg_database where datname = '$DATABASE'")" ]; then
  log "postgresql: creating database $DATABASE"
  as_postgres -c "create database $DATABASE owner $ROLE"
fi

if accepts_role "$port"; then
  log "postgresql: reachable ($version/main on port $port)"
  print_url "$port"
else
  log "postgresql: role $ROLE cannot log in on $HOST:$port; see /var/log/postgresql/"
  exit 1
fi
