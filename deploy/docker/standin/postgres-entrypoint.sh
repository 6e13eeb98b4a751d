#!/bin/sh
# Stand-in for the official postgres image's entrypoint, for the tests only (no registry here):
# the same variables (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, PGDATA, PGPORT), a first
# start that creates the cluster and the database, then the server in the foreground.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" --auth-host=scram-sha-256 --auth-local=trust > /dev/null
    rm -f "$pwfile"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses= -c unix_socket_directories=/tmp" -w start > /dev/null
    if [ "$POSTGRES_DB" != postgres ]; then
        createdb -h /tmp -U "$POSTGRES_USER" "$POSTGRES_DB"
    fi
    pg_ctl -D "$PGDATA" -m fast -w stop > /dev/null
    echo "database $POSTGRES_DB created"
fi
exec postgres -D "$PGDATA" -c "listen_addresses=${POSTGRES_LISTEN:-*}" -c unix_socket_directories=/var/run/postgresql
