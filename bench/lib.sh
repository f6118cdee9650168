# Helpers shared by the bench/run-*.sh scripts; source it, do not run it.
#
#   bench_setup NAME   a fresh temp dir in $dir (under $TMPDIR or /tmp), the
#                      EXIT/INT/TERM traps that kill what these helpers
#                      started and remove $dir, and the CPU pinning:
#                      srv_pin (servers, CPU 0) and cli_pin (loadgen,
#                      CPU 1) when taskset and two CPUs are there; $pinning
#                      says which.
#   start NAME PROTO SOCKET LOG COMMAND...
#                      run a server pinned, wait until it answers (loadgen
#                      -R), record pid[NAME] sock[NAME] proto[NAME]; or say
#                      why not, leave it out and return 1.
#   start_redis NAME SOCKET LOG
#                      start redis-server on a Unix socket only (no TCP,
#                      no persistence), or return 1 with a note.
#   run_loadgen OUT ERR ARGS...
#                      run "$LOADGEN" ARGS pinned, stdout to OUT, stderr to
#                      ERR; returns its exit status. An interrupt kills it.
#   $AWK_LIB           awk functions for the summaries: median(key) over
#                      val[key, 1..cnt[key]], ratio(a, b), verdict(r, op,
#                      target).
#
# The caller sets LOADGEN before calling start, and may set STOP_GRACE (the
# seconds a server gets to exit on SIGTERM before SIGKILL, default 2).

# The variables here are for the scripts that source this file.
# shellcheck disable=SC2034

declare -A pid=() sock=() proto=()
lg_pid=
dir=

bench_cleanup() {
	local p
	trap - EXIT INT TERM
	[ -n "$lg_pid" ] && kill "$lg_pid" 2>/dev/null
	for p in "${pid[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	# Give each server STOP_GRACE seconds to exit on SIGTERM, then SIGKILL.
	for p in "${pid[@]}"; do
		for _ in $(seq $((${STOP_GRACE:-2} * 10))); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	[ -n "$dir" ] && rm -rf "$dir"
}

bench_setup() {
	dir=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX") || exit 1
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	srv_pin=() cli_pin=() pinning="no (taskset or a second CPU missing)"
	if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
		srv_pin=(taskset -c 0)
		cli_pin=(taskset -c 1)
		pinning="servers on CPU 0, loadgen on CPU 1"
	fi
}

start() {
	local name=$1 p=$2 s=$3 log=$4
	shift 4
	"${srv_pin[@]}" "$@" >"$log" 2>&1 &
	pid[$name]=$!
	if ! "$LOADGEN" -R -p "$p" -s "$s" -d 10 2>>"$log" ||
	    ! kill -0 "${pid[$name]}" 2>/dev/null; then
		echo "note: $name did not answer on $s; left out. Its log:"
		tail -n 20 "$log" | sed 's/^/    /'
		kill -KILL "${pid[$name]}" 2>/dev/null
		wait "${pid[$name]}" 2>/dev/null
		unset "pid[$name]"
		return 1
	fi
	sock[$name]=$s
	proto[$name]=$p
}

start_redis() {
	local name=$1 s=$2 log=$3
	if ! command -v redis-server >/dev/null 2>&1; then
		echo "note: redis-server not installed" \
		    "(Debian package redis-server); $name left out"
		return 1
	fi
	start "$name" resp "$s" "$log" \
	    redis-server --port 0 --unixsocket "$s" \
	    --unixsocketperm 700 --save '' --appendonly no \
	    --dir "$dir" --daemonize no
}

run_loadgen() {
	local out=$1 errf=$2 rc
	shift 2
	"${cli_pin[@]}" "$LOADGEN" "$@" >"$out" 2>"$errf" &
	lg_pid=$!
	wait "$lg_pid"
	rc=$?
	lg_pid=
	return $rc
}

AWK_LIB='
function median(key,    n, i, j, t, v) {
	n = cnt[key]
	if (n == 0)
		return ""
	for (i = 1; i <= n; i++)
		v[i] = val[key, i]
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && v[j - 1] > v[j]; j--) {
			t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
		}
	return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function ratio(a, b) {
	return (a == "" || b == "" || b == 0) ? "n/a" : sprintf("%.2f", a / b)
}
function verdict(r, op, target) {
	if (r == "n/a")
		return ""
	if (op == ">=")
		return (r + 0 >= target) ? "meets" : "misses"
	return (r + 0 <= target) ? "meets" : "misses"
}
'
