#!/usr/bin/env bash
# Measure ermd's ping against a raw C echo server and Redis PING, interleaved.
#
# usage: bench/run-ping.sh [-b BUILD_DIR]
#
# Environment (all optional):
#   DURATION=3          measured seconds per run
#   WARMUP=0.5          seconds of load before each run is measured
#   REPS=3              repetitions; the table shows the median of them
#   SCENARIOS="1x1 1x1b 64x1 64x16"
#                       CLIENTSxPIPELINE; a trailing b makes the load
#                       generator busy-poll (loadgen -b) so that its own
#                       CPU never idles: on this VM a wake from idle costs
#                       tens of microseconds, which otherwise dominates the
#                       one-client latency
#   SERVERS="ermd echo redis"    which servers to run
#   LOADGEN, ECHO_SERVER, ERMD   binaries (default under BUILD_DIR)
#   RAW=FILE            also append every loadgen line, tagged, to FILE
#
# Each repetition runs every scenario against every server in turn (ermd,
# echo, redis, ermd, echo, redis, ...) so that a slow spell on this noisy
# machine hits all three alike. Servers run on CPU 0 and the load generator
# on CPU 1 when taskset and two CPUs are there. The script prints numbers and
# ratios only: no target here fails anything. It kills what it started on
# any exit.

set -u

# shellcheck source=bench/args.sh
. "$(dirname "$0")/args.sh"

DURATION=${DURATION:-3}
WARMUP=${WARMUP:-0.5}
REPS=${REPS:-3}
SCENARIOS=${SCENARIOS:-"1x1 1x1b 64x1 64x16"}
SERVERS=${SERVERS:-"ermd echo redis"}
LOADGEN=${LOADGEN:-$B/bench/loadgen}
ECHO_SERVER=${ECHO_SERVER:-$B/bench/echo_server}
ERMD=${ERMD:-$B/ermd}
RAW=${RAW:-}

for f in "$LOADGEN" "$ECHO_SERVER"; do
	[ -x "$f" ] || { echo "run-ping: $f not built" >&2; exit 1; }
done

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_setup ermd-bench

active=()
for s in $SERVERS; do
	case $s in
	ermd)
		if [ ! -x "$ERMD" ]; then
			echo "note: $ERMD not found; ermd left out"
			continue
		fi
		mkdir -p "$dir/state"
		start ermd erm "$dir/ermd.sock" "$dir/ermd.log" \
		    "$ERMD" -f -S "$dir/ermd.sock" -D "$dir/state" || continue
		;;
	echo)
		start echo erm "$dir/echo.sock" "$dir/echo.log" \
		    "$ECHO_SERVER" "$dir/echo.sock" || continue
		;;
	redis)
		start_redis redis "$dir/redis.sock" "$dir/redis.log" ||
		    continue
		;;
	*)
		echo "run-ping: unknown server '$s'" >&2
		exit 2
		;;
	esac
	active+=("$s")
