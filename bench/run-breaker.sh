#!/usr/bin/env bash
# Circuit breakers (issue 3): ermd breaker.acquire + breaker.record pairs
# per second beside Redis running what a Redis-backed breaker sends per
# call, the way breaker libraries send it (redis-seq) and all in one write
# (redis-pipe), with 10 and with 100,000 breakers, interleaved.
#
# usage: bench/run-breaker.sh [-b BUILD_DIR]
#
# Environment (all optional):
#   DURATION=3          measured seconds per run
#   WARMUP=0.5          seconds of load before each run is measured
#   REPS=3              repetitions; the table shows the median of them
#   CLIENTS="1 64"      connections, each with one pair (or call) in
#                       flight; a trailing b makes the load generator
#                       busy-poll (loadgen -b), as in run-ping.sh
#   BREAKERS="10 100000"
#                       breaker (key) counts; each pair picks its breaker
#                       uniformly among them
#   SERVERS="ermd redis-seq redis-pipe"
#                       what to measure, in this order in each round:
#                       redis-seq sends the Redis call's commands one
#                       after the other (loadgen -S), redis-pipe all of
#                       them in one write; "redis" alone means redis-pipe
#   REDIS_CMDS="GET brk:%R%:state|INCR brk:%R%:calls|EXPIRE brk:%R%:calls 60"
#                       the Redis call (loadgen -r; %R% is the breaker)
#   LOADGEN, ERMD       binaries (default under BUILD_DIR)
#   RAW=FILE            also append every loadgen line, tagged, to FILE
#
# What is compared. One ermd pair is two round trips on one connection:
# breaker.acquire for a random name of N ("b0042"), then breaker.record with
# the permit it returned and outcome "success" (so no breaker ever opens);
# the pair's latency runs from the acquire's write to the record's reply.
# The two round trips are inherent: the permit must be had before the
# protected call and the outcome recorded after it. One Redis call is the
# three commands a Redis-backed breaker needs per call (read the state,
# count the call, keep the counter's window), measured two ways:
#   redis-seq   each command sent when the previous one's reply is in,
#               three round trips per call: what a Redis-backed breaker
#               does (it must read the state before the protected call and
#               count the outcome after it; libraries such as pybreaker's
#               Redis storage send a command and wait for its reply). The
#               issue's target, ermd >= 1.5x Redis, is judged against this.
#   redis-pipe  all three pipelined in one write, one round trip: the best
#               case for Redis, which no breaker can have; shown for
#               honesty, with no target.
# A call's latency runs from its first command's write to its last reply.
# All of them use the same load generator.
#
# Every breaker count has its own ermd (max_breakers raised to hold it)
# and its own redis-server (which redis-seq and redis-pipe share), so that
# the 10-breaker runs see 10 breakers and 10 keys. Before any measurement
# every breaker (key) is created by a pass over all N names in order
# (loadgen -F), so the runs measure existing breakers, not their creation. Each repetition runs every scenario against
# every server in turn; servers run on CPU 0 and the load generator on
# CPU 1 when taskset and two CPUs are there. The script prints numbers and
# ratios only: no target here fails anything. It kills what it started on
# any exit. With the defaults it takes about three minutes.

set -u

# shellcheck source=bench/args.sh
. "$(dirname "$0")/args.sh"

DURATION=${DURATION:-3}
WARMUP=${WARMUP:-0.5}
REPS=${REPS:-3}
CLIENTS=${CLIENTS:-"1 64"}
BREAKERS=${BREAKERS:-"10 100000"}
SERVERS=${SERVERS:-"ermd redis-seq redis-pipe"}
REDIS_CMDS=${REDIS_CMDS:-"GET brk:%R%:state|INCR brk:%R%:calls|EXPIRE brk:%R%:calls 60"}
LOADGEN=${LOADGEN:-$B/bench/loadgen}
ERMD=${ERMD:-$B/ermd}
RAW=${RAW:-}
# ermd holding 100,000 breakers takes over a second to exit on SIGTERM.
# shellcheck disable=SC2034
STOP_GRACE=10	# read by lib.sh

