#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests (Debian package `postgresql`), never the
# system's cluster or service:
#
#   scripts/postgres.sh start DIR PORT   initdb a cluster in DIR/data (unless one is there),
#                                        start it on 127.0.0.1:PORT (socket and lock file in
#                                        DIR, log in DIR/log), create role and database
#                                        `holdfast`, print postgres://holdfast@127.0.0.1:PORT/holdfast
#   scripts/postgres.sh stop DIR         stop it (fast shutdown) and remove DIR
#   scripts/postgres.sh halt DIR         stop it and keep DIR: `start DIR PORT` brings it
#                                        back with its data (a database outage, for tests)
#
# Loopback only, trust authentication (any role, no password), fsync and synchronous_commit
# on (commits cost what they cost in production), 200 connections, 64 MB shared buffers.
# initdb and the server refuse to run as root: as root, DIR is handed to the `postgres`
# user and both run as that user (runuser); as anyone else they run as that user. DIR must
# be reachable by that user and its path short (the socket path limit is 107 bytes).
#
# The server binaries are not on PATH on Debian: the newest /usr/lib/postgresql/<ver>/bin
# is used, or $PG_BINDIR. Exit status 3: no PostgreSQL server installed (the tests skip);
# 1: any other failure, with the reason (and the server log's tail) on stderr.
set -euo pipefail

# A file in DIR that marks it as ours: `stop` removes no directory without it.
marker=holdfast-postgres

die() {
  echo "scripts/postgres.sh: $*" >&2
  exit 1
}

usage() {
  echo "usage: scripts/postgres.sh start DIR PORT | stop DIR" >&2
  exit 2
}

bindir() {
  if [ -n "${PG_BINDIR:-}" ]; then
    [ -x "$PG_BINDIR/initdb" ] || die "PG_BINDIR=$PG_BINDIR has no initdb"
    echo "$PG_BINDIR"
    return
  fi
  local newest
  newest=$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$newest" ]; then
    echo "scripts/postgres.sh: no PostgreSQL server (/usr/lib/postgresql/*/bin/initdb):" \
      "apt-get install postgresql" >&2
    exit 3
  fi
  dirname "$newest"
}

# Run a command as the user that owns the cluster (given as $1) from within DIR; root
# hands over to it, anyone else must be it.
as_user() {
  local user=$1
  shift
  if [ "$(id -u)" -eq 0 ]; then
    (cd "$dir" && runuser -u "$user" -- "$@")
  else
    (cd "$dir" && "$@")
  fi
}

# SQL as the superuser `postgres`, over loopback (trust).
sql() {
  "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres \
    -tA -c "$1"
}

start() {
  [ $# -eq 2 ] || usage
  port=$2
  [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1024 ] && [ "$port" -le 65535 ] ||
    die "PORT must be a number in 1024..65535, not '$port'"
  bin=$(bindir)
  mkdir -p "$1" || die "cannot create $1"
  dir=$(cd "$1" && pwd)
  local user
  if [ "$(id -u)" -eq 0 ]; then
    user=postgres
    id -u "$user" >/dev/null 2>&1 || die "no 'postgres' user (is the postgresql package installed?)"
  else
    user=$(id -un)
  fi

  if [ -f "$dir/data/PG_VERSION" ]; then
    [ -f "$dir/$marker" ] || die "$dir/data is a cluster this script did not create"
    local was
    was=$(cat "$dir/$marker")
    [ "$was" = "$port" ] || die "the cluster in $dir is set up for port $was, not $port"
  else
    if [ -n "$(ls -A "$dir")" ] && [ ! -f "$dir/$marker" ]; then
      die "$dir is not empty: give a new or empty directory"
    fi
    [ "$(id -u)" -ne 0 ] || chown "$user:" "$dir"
    chmod 700 "$dir"
    as_user "$user" test -w "$dir" ||
      die "user '$user' cannot write to $dir (is a parent directory closed to it?)"
    rm -rf "$dir/data"
    echo "$port" >"$dir/$marker"
    # --no-sync: only initdb's own files; the server itself runs with fsync on.
    as_user "$user" "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C \
      --no-sync >"$dir/initdb.log" 2>&1 ||
      die "initdb failed: $(tail -n 20 "$dir/initdb.log")"
    cat >"$dir/data/pg_hba.conf" <<'EOF'
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  trust
EOF
    cat >>"$dir/data/postgresql.conf" <<EOF

# scripts/postgres.sh: a throwaway test server on loopback.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = on
synchronous_commit = on
max_connections = 200
shared_buffers = 64MB
EOF
  fi

  if ! as_user "$user" "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    as_user "$user" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 -s start >/dev/null ||
      die "the server did not start on 127.0.0.1:$port; $dir/log ends with:
$(tail -n 20 "$dir/log" 2>/dev/null)"
  fi

  sql "SELECT 1 FROM pg_roles WHERE rolname = 'holdfast'" | grep -q 1 ||
    sql "CREATE ROLE holdfast LOGIN CREATEDB" || die "cannot create role holdfast"
  sql "SELECT 1 FROM pg_database WHERE datname = 'holdfast'" | grep -q 1 ||
    sql "CREATE DATABASE holdfast OWNER holdfast" || die "cannot create database holdfast"
  echo "postgres://holdfast@127.0.0.1:$port/holdfast"
}

stop() {
  [ $# -eq 1 ] || usage
  if [ ! -d "$1" ]; then
    echo "scripts/postgres.sh: $1 does not exist: nothing to stop" >&2
    return 0
  fi
  dir=$(cd "$1" && pwd)
  if [ ! -f "$dir/$marker" ]; then
    [ -z "$(ls -A "$dir")" ] || die "$dir was not made by 'scripts/postgres.sh start': not removing it"
  elif [ -f "$dir/data/PG_VERSION" ]; then
    bin=$(bindir)
    local user
    user=$(stat -c %U "$dir/data")
    if as_user "$user" "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      as_user "$user" "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 -s stop ||
        die "the server in $dir did not stop; $dir/log ends with:
$(tail -n 20 "$dir/log" 2>/dev/null)"
    fi
  fi
  [ "${keep:-0}" = 1 ] || rm -rf "$dir"
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  halt) shift; keep=1 stop "$@" ;;
  *) usage ;;
esac