done
if [ ${#active[@]} -eq 0 ]; then
	echo "run-ping: no server to measure" >&2
	exit 1
fi

echo "ping benchmark: ${active[*]}; $REPS x ${DURATION}s runs (+${WARMUP}s" \
    "warm-up) per server and scenario; $pinning; $(nproc) CPUs," \
    "$(uname -r)"

results=$dir/results
: >"$results"
for rep in $(seq "$REPS"); do
	for sc in $SCENARIOS; do
		c=${sc%%x*} P=${sc#*x} busy=()
		case $P in
		*b) P=${P%b} busy=(-b) ;;
		esac
		for s in "${active[@]}"; do
			out=$dir/run.out
			run_loadgen "$out" "$dir/run.err" -p "${proto[$s]}" \
			    -s "${sock[$s]}" -c "$c" -P "$P" -d "$DURATION" \
			    -w "$WARMUP" -x "${pid[$s]}" "${busy[@]}"
			rc=$?
			if [ $rc -ne 0 ] || ! grep -q '^proto=' "$out"; then
				echo "note: rep $rep, $sc, $s failed" \
				    "(exit $rc): $(head -c 300 "$dir/run.err")"
				continue
			fi
			line="server=$s scenario=$sc rep=$rep $(cat "$out")"
			echo "$line" >>"$results"
			[ -n "$RAW" ] && echo "$line" >>"$RAW"
			printf '  rep %s %-6s %-5s %s\n' "$rep" "$sc" "$s" \
			    "$(awk '{ for (i = 1; i <= NF; i++)
				if ($i ~ /^(rps|p50_us|p99_us|errors)=/)
				    printf "%s ", $i }' "$out")"
		done
	done
done

# The table, the medians and the ratios, all from the key=value lines.
awk -v scenarios="$SCENARIOS" -v servers="${active[*]}" "$AWK_LIB"'
{
	delete kv
	for (i = 1; i <= NF; i++) {
		split($i, f, "=")
		kv[f[1]] = f[2]
	}
	k = kv["server"] SUBSEP kv["scenario"]
	if (kv["other_cpu_pct"] + 0 > 20)
		disturbed++
	if (kv["other_cpu_pct"] + 0 > maxother)
		maxother = kv["other_cpu_pct"] + 0
	split("rps p50_us p99_us server_cpu_us_per_req client_cpu_pct " \
	    "other_cpu_pct", names)
	for (m in names) {
		key = k SUBSEP names[m]
		val[key, ++cnt[key]] = kv[names[m]] + 0
	}
}
END {
	ns = split(scenarios, sc, " ")
	nv = split(servers, sv, " ")
	print ""
	printf "%-8s %-6s %10s %9s %9s %11s %13s %7s\n", "scenario", \
	    "server", "rps", "p50_us", "p99_us", "cpu_us/req", "loadgen_cpu%", \
	    "other%"
	for (i = 1; i <= ns; i++) {
		for (j = 1; j <= nv; j++) {
			k = sv[j] SUBSEP sc[i]
			if (cnt[k SUBSEP "rps"] == 0)
				continue
			printf "%-8s %-6s %10.0f %9.1f %9.1f %11.2f %13.0f" \
			    " %7.0f\n", sc[i], sv[j], median(k SUBSEP "rps"), \
			    median(k SUBSEP "p50_us"), \
			    median(k SUBSEP "p99_us"), \
			    median(k SUBSEP "server_cpu_us_per_req"), \
			    median(k SUBSEP "client_cpu_pct"), \
			    median(k SUBSEP "other_cpu_pct")
		}
	}
	print "(scenario: CLIENTSxPIPELINE, b: busy-polling load generator;" \
	    " median of the repetitions. cpu_us/req: the server'"'"'s CPU" \
	    " time per request, /proc schedstat. loadgen_cpu% near 100: the" \
	    " load generator, not the server, set the pace. other%: CPU used" \
	    " by anything else on the machine, in % of one CPU)"
	if (disturbed > 0)
		printf "note: %d of %d runs had other load above 20%%" \
		    " of a CPU (up to %.0f%%); absolute numbers are" \
		    " disturbed, the interleaved ratios less so\n", disturbed, \
		    NR, maxother
	print ""
	printf "%-44s %7s   %s\n", "ratio (medians)", "value", "target"
	for (i = 1; i <= ns; i++) {
		e = "ermd" SUBSEP sc[i]
		r = ratio(median(e SUBSEP "rps"), \
		    median("redis" SUBSEP sc[i] SUBSEP "rps"))
		tgt = sc[i] == "64x1" ? ">= 0.70  " verdict(r, ">=", 0.7) : ""
		printf "%-44s %7s   %s\n", "throughput ermd/redis, " sc[i], r, \
		    tgt
		printf "%-44s %7s\n", "throughput ermd/echo, " sc[i], \
		    ratio(median(e SUBSEP "rps"), \
		    median("echo" SUBSEP sc[i] SUBSEP "rps"))
		printf "%-44s %7s\n", "cpu per request ermd/redis, " sc[i], \
		    ratio(median(e SUBSEP "server_cpu_us_per_req"), \
		    median("redis" SUBSEP sc[i] SUBSEP "server_cpu_us_per_req"))
		if (sc[i] ~ /^1x1b?$/) {
			r = ratio(median(e SUBSEP "p50_us"), \
			    median("echo" SUBSEP sc[i] SUBSEP "p50_us"))
			printf "%-44s %7s   %s\n", \
			    "p50 latency ermd/echo, " sc[i], r, \
			    "<= 1.30  " verdict(r, "<=", 1.3)
		}
	}
}' "$results"