[ -x "$LOADGEN" ] || { echo "run-breaker: $LOADGEN not built" >&2; exit 1; }

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_setup ermd-bench-breaker

# What each measured server is: its kind (the process it runs against) and
# the loadgen arguments that make its unit of work.
servers=
for s in $SERVERS; do
	case $s in
	ermd | redis-seq | redis-pipe) ;;
	redis) s=redis-pipe ;;
	*) echo "run-breaker: unknown server '$s'" >&2; exit 2 ;;
	esac
	case " $servers " in
	*" $s "*) ;;
	*) servers="${servers:+$servers }$s" ;;
	esac
done
SERVERS=$servers
kind_of() {
	case $1 in
	ermd) echo ermd ;;
	*) echo redis ;;
	esac
}
# load_args SERVER N: the loadgen arguments for one unit of SERVER's work.
load_args() {
	case $1 in
	ermd) args=(-p erm -B "$2") ;;
	redis-seq) args=(-p resp -K "$2" -S -r "$REDIS_CMDS") ;;
	redis-pipe) args=(-p resp -K "$2" -r "$REDIS_CMDS") ;;
	esac
}

maxn=0
for n in $BREAKERS; do
	case $n in
	'' | *[!0-9]*) echo "run-breaker: bad breaker count '$n'" >&2; exit 2 ;;
	esac
	[ "$n" -gt "$maxn" ] && maxn=$n
done
# Room for every breaker count here, and the same limit for every daemon.
max_breakers=$((maxn * 2 > 200000 ? maxn * 2 : 200000))
printf '[daemon]\nmax_breakers = %s\n' "$max_breakers" >"$dir/ermd.conf"

# fill NAME N: create all N breakers (keys) of server NAME, unmeasured.
fill() {
	local name=$1 n=$2 args=()
	if [ "${proto[$name]}" = erm ]; then
		load_args ermd "$n"
	else
		load_args redis-pipe "$n"
	fi
	if ! run_loadgen "$dir/fill.out" "$dir/fill.err" "${args[@]}" -F \
	    -s "${sock[$name]}" -c 64 -d 0.05 -w 0 ||
	    ! grep -q ' 0 errors$' "$dir/fill.err"; then
		echo "note: creating $n breakers on $name failed; left out:"
		sed 's/^/    /' "$dir/fill.err" | head -n 5
		return 1
	fi
	printf '  %-13s %s\n' "$name" "$(sed -n 's/^loadgen: //p' \
	    "$dir/fill.err" | head -n 1)"
}

# One process per kind and breaker count: server "redis-seq" at 10
# breakers runs against process redis-10, as does redis-pipe.
kinds=
for s in $SERVERS; do
	k=$(kind_of "$s")
	case " $kinds " in
	*" $k "*) ;;
	*) kinds="${kinds:+$kinds }$k" ;;
	esac
done
active=()
for s in $kinds; do
	for n in $BREAKERS; do
		name=$s-$n
		case $s in
		ermd)
			if [ ! -x "$ERMD" ]; then
				echo "note: $ERMD not found; ermd left out"
				break
			fi
			mkdir -p "$dir/state-$n"
			start "$name" erm "$dir/$name.sock" "$dir/$name.log" \
			    "$ERMD" -f -c "$dir/ermd.conf" \
			    -S "$dir/$name.sock" -D "$dir/state-$n" || continue
			;;
		redis)
			start_redis "$name" "$dir/$name.sock" \
			    "$dir/$name.log" || break
			;;
		esac
		fill "$name" "$n" || continue
		active+=("$name")
	done
