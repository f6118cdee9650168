#!/usr/bin/env bash
# Workflow transitions: workflows of 100 `sleep 0` steps, one sequential
# chain and 10 parallel chains of 10, run by ermd with every step
# transition (running, succeeded) committed before the next action starts.
# Printed beside the rate at which SQLite alone commits one transition per
# transaction on the same filesystem (WAL, synchronous=FULL, as ermd's
# store with durability = full): the ratio is what group commit buys.
#
# usage: bench/workflow.sh [-b BUILD_DIR]
#
# Environment (all optional):
#   DURATION=3      seconds per measurement
#   CONCS="1 16"    workflows in flight at once
#   BENCH_DIR       where the databases go (default: a temp dir under
#                   $TMPDIR or /tmp: the numbers are that filesystem's)
#   RAW=FILE        also append every raw line to FILE

set -u

# shellcheck source=bench/args.sh
. "$(dirname "$0")/args.sh"

DURATION=${DURATION:-3}
CONCS=${CONCS:-"1 16"}
ERMD=${ERMD:-$B/ermd}
LOAD=$B/bench/workflow_load
BASE=$B/bench/workflow_sqlite
RAW=${RAW:-}

for f in "$ERMD" "$LOAD" "$BASE"; do
	[ -x "$f" ] || { echo "workflow: $f not built" >&2; exit 1; }
done

dir=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/ermd-bench-workflow.XXXXXX") ||
    exit 1
pid=
cleanup() {
	trap - EXIT INT TERM
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
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

mkdir -p "$dir/state"
"$ERMD" -f -S "$dir/ermd.sock" -D "$dir/state" 2>"$dir/ermd.log" &
pid=$!
for n in $(seq 100); do
	[ -S "$dir/ermd.sock" ] && break
	sleep 0.05
done

line=$("$BASE" "$dir/sqlite.db" "$DURATION") ||
    { echo "workflow: baseline failed" >&2; exit 1; }
raw sqlite "$line"
base=$(field "$line" sqlite_commits_per_s)

printf "%-40s %12s %10s\n" "workload" "trans/s" "vs sqlite"
printf "%-40s %12s %10s\n" "sqlite alone, 1 commit/transition" "$base" "1.00x"
for mode in seq par; do
	for c in $CONCS; do
		line=$("$LOAD" -s "$dir/ermd.sock" -m $mode -n 100 -w 10 \
		    -c "$c" -t "$DURATION") ||
		    { echo "workflow: load failed" >&2; cat "$dir/ermd.log" >&2;
		    exit 1; }
		raw "$mode-$c" "$line"
		tps=$(field "$line" transitions_per_s)
		if [ $mode = seq ]; then
			what="100 sequential steps"
		else
			what="10 x 10 parallel steps"
		fi
		printf "%-40s %12s %9.2fx\n" "ermd $what, $c at once" "$tps" \
		    "$(echo "$tps $base" | awk '{ printf "%.2f", $1 / $2 }')"
	done
done
