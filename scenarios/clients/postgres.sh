#!/bin/sh
# A throwaway PostgreSQL for the pgbench scenarios: a fresh cluster in a temporary directory,
# served on 127.0.0.1:PORT (default 15432) in the foreground, removed when it stops. portlab
# starts it with target.exec inside the lab (so only the lab's client can reach it) and stops
# it with SIGTERM. PostgreSQL refuses to run as root: as root it runs as the user postgres.
port=${1:-15432}
bindir=$(dirname "$(command -v initdb 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb | tail -n 1)")
dir=$(mktemp -d /tmp/portlab-pg.XXXXXX) || exit 1
as=""
if [ "$(id -u)" = 0 ]; then
  chown postgres "$dir" || exit 1
  as="runuser -u postgres --"
fi
$as "$bindir/initdb" -A trust -U postgres -D "$dir/data" >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; rm -rf "$dir"; exit 1; }
$as "$bindir/postgres" -D "$dir/data" -k "$dir" -h 127.0.0.1 -p "$port" -c fsync=off -c max_connections=200 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid || true; rm -rf "$dir"; exit 0' TERM INT
wait $pid || true
rm -rf "$dir"
