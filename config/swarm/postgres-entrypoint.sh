#!/bin/sh
# PostgreSQL of erchub's Swarm stack, as the user postgres. At the first start (no cluster in
# $PGDATA) it makes the cluster, the role $ERCHUB_DATABASE_USER with the password in the file
# $POSTGRES_PASSWORD_FILE (a secret of the stack) and the databases $ERCHUB_DATABASES
# (space-separated) that role owns; then it runs the server on every address, password
# (scram-sha-256) required from the network.
set -eu
bin=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin | sort -V | tail -n 1)
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  "$bin/initdb" --pgdata="$PGDATA" --username=postgres --auth-local=peer \
    --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  # a server for this setup alone: on the socket in /tmp, no network
  "$bin/pg_ctl" --pgdata="$PGDATA" --options="-c listen_addresses='' -c unix_socket_directories=/tmp" \
    --wait start >/dev/null
  password=$(cat "$POSTGRES_PASSWORD_FILE")
  "$bin/psql" -h /tmp -U postgres -v ON_ERROR_STOP=1 -q \
    -c "create role \"$ERCHUB_DATABASE_USER\" login password '$password'"
  for database in $ERCHUB_DATABASES; do
    "$bin/psql" -h /tmp -U postgres -v ON_ERROR_STOP=1 -q \
      -c "create database \"$database\" owner \"$ERCHUB_DATABASE_USER\""
  done
  "$bin/pg_ctl" --pgdata="$PGDATA" --mode=fast --wait stop >/dev/null
  echo "erchub-postgres: made the cluster, role $ERCHUB_DATABASE_USER, databases $ERCHUB_DATABASES"
fi
exec "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp
