#!/usr/bin/env bash
# Memory under churn: does ermd's resident set level off while everything
# it keeps comes and goes? A daemon meant to run for months must not grow
# with the number of requests it has served, only with what it holds now;
# a leak that is freed at exit (a list that only grows) passes ASAN's leak
# check but not this.
#
# One ermd, small bounds so that each kind of state is made and dropped
# many times: breakers evicted after 1 s idle, the breaker journal rotated
# and compacted every MiB, at most 20,000 stored errors (pruned every
# second), finished workflows kept a second; max_ops raised so that every op.begin makes an op. Each round,
# with fresh names:
#   - breaker acquire+record pairs on 50,000 new breakers (64 clients);
#   - error.report of 100,000 distinct operations and contexts;
#   - op.begin on new operations with breakers, left open: the ops end
#     as failed when the load generator's connections close;
#   - events.subscribe on connections that then close;
#   - error.classify and retry.next over 100,000 budget keys;
#   - workflows of 20 steps (10 wide) from 16 clients, finished ones
#     pruned after a second (bench/workflow_load).
# After each round: ermd's VmRSS and what it holds (status). The ratio
# compares the last round with the middle one: near 1.00 when memory has
# levelled off (the first rounds fill SQLite's page caches and malloc's
# arenas); well above it is growth per request served.
#
# usage: bench/run-soak.sh [-b BUILD_DIR]      (about 2 minutes)
# Environment: ROUNDS=20, RAW=FILE (every round's line).

set -u

# shellcheck source=bench/args.sh
. "$(dirname "$0")/args.sh"

ROUNDS=${ROUNDS:-20}
RAW=${RAW:-}
LOADGEN=$B/bench/loadgen
WFLOAD=$B/bench/workflow_load
ERMD=$B/ermd
ERMCTL=$B/ermctl
for f in "$ERMD" "$ERMCTL" "$LOADGEN" "$WFLOAD"; do
	[ -x "$f" ] || { echo "soak: $f not built" >&2; exit 1; }
done

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_setup ermd-bench-soak

mkdir "$dir/state"
cat > "$dir/ermd.conf" <<EOF
[daemon]
max_ops = 200000
[store]
breaker_journal_bytes = 1048576
[breaker]
idle_evict_ms = 1000
[errors]
max_rows = 20000
prune_interval_ms = 1000
[workflow]
max_age_ms = 1000
prune_interval_ms = 1000
EOF
start ermd erm "$dir/ermd.sock" "$dir/ermd.log" \
    "$ERMD" -f -c "$dir/ermd.conf" -S "$dir/ermd.sock" -D "$dir/state" ||
    exit 1
s=$dir/ermd.sock

REPORT='{"id":%ID%,"method":"error.report","params":{"operation":"op%R%","errno":"ECONNRESET","message":"reset %R%","context":{"k":"%R%"}}}'
OPBEGIN='{"id":%ID%,"method":"op.begin","params":{"operation":"o%R%","breaker":"ob%R%"}}'
SUBSCRIBE='{"id":%ID%,"method":"events.subscribe","params":{"types":["breaker.state","error.reported"]}}'
CLASSIFY='{"id":%ID%,"method":"error.classify","params":{"error":{"errno":"EIO","message":"x %R%"}}}'
RETRY='{"id":%ID%,"method":"retry.next","params":{"attempt":1,"key":"k%R%","error":{"errno":"ECONNRESET"}}}'

# requests= of a loadgen line
reqs() {
	sed -n 's/.* requests=\([0-9]*\) .*/\1/p' "$1"
}

# One load generator run of the round; its requests are added to n.
churn() {
	run_loadgen "$dir/lg.out" "$dir/lg.err" -p erm -s "$s" -w 0 "$@" ||
	    { echo "soak: loadgen failed:" >&2; cat "$dir/lg.err" >&2; exit 1; }
	n=$((n + $(reqs "$dir/lg.out")))
}

rss_kb() {
	awk '/^VmRSS:/ { print $2 }' "/proc/${pid[ermd]}/status"
}

echo "memory under churn: ermd VmRSS after each round ($ROUNDS rounds)"
printf "%6s %9s %12s %10s %9s %12s\n" round rss_MiB requests workflows \
    breakers errors_total
total=0 wf=0 mid=0 last=0
for round in $(seq 1 "$ROUNDS"); do
	n=0
	churn -c 64 -d 1 -B 50000 -n "r${round}b"
	churn -c 16 -d 1 -K 100000 -m "$REPORT"
	churn -c 32 -d 1 -K 100000 -m "$OPBEGIN"
	churn -c 32 -d 1 -m "$SUBSCRIBE"
	churn -c 16 -d 1 -K 100000 -m "$CLASSIFY"
	churn -c 16 -d 1 -K 100000 -m "$RETRY"
	"$WFLOAD" -s "$s" -m par -n 20 -w 10 -c 16 -t 1 > "$dir/wf.out" ||
	    { echo "soak: workflow_load failed" >&2; exit 1; }
	wf=$((wf + $(sed -n 's/.* workflows=\([0-9]*\) .*/\1/p' "$dir/wf.out")))
	total=$((total + n))
	rss=$(rss_kb)
	status=$("$ERMCTL" --socket "$s" status --json) ||
	    { echo "soak: status failed" >&2; exit 1; }
	read -r breakers errors <<< "$(echo "$status" | sed -n \
	    's/.*"breakers":{"total":\([0-9]*\).*"errors_total":\([0-9]*\).*/\1 \2/p')"
	[ -n "$RAW" ] && echo "round=$round rss_kb=$rss requests=$n $status" \
	    >> "$RAW"
	printf "%6d %9.1f %12d %10d %9s %12s\n" "$round" "$(echo "$rss" |
	    awk '{ print $1 / 1024 }')" "$total" "$wf" "${breakers:--}" \
	    "${errors:--}"
	[ "$round" -eq $(((ROUNDS + 1) / 2)) ] && mid=$rss
	last=$rss
done
echo "(requests, workflows: served and run so far; breakers: held now" \
    "(idle ones are evicted after 1 s); errors_total: reported so far (at" \
    "most 20,000 stored))"
echo "$last $mid $ROUNDS" | awk '{ r = $2 > 0 ? $1 / $2 : 0
    printf "rss round %d / round %d: %.2f (%s)\n", $3, int(($3 + 1) / 2), r,
	r <= 1.10 ? "levelled off" : "still growing" }'
