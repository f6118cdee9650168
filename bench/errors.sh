#!/usr/bin/env bash
# Error tracking and forwarding (issue 4).
#
# 1. Durable error.report per second at 1, 16 and 64 clients (one request
#    in flight each; every reply waits for the commit that holds its row),
#    with [store] durability = full and = normal, beside SQLite alone
#    committing one row per transaction with the same table and index on
#    the same filesystem (bench/errors_sqlite.c). Target: >= 20x at full.
# 2. Forwarding: rows per second from ermd's outbox into the real table of
#    the PostgREST-conformant endpoint (tests/supabase, PostgreSQL 15),
#    beside a plain loop of `curl` POSTs of the same rows in batches of the
#    same size against the same endpoint. Target: >= 0.8x.
#
# usage: bench/errors.sh [-b BUILD_DIR]
#
# Environment (all optional):
#   DURATION=3         seconds per error.report measurement
#   CLIENTS="1 16 64"  client counts
#   FWD_ROWS=20000     rows forwarded in part 2 (about)
#   BENCH_DIR          where the databases go (default $TMPDIR or /tmp)
#   RAW=FILE           also append every raw line to FILE
#
# "ermd us" is ermd's CPU time per report (every thread: the loop, the
# SQLite writer and the kernel work they cause, fsync included), "load us"
# the load generator's, which runs on the same CPUs. Their sum bounds what
# this machine can do at all: the CPU ceiling line divides the CPUs by it.

set -u

# shellcheck source=bench/args.sh
. "$(dirname "$0")/args.sh"

DURATION=${DURATION:-3}
CLIENTS=${CLIENTS:-"1 16 64"}
FWD_ROWS=${FWD_ROWS:-20000}
ERMD=${ERMD:-$B/ermd}
ERMCTL=${ERMCTL:-$B/ermctl}
LOADGEN=$B/bench/loadgen
BASE=$B/bench/errors_sqlite
RAW=${RAW:-}
PY=/usr/bin/python3
BATCH=500

for f in "$ERMD" "$ERMCTL" "$LOADGEN" "$BASE"; do
	[ -x "$f" ] || { echo "errors: $f not built" >&2; exit 1; }
done

dir=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/ermd-bench-errors.XXXXXX") ||
    exit 1
