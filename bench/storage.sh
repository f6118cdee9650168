#!/usr/bin/env bash
# storage.put throughput: 4 KiB and 16 MiB objects to a dir backend beside
# cp to the same directory, and to nginx (WebDAV PUT) beside curl -T.
#
# usage: bench/storage.sh [-b BUILD_DIR]
#
# Environment (all optional):
#   DURATION=3        seconds per measurement
#   REPS=3            repetitions; the table shows the median
#   SIZES="4k 16m"    object sizes (dd-style suffixes k, m)
#   CONNS=1           loadgen connections (each with one put in flight)
#   BENCH_DIR         where the objects go (default: a temp dir under
#                     $TMPDIR or /tmp: the numbers are that filesystem's)
#   RAW=FILE          also append every loadgen line, tagged, to FILE
#
# What is compared. ermd's put reads the client's file, writes a temp file,
# fsyncs it, renames it over the key and fsyncs the directory, and replies
# with the SHA-256: a durable write. "cp" is the plain copy (no fsync);
# "cp+sync" adds `sync FILE` (fsync of the file, not the directory), which
# is the fair floor for a durable copy. Each cp and curl is a new process,
# which is part of what a script that stores a file with them pays; ermd's
# client is loadgen, one process for the whole run. Every put and copy
# overwrites the same key, so the disk does not fill up. nginx writes its
# body to a temp file and renames it, without fsync.

set -u

# shellcheck source=bench/args.sh
. "$(dirname "$0")/args.sh"

DURATION=${DURATION:-3}
REPS=${REPS:-3}
SIZES=${SIZES:-"4k 16m"}
CONNS=${CONNS:-1}
LOADGEN=${LOADGEN:-$B/bench/loadgen}
ERMD=${ERMD:-$B/ermd}
RAW=${RAW:-}
here=$(cd "$(dirname "$0")/.." && pwd)

for f in "$LOADGEN" "$ERMD"; do
	[ -x "$f" ] || { echo "storage: $f not built" >&2; exit 1; }
done

dir=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/ermd-bench-storage.XXXXXX") ||
    exit 1
pids=()
nginx_pid=

cleanup() {
	local p n
	trap - EXIT INT TERM
	[ -n "$nginx_pid" ] && kill -QUIT "$nginx_pid" 2>/dev/null
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${pids[@]}" $nginx_pid; do
		for n in $(seq 30); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- nginx ---------------------------------------------------------------

have_nginx=no
nginx_bin=$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; })
if [ -n "$nginx_bin" ]; then
	mkdir -p "$dir/nginx"
	for try in 1 2 3 4 5 6 7 8; do
		port=$((20000 + RANDOM % 30000))
		sh "$here/tests/nginx-dav.sh" conf "$dir/nginx" "$port" || break
		mkdir -p "$dir/nginx/data/store"
		"$nginx_bin" -e "$dir/nginx/error.log" -p "$dir/nginx/" \
		    -c "$dir/nginx/nginx.conf" -g 'daemon off;' \
		    </dev/null >/dev/null 2>&1 &
		nginx_pid=$!
		for n in $(seq 100); do
			if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
				have_nginx=yes
				break
			fi
			kill -0 "$nginx_pid" 2>/dev/null || break
			sleep 0.02
		done
		[ $have_nginx = yes ] && break
		wait "$nginx_pid" 2>/dev/null
		nginx_pid=
	done
fi
[ $have_nginx = yes ] || echo "storage: nginx not available; the http rows are skipped"
have_curl=no
command -v curl >/dev/null 2>&1 && have_curl=yes

# ---- ermd ----------------------------------------------------------------

# One daemon per backend, so each measures one kind of backend.
start_ermd() {	# name conf-text
	local n=$1 i
	mkdir -p "$dir/$n"
	printf '%s\n' "$2" >"$dir/$n/ermd.conf"
	"$ERMD" -f -c "$dir/$n/ermd.conf" -S "$dir/$n/sock" -D "$dir/$n/state" \
	    2>"$dir/$n/log" &
	pids+=($!)
	for i in $(seq 200); do
		[ -S "$dir/$n/sock" ] && return 0
		sleep 0.02
	done
	echo "storage: ermd ($n) did not start" >&2
	cat "$dir/$n/log" >&2
	exit 1
}

mkdir -p "$dir/objects" "$dir/cp"
start_ermd dir "[storage]
check_interval_ms = 3600000
max_inflight = 1024
[backend.local]
path = $dir/objects"
if [ $have_nginx = yes ]; then
	start_ermd web "[storage]