done
if [ ${#active[@]} -eq 0 ]; then
	echo "run-breaker: no server to measure" >&2
	exit 1
fi

echo "breaker benchmark: $SERVERS (processes ${active[*]});" \
    "$REPS x ${DURATION}s runs" \
    "(+${WARMUP}s warm-up) per server and scenario; $pinning;" \
    "$(nproc) CPUs, $(uname -r)"
echo "  redis call: $REDIS_CMDS (redis-seq: one command per round trip," \
    "loadgen -S; redis-pipe: all in one write)"

results=$dir/results
: >"$results"
for rep in $(seq "$REPS"); do
	for c in $CLIENTS; do
		busy=()
		case $c in
		*b) c=${c%b} busy=(-b) ;;
		esac
		for n in $BREAKERS; do
			for s in $SERVERS; do
				name=$(kind_of "$s")-$n
				[ -n "${proto[$name]:-}" ] || continue
				load_args "$s" "$n"
				sc=${c}${busy:+b}/$n
				out=$dir/run.out
				run_loadgen "$out" "$dir/run.err" "${args[@]}" \
				    -s "${sock[$name]}" -c "$c" -P 1 \
				    -d "$DURATION" -w "$WARMUP" \
				    -x "${pid[$name]}" "${busy[@]}"
				rc=$?
				if [ $rc -ne 0 ] || ! grep -q '^proto=' "$out"
				then
					echo "note: rep $rep, $sc, $s failed" \
					    "(exit $rc):" \
					    "$(head -c 300 "$dir/run.err")"
					continue
				fi
				line="server=$s scenario=$sc rep=$rep $(cat "$out")"
				echo "$line" >>"$results"
				[ -n "$RAW" ] && echo "$line" >>"$RAW"
				printf '  rep %s %-9s %-10s %s\n' "$rep" "$sc" \
				    "$s" "$(awk '{ for (i = 1; i <= NF; i++)
					if ($i ~ /^(rps|p50_us|p99_us|errors|other_cpu_pct)=/)
					    printf "%s ", $i }' "$out")"
			done
		done
	done
done

# The table, the medians and the ratios, all from the key=value lines.
scenarios=
for c in $CLIENTS; do
	for n in $BREAKERS; do
		scenarios="$scenarios $c/$n"
	done