pid= ep= pgdir=
cleanup() {
	trap - EXIT INT TERM
	[ -n "$pid" ] && { kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }
	[ -n "$ep" ] && { kill -TERM "$ep" 2>/dev/null; wait "$ep" 2>/dev/null; }
	[ -n "$pgdir" ] && sh tests/supabase/pg.sh stop "$pgdir" >/dev/null 2>&1
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

raw() {
	[ -n "$RAW" ] && echo "$1 $2" >> "$RAW"
	return 0
}

field() {	# line key
	echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

ratio() {
	echo "$1 $2" | awk '{ if ($2 > 0) printf "%.2f", $1 / $2; else print "-" }'
}

start_ermd() {	# conf-text
	rm -rf "$dir/state" "$dir/ermd.sock"
	mkdir -p "$dir/state"
	printf '%b' "$1" > "$dir/ermd.conf"
	"$ERMD" -f -c "$dir/ermd.conf" -S "$dir/ermd.sock" -D "$dir/state" \
	    2>"$dir/ermd.log" &
	pid=$!
	"$LOADGEN" -R -p erm -s "$dir/ermd.sock" -d 10 2>>"$dir/ermd.log" ||
	    { echo "errors: ermd did not start" >&2; cat "$dir/ermd.log" >&2;
	    exit 1; }
}

stop_ermd() {
	kill -TERM "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	pid=
}

REPORT='{"id":%ID%,"method":"error.report","params":{"operation":"bench","errno":"ECONNRESET","message":"connection reset by peer"}}'

# ---- 1. durable error.report -----------------------------------------------

# CPU time per report, in microseconds: ermd's (every thread, from
# loadgen -x) and the load generator's own.
client_us() {	# loadgen-line
	echo "$1" | tr ' ' '\n' | awk -F= '
	    { v[$1] = $2 }
	    END { if (v["requests"] > 0) printf "%.2f",
		v["client_cpu_pct"] / 100 * v["seconds"] * 1e6 / v["requests"];
		else print "-" }'
}

echo "durable error.report per second (each reply after its commit)"
printf "%-34s %10s %10s %9s %8s %8s\n" "workload" "reports/s" "p99 us" \
    "vs sqlite" "ermd us" "load us"
for dur in full normal; do
	rm -f "$dir"/sqlite.db*
	line=$("$BASE" "$dir/sqlite.db" "$dur" "$DURATION") ||
	    { echo "errors: baseline failed" >&2; exit 1; }
	raw "sqlite-$dur" "$line"
	base=$(field "$line" sqlite_rows_per_s)
	printf "%-34s %10s %10s %9s %8s %8s\n" \
	    "sqlite alone, $dur, 1 row/commit" "$base" "-" "1.00x" "-" "-"
	start_ermd "[store]\ndurability = $dur\n"
	for c in $CLIENTS; do
		line=$("$LOADGEN" -p erm -s "$dir/ermd.sock" -c "$c" -P 1 \
		    -d "$DURATION" -w 0.5 -x "$pid" -m "$REPORT" \
		    2>>"$dir/ermd.log") ||
		    { echo "errors: loadgen failed" >&2; exit 1; }
		raw "ermd-$dur-$c" "$line"
		rps=$(field "$line" rps)
		sus=$(field "$line" server_cpu_us_per_req)
		cus=$(client_us "$line")
		printf "%-34s %10s %10s %8sx %8s %8s\n" \
		    "ermd $dur, $c client(s)" "${rps%.*}" \
		    "$(field "$line" p99_us)" "$(ratio "$rps" "$base")" \
		    "$sus" "$cus"
		if [ "$dur" = full ] && [ "$c" = 64 ]; then
			full64=$(ratio "$rps" "$base")
			# What the CPUs allow at all: every one of them busy
			# with ermd and the load generator, nothing idle.
			ceiling=$(echo "$(nproc) $sus $cus $base" | awk '{
			    if ($2 + $3 > 0) printf "%.0f %.1f",
				$1 * 1e6 / ($2 + $3), $1 * 1e6 / ($2 + $3) / $4 }')
		fi
	done
	stop_ermd
done
if [ -n "${full64:-}" ]; then
	echo "$full64" | awk '{ printf "target >= 20x at full (64 clients): " \
	    "%s (%sx)\n", ($1 >= 20 ? "met" : "NOT met"), $1 }'
	[ -n "${ceiling:-}" ] && echo "$ceiling $(nproc)" | awk '{
	    printf "CPU ceiling at full, 64 clients: %d reports/s (%sx): " \
		"%d CPUs / (ermd + load generator CPU per report)\n",
		$1, $2, $3 }'
fi

# ---- 2. forwarding ------------------------------------------------------------

if ! [ -x "$PY" ] || ! "$PY" -c 'import psycopg2' 2>/dev/null ||
    ! command -v curl >/dev/null; then
	echo "forwarding: skipped (needs postgresql, python3-psycopg2, curl)"
	exit 0
fi
eval "$(sh tests/supabase/pg.sh start)" || exit 1
pgdir=$PGDIR
"$PY" tests/supabase/postgrest.py --port 0 --pghost "$PGHOST" \
    --pgport "$PGPORT" --dbname "$PGDATABASE" --secret-key sb_secret_bench \
    > "$dir/ep.out" 2>"$dir/ep.err" &
ep=$!
for _ in $(seq 100); do
	grep -q '^PORT ' "$dir/ep.out" 2>/dev/null && break
	sleep 0.05
done
port=$(sed -n 's/^PORT //p' "$dir/ep.out")
url=http://127.0.0.1:$port
admin() {	# method path [body]
	curl -s -X "$1" -H 'Content-Type: application/json' \
	    ${3:+--data-binary "$3"} "$url$2"
}

now_ms() { date +%s%3N; }

backlog() {
	"$ERMCTL" --socket "$dir/ermd.sock" --json status |
	    sed -n 's/.*"outbox_backlog":\([0-9]*\).*/\1/p'
}

# The rows of erm_errors waiting (the outbox also holds the alert that
# the paused forwarding raised).
errors_backlog() {
	"$ERMCTL" --socket "$dir/ermd.sock" --json status | "$PY" -c \
	    'import json, sys; print(json.load(sys.stdin)["forward"]["backlog"]["errors"])'
}

# ermd: queue the rows while forwarding is paused (a wrong key: 401), then
# give it the key and reload; time until the outbox is empty.
admin POST /_test/reset '{"truncate":true}' >/dev/null
printf 'sb_secret_wrong\n' > "$dir/key"
chmod 600 "$dir/key"
start_ermd "[store]\ndurability = normal\n[supabase]\nurl = $url\nkey_file = $dir/key\nbatch_max_rows = $BATCH\n"
secs=$(echo "$FWD_ROWS" | awk '{ printf "%.1f", $1 / 8000 + 0.5 }')
line=$("$LOADGEN" -p erm -s "$dir/ermd.sock" -c 16 -P 1 -d "$secs" -w 0 \
    -m "$REPORT" 2>>"$dir/ermd.log")
rows=$(errors_backlog)
printf 'sb_secret_bench\n' > "$dir/key"
t0=$(now_ms)
"$ERMCTL" --socket "$dir/ermd.sock" config reload >/dev/null
while [ "$(backlog)" != 0 ]; do
	sleep 0.02
done
t1=$(now_ms)
landed=$(admin GET '/_test/count?table=erm_errors' |
    sed -n 's/.*"count": *\([0-9]*\).*/\1/p')
ermd_rps=$(echo "$rows $t0 $t1" | awk '{ printf "%.0f", $1 * 1000 / ($3 - $2) }')
raw forward-ermd "rows=$rows ms=$((t1 - t0)) landed=$landed"

# The same rows, shaped as ermd sends them (fresh ids), in files of $BATCH;
# then a plain curl loop posts them one after another.
stop_ermd
"$PY" - "$dir/state/ermd.db" "$dir/batches" "$BATCH" "$(hostname)" <<'EOF'
import json, os, sqlite3, sys, uuid
db, out, n, host = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
os.makedirs(out, exist_ok=True)
c = sqlite3.connect(db)
rows = []
for (eid, at, op, cat, strat, fb, matched, sev, msg, err) in c.execute(
        "SELECT id, at, operation, category, strategy, fallback, matched, "
        "severity, message, error FROM errors ORDER BY seq"):
    e = json.loads(err)
    rows.append({"id": str(uuid.uuid4()), "at": "2026-01-01T00:00:00.000Z",
                 "host": host, "operation": op, "category": cat,
                 "severity": sev, "message": msg, "errno": 104,
                 "errno_name": e.get("errno"), "strategy": strat,
                 "fallback_strategy": fb, "matched": matched})
for i in range(0, len(rows), n):
    with open(os.path.join(out, "%08d.json" % i), "w") as f:
        json.dump(rows[i:i + n], f, separators=(",", ":"))
EOF
admin POST /_test/reset '{"truncate":true}' >/dev/null
cols="id,at,host,operation,category,severity,message,errno,errno_name,http_status,exit_code,signal,exception,retry_after_ms,path,context,strategy,fallback_strategy,matched"
t0=$(now_ms)
for f in "$dir"/batches/*.json; do
	curl -s -o /dev/null -X POST \
	    "$url/rest/v1/erm_errors?on_conflict=id&columns=$cols" \
	    -H "apikey: sb_secret_bench" -H "Authorization: Bearer sb_secret_bench" \
	    -H "Content-Type: application/json" \
	    -H "Prefer: return=minimal, resolution=ignore-duplicates, missing=default" \
	    --data-binary @"$f"
done
t1=$(now_ms)
curl_landed=$(admin GET '/_test/count?table=erm_errors' |
    sed -n 's/.*"count": *\([0-9]*\).*/\1/p')
curl_rps=$(echo "$curl_landed $t0 $t1" | awk '{ printf "%.0f", $1 * 1000 / ($3 - $2) }')
raw forward-curl "rows=$curl_landed ms=$((t1 - t0))"

echo
echo "forwarding to the PostgREST-conformant endpoint (batches of $BATCH)"
printf "%-34s %12s %12s %10s\n" "workload" "rows/s" "rows" "vs curl"
printf "%-34s %12s %12s %10s\n" "curl loop, one POST per batch" "$curl_rps" \
    "$curl_landed" "1.00x"
r=$(ratio "$ermd_rps" "$curl_rps")
printf "%-34s %12s %12s %9sx\n" "ermd outbox -> endpoint" "$ermd_rps" \
    "$landed/$rows" "$r"
echo "$r" | awk '{ printf "target >= 0.8x: %s (%sx)\n", ($1 >= 0.8 ? "met" : "NOT met"), $1 }'
