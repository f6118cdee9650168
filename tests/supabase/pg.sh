#!/bin/sh
# A throwaway PostgreSQL cluster for the Supabase forwarder tests
# (shared/spec/SUPABASE-TESTING.md): initdb as the postgres user in a fresh
# temporary directory, unix socket in that directory, no TCP listener
# (listen_addresses=''), fsync=off. It then creates database ermd_test and
# applies, in order:
#   tests/supabase/roles.sql      the Supabase roles (anon, authenticated,
#                                 service_role, authenticator) and grants
#   docs/supabase/schema.sql      exactly what users paste into Supabase
#   tests/supabase/fixtures.sql   test-only poison/slow triggers (/_test/*)
#
# usage:
#   sh tests/supabase/pg.sh start        create + start; prints, on stdout only,
#                                        shell assignments for the caller:
#                                          PGDIR=/tmp/ermd-pg.XXXXXX
#                                          PGHOST=/tmp/ermd-pg.XXXXXX
#                                          PGPORT=NNNNN
#                                          PGDATABASE=ermd_test
#                                          PGUSER=postgres
#                                        e.g.  eval "$(sh tests/supabase/pg.sh start)"
#   sh tests/supabase/pg.sh stop [DIR]   stop the server and delete DIR
#                                        (default $PGDIR)
#   sh tests/supabase/pg.sh down [DIR]   stop the server, keep the data
#                                        (to test "database unreachable")
#   sh tests/supabase/pg.sh up [DIR]     start it again on the same socket
#
# As root, the server programs run as user postgres (initdb refuses root);
# as any other user they run as that user. The directory is mode 0700, so
# only root and the owner can reach the socket. Authentication is `trust`:
# this cluster is never reachable from the network.
#
# Needs Debian's postgresql package (apt-get install -y postgresql).

set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DB=ermd_test
MARK=.ermd-test-cluster		# marks a directory this script created

die() { echo "pg.sh: $*" >&2; exit 1; }

pgbin() {
	# The newest installed server (Debian 12: 15).
	b=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
	[ -n "$b" ] && [ -x "$b/initdb" ] ||
	    die "no PostgreSQL server found: apt-get install -y postgresql"
	echo "$b"
}

# Run a server program as the cluster's owner.
as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# A TCP port that is free on 127.0.0.1 right now. The server does not listen
# on TCP (listen_addresses=''): the port only names the socket file
# .s.PGSQL.<port> in the private directory, but a free one keeps clients
# that default to TCP from ever reaching some other server.
free_port() {
	/usr/bin/python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

check_dir() {
	[ -n "$1" ] || die "no cluster directory given (and \$PGDIR is not set)"
	[ -f "$1/$MARK" ] || die "$1: not a cluster made by pg.sh"
}

server_start() {	# DIR PORT
	as_owner "$(pgbin)/pg_ctl" -D "$1/data" -l "$1/log" -w -t 30 \
	    -o "-k $1 -p $2 -c listen_addresses='' -c fsync=off" start \
	    >/dev/null || { tail -20 "$1/log" >&2; return 1; }
}

server_stop() {		# DIR
	[ -f "$1/data/postmaster.pid" ] || return 0
	as_owner "$(pgbin)/pg_ctl" -D "$1/data" -m fast -w -t 20 stop \
	    >/dev/null ||
	    as_owner "$(pgbin)/pg_ctl" -D "$1/data" -m immediate -w -t 10 stop \
		>/dev/null
}

psql_run() {		# DIR PORT DBNAME psql-args...
	d=$1 p=$2 n=$3
	shift 3
	PGOPTIONS='-c client_min_messages=warning' \
	    psql -X -q -v ON_ERROR_STOP=1 -h "$d" -p "$p" -U postgres -d "$n" "$@"
}

start() {
	PGBIN=$(pgbin)
	if [ "$(id -u)" -eq 0 ]; then
		id postgres >/dev/null 2>&1 ||
		    die "no postgres user: apt-get install -y postgresql"
	fi
	D=$(mktemp -d /tmp/ermd-pg.XXXXXX)
	: >"$D/$MARK"
	[ "$(id -u)" -eq 0 ] && chown -R postgres: "$D"
	chmod 0700 "$D"
	# On any failure from here on, leave nothing behind.
	trap 'server_stop "$D" 2>/dev/null || true; rm -rf "$D"' EXIT
	trap 'exit 1' INT TERM HUP

	PORT=$(free_port)
	echo "$PORT" >"$D/port"
	# C locale and UTF8 whatever the caller's environment: deterministic,
	# and JSON text with any character fits.
	as_owner "$PGBIN/initdb" -D "$D/data" -U postgres -A trust --no-sync \
	    -E UTF8 --locale=C >"$D/initdb.log" 2>&1 ||
	    { cat "$D/initdb.log" >&2; die "initdb failed"; }
	server_start "$D" "$PORT" || die "server did not start (log above)"

	psql_run "$D" "$PORT" postgres -c "create database $DB"
	for f in "$HERE/roles.sql" "$ROOT/docs/supabase/schema.sql" \
	    "$HERE/fixtures.sql"; do
		psql_run "$D" "$PORT" "$DB" -f "$f" >/dev/null ||
		    die "applying $f failed"
	done

	trap - EXIT INT TERM HUP
	echo "PGDIR=$D"
	echo "PGHOST=$D"
	echo "PGPORT=$PORT"
	echo "PGDATABASE=$DB"
	echo "PGUSER=postgres"
}

cmd=${1:-}
dir=${2:-${PGDIR:-}}
case $cmd in
start)
	start
	;;
stop)
	# Stopping what is already gone is not an error (cleanup paths).
	[ -n "$dir" ] && [ ! -e "$dir" ] && exit 0
	check_dir "$dir"
	server_stop "$dir" || die "stopping the server in $dir failed"
	rm -rf "$dir"
	;;
down)
	check_dir "$dir"
	server_stop "$dir"
	;;
up)
	check_dir "$dir"
	[ -f "$dir/data/postmaster.pid" ] || server_start "$dir" "$(cat "$dir/port")"
	;;
*)
	echo "usage: sh tests/supabase/pg.sh start | stop [DIR] | down [DIR] | up [DIR]" >&2
	exit 2
	;;
esac