done
awk -v scenarios="$scenarios" -v servers="$SERVERS" -v clients="$CLIENTS" \
    -v breakers="$BREAKERS" "$AWK_LIB"'
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
	errs += kv["errors"]
	split("rps p50_us p99_us server_cpu_us_per_req " \
	    "server_sys_us_per_req server_cpu_pct client_cpu_pct " \
	    "other_cpu_pct", names)
	for (m in names) {
		key = k SUBSEP names[m]
		val[key, ++cnt[key]] = kv[names[m]] + 0
	}
}
function med(s, sc, what) {
	return median(s SUBSEP sc SUBSEP what)
}
END {
	ns = split(scenarios, sc, " ")
	nv = split(servers, sv, " ")
	nc = split(clients, cl, " ")
	nb = split(breakers, br, " ")
	for (j = 1; j <= nv; j++)
		has[sv[j]] = 1
	print ""
	printf "%-10s %-10s %10s %9s %9s %12s %12s %13s %7s\n", \
	    "scenario", "server", "pairs/s", "p50_us", "p99_us", \
	    "cpu_us/pair", "sys_us/pair", "loadgen_cpu%", "other%"
	for (i = 1; i <= ns; i++) {
		for (j = 1; j <= nv; j++) {
			k = sv[j] SUBSEP sc[i]
			if (cnt[k SUBSEP "rps"] == 0)
				continue
			printf "%-10s %-10s %10.0f %9.1f %9.1f %12.2f %12.2f" \
			    " %13.0f %7.0f\n", sc[i], sv[j], \
			    med(sv[j], sc[i], "rps"), \
			    med(sv[j], sc[i], "p50_us"), \
			    med(sv[j], sc[i], "p99_us"), \
			    med(sv[j], sc[i], "server_cpu_us_per_req"), \
			    med(sv[j], sc[i], "server_sys_us_per_req"), \
			    med(sv[j], sc[i], "client_cpu_pct"), \
			    med(sv[j], sc[i], "other_cpu_pct")
		}
	}
	print "(scenario: CLIENTS/BREAKERS, one pair or call in flight per" \
	    " client, b: busy-polling load generator; median of the" \
	    " repetitions. pairs/s: ermd acquire+record pairs (2 round" \
	    " trips), redis calls of the three commands: redis-seq one" \
	    " after the other (3 round trips, as a breaker must), redis-pipe" \
	    " pipelined (1 round trip, the best case for Redis)." \
	    " cpu_us/pair: the server'"'"'s CPU time" \
	    " per pair or call, all threads, /proc schedstat; sys_us/pair:" \
	    " the part of it spent in the kernel (system calls, the wake-ups" \
	    " of the load generator), /proc/PID/stat. other%: CPU" \
	    " used by anything else on the machine, in % of one CPU)"
	if (disturbed > 0)
		printf "note: %d of %d runs had other load above 20%%" \
		    " of a CPU (up to %.0f%%); absolute numbers are" \
		    " disturbed, the interleaved ratios less so\n", disturbed, \
		    NR, maxother
	if (errs > 0)
		printf "note: %d error replies in all (see RAW)\n", errs
	print ""
	printf "%-46s %7s   %s\n", "ratio (medians)", "value", "target"
	# Against what a Redis-backed breaker does: the target of the issue.
	if (has["ermd"] && has["redis-seq"])
		for (i = 1; i <= ns; i++) {
			r = ratio(med("ermd", sc[i], "rps"), \
			    med("redis-seq", sc[i], "rps"))
			printf "%-46s %7s   %s\n", "throughput ermd/redis-seq, " \
			    sc[i], r, ">= 1.50  " verdict(r, ">=", 1.5)
			printf "%-46s %7s\n", "cpu per pair ermd/redis-seq, " \
			    sc[i], ratio(med("ermd", sc[i], \
			    "server_cpu_us_per_req"), med("redis-seq", sc[i], \
			    "server_cpu_us_per_req"))
			# Where both servers are the bottleneck (a CPU each,
			# busy all the time), 1.5x needs the CPU of an ermd
			# pair at that of a Redis call / 1.5; the kernel part
			# of the pair alone (two round trips) is its floor.
			need = med("redis-seq", sc[i], \
			    "server_cpu_us_per_req") / 1.5
			sys = med("ermd", sc[i], "server_sys_us_per_req")
			if (need > 0 && sys > 0 && \
			    med("ermd", sc[i], "server_cpu_pct") >= 90 && \
			    med("redis-seq", sc[i], "server_cpu_pct") >= 90)
				printf "%-46s %7s   %s\n", \
				    "ermd kernel us/pair / 1.5x budget, " \
				    sc[i], ratio(sys, need), \
				    sprintf("(%.2f of %.2f)", sys, need)
		}
	# Against all three commands in one round trip: no breaker can.
	if (has["ermd"] && has["redis-pipe"])
		for (i = 1; i <= ns; i++) {
			r = ratio(med("ermd", sc[i], "rps"), \
			    med("redis-pipe", sc[i], "rps"))
			printf "%-46s %7s   %s\n", "throughput ermd/redis-pipe, " \
			    sc[i], r, "none (best case for Redis)"
			printf "%-46s %7s\n", "cpu per pair ermd/redis-pipe, " \
			    sc[i], ratio(med("ermd", sc[i], \
			    "server_cpu_us_per_req"), med("redis-pipe", sc[i], \
			    "server_cpu_us_per_req"))
		}
	# The largest breaker count against the smallest, per client count.
	lo = br[1]; hi = br[1]
	for (i = 2; i <= nb; i++) {
		if (br[i] + 0 < lo + 0) lo = br[i]
		if (br[i] + 0 > hi + 0) hi = br[i]
	}
	if (lo != hi)
		for (i = 1; i <= nc; i++)
			for (j = 1; j <= nv; j++) {
				r = ratio(med(sv[j], cl[i] "/" hi, "rps"), \
				    med(sv[j], cl[i] "/" lo, "rps"))
				if (sv[j] == "ermd")
					printf "%-46s %7s   %s\n", \
					    "throughput ermd " hi "/" lo ", " \
					    cl[i] " clients", r, ">= 0.83  " \
					    verdict(r, ">=", 0.83) \
					    " (within 1.2x)"
				else
					printf "%-46s %7s\n", "throughput " \
					    sv[j] " " hi "/" lo ", " cl[i] \
					    " clients", r
			}
}' "$results"