check_interval_ms = 3600000
max_inflight = 1024
[backend.web]
url = http://127.0.0.1:$port/store"
fi

# ---- measurements ----------------------------------------------------------

now() { echo "${EPOCHREALTIME/./}"; }	# microseconds

# ops/s of a shell command run in a loop for DURATION seconds.
loop_rate() {
	local t0 t1 end n=0
	t0=$(now)
	end=$((t0 + ${DURATION%.*} * 1000000))
	while :; do
		"$@" || return 1
		n=$((n + 1))
		t1=$(now)
		[ "$t1" -ge "$end" ] && break
	done
	awk -v n=$n -v us=$((t1 - t0)) 'BEGIN { printf "%.1f\n", n / (us / 1e6) }'
}

cp_once() { cp "$1" "$dir/cp/obj"; }
cp_sync_once() { cp "$1" "$dir/cp/obj" && sync "$dir/cp/obj"; }
curl_once() {
	curl -sf -o /dev/null -T "$1" "http://127.0.0.1:$port/store/curl-obj"
}

# ops/s of storage.put through loadgen against socket.
ermd_rate() {	# sock src tag
	local line rps errs
	line=$("$LOADGEN" -p erm -s "$1" -c "$CONNS" -P 1 -d "$DURATION" \
	    -w 0.3 -m "{\"id\":%ID%,\"method\":\"storage.put\",\"params\":{\"key\":\"obj\",\"path\":\"$2\"}}" 2>"$dir/lg.err")
	[ -n "$RAW" ] && echo "$3 $line" >>"$RAW"
	errs=$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$line")
	if [ "${errs:-1}" != 0 ]; then
		echo "storage: $3: errors from ermd: $(head -c 300 "$dir/lg.err")" >&2
		echo 0
		return
	fi
	sed -n 's/.* rps=\([0-9.]*\).*/\1/p' <<<"$line"
}

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR ? v[int((NR + 1) / 2)] : 0) }'; }

bytes_of() {
	case $1 in
	*k) echo $(( ${1%k} * 1024 )) ;;
	*m) echo $(( ${1%m} * 1024 * 1024 )) ;;
	*) echo "$1" ;;
	esac
}

printf 'storage.put: dir backend on %s, %s s per run, median of %s, %s connection(s)\n' \
    "$(df -PT "$dir" | awk 'NR == 2 { print $2 }')" "$DURATION" "$REPS" "$CONNS"
printf '%-7s %-22s %10s %10s %s\n' size target ops/s MiB/s "ratio"

for size in $SIZES; do
	bytes=$(bytes_of "$size")
	src="$dir/src-$size"
	head -c "$bytes" /dev/urandom >"$src"
	declare -A runs=()
	for rep in $(seq "$REPS"); do
		runs[ermd_dir]+=" $(ermd_rate "$dir/dir/sock" "$src" "dir-$size")"
		runs[cp]+=" $(loop_rate cp_once "$src")"
		runs[cp_sync]+=" $(loop_rate cp_sync_once "$src")"
		if [ $have_nginx = yes ]; then
			runs[ermd_web]+=" $(ermd_rate "$dir/web/sock" "$src" "web-$size")"
			[ $have_curl = yes ] &&
			    runs[curl]+=" $(loop_rate curl_once "$src")"
		fi
	done
	row() {	# label key baseline-key
		local v b r mib
		v=$(median <<<"${runs[$2]:-}")
		mib=$(awk -v v="$v" -v s="$bytes" 'BEGIN { printf "%.1f", v * s / 1048576 }')
		r=""
		if [ -n "${3:-}" ]; then
			b=$(median <<<"${runs[$3]:-}")
			r=$(awk -v v="$v" -v b="$b" 'BEGIN { if (b > 0) printf "%.2fx %s", v / b, "'"$4"'" }')
		fi
		printf '%-7s %-22s %10.1f %10s %s\n' "$size" "$1" "$v" "$mib" "$r"
	}
	row "ermd put, dir" ermd_dir cp "of cp"
	row "ermd put, dir" ermd_dir cp_sync "of cp+sync"
	row "cp" cp
	row "cp + sync FILE" cp_sync
	if [ $have_nginx = yes ]; then
		if [ $have_curl = yes ]; then
			row "ermd put, nginx" ermd_web curl "of curl -T"
			row "curl -T, nginx" curl
		else
			row "ermd put, nginx" ermd_web
		fi
	fi
	unset runs
	rm -f "$src"
done
