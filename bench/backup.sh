#!/usr/bin/env bash
# Backups: ermd's backup.create of one large file (1 GiB) and of many small
# ones (10,000 x 4 KiB), beside, in the same run and on the same bytes:
#   - hash_only: libcrypto's SHA-256 alone over the file read from the page
#     cache, the floor under any verified copy;
#   - cp + sha256sum: the two passes a script would make.
# ermd's time runs from the request to the reply, which comes only once the
# copy is fsynced, renamed into the store, the directory fsynced and the
# record committed. Every source is in the page cache; every backup stores
# new content (the file's first bytes change between runs), so nothing is
# deduplicated. Runs are interleaved, REPS of each; the median is reported.
#
#   bash bench/backup.sh -b build      (LARGE_MB, SMALL_N, REPS to change)
set -eu

# shellcheck source=bench/args.sh
. "$(dirname "$0")/args.sh"
REPS=${REPS:-3}
LARGE_MB=${LARGE_MB:-1024}
SMALL_N=${SMALL_N:-10000}
SMALL_KB=4
RAW=${RAW:-$B/bench/backup.raw}

# On the disk (not a tmpfs) so that the fsyncs are real.
W=$(mktemp -d "${BENCH_DIR:-/var/tmp}/ermd-bench-backup.XXXXXX")
PID=
cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT

mkdir -p "$W/root/small" "$W/state" "$W/cp"
cat > "$W/ermd.conf" <<EOF
[root.bench]
path = $W/root
[backup]
prune_interval_ms = 0
max_pending = 1000000
EOF
"$B/ermd" -f -c "$W/ermd.conf" -S "$W/sock" -D "$W/state" 2>"$W/log" &
PID=$!
for _ in $(seq 100); do
	"$B/ermctl" --socket "$W/sock" ping >/dev/null 2>&1 && break
	sleep 0.05
done
ctl() { "$B/ermctl" --socket "$W/sock" "$@"; }
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
now() { date +%s.%N; }

echo "backup bench: $LARGE_MB MiB file, $SMALL_N x $SMALL_KB KiB files," \
    "$REPS runs each, $(nproc) CPUs, state on $(df -T "$W" | awk 'NR==2 {print $2}')"
head -c "${LARGE_MB}M" /dev/urandom > "$W/root/large"
: > "$RAW"

for rep in $(seq "$REPS"); do
	# New content for this run: only the first bytes change.
	printf 'run %08d' "$rep" | dd of="$W/root/large" bs=1 conv=notrunc \
	    status=none
	cat "$W/root/large" > /dev/null		# in the page cache
	sync

	h=$("$B/bench/hash_only" "$W/root/large")
	echo "large hash_only $h" >> "$RAW"

	e=$("$B/bench/backup_load" -s "$W/sock" "$W/root/large")
	echo "large ermd $e" >> "$RAW"
	[ "$(echo "$e" | field errors)" = 0 ] || { cat "$W/log" >&2; exit 1; }

	sync
	t0=$(now)
	cp "$W/root/large" "$W/cp/large"
	sha256sum "$W/cp/large" > /dev/null
	t1=$(now)
	echo "large cp_sha256sum seconds=$(echo "$t1 - $t0" | bc -l)" >> "$RAW"
	rm -f "$W/cp/large"
	ctl backup prune --older-than 0 > /dev/null
	sync

	# Small files: fresh random content each run.
	rm -f "$W/root/small/"*
	head -c $((SMALL_N * SMALL_KB * 1024)) /dev/urandom |
	    split -b $((SMALL_KB * 1024)) -a 5 - "$W/root/small/f"
	sync
	h=$(find "$W/root/small" -type f | sort | "$B/bench/hash_only" -)
	echo "small hash_only $h" >> "$RAW"
	e=$(find "$W/root/small" -type f | sort |
	    "$B/bench/backup_load" -s "$W/sock" -w 64 -)
	echo "small ermd $e" >> "$RAW"
	[ "$(echo "$e" | field errors)" = 0 ] || { cat "$W/log" >&2; exit 1; }
	sync
	t0=$(now)
	cp -r "$W/root/small" "$W/cp/small"
	find "$W/cp/small" -type f -print0 | xargs -0 sha256sum > /dev/null
	t1=$(now)
	echo "small cp_sha256sum seconds=$(echo "$t1 - $t0" | bc -l)" >> "$RAW"
	rm -rf "$W/cp/small"
	ctl backup prune --older-than 0 > /dev/null
	sync
done

secs() { grep "^$1 $2 " "$RAW" | field seconds | median; }
lh=$(secs large hash_only); le=$(secs large ermd); lc=$(secs large cp_sha256sum)
sh=$(secs small hash_only); se=$(secs small ermd); sc=$(secs small cp_sha256sum)
gb=$(echo "$LARGE_MB * 1048576 / 1000000000" | bc -l)

printf '\n%-34s %10s %12s\n' "large file ($LARGE_MB MiB)" "seconds" "GB/s"
printf '%-34s %10.3f %12.3f\n' "sha256 alone (libcrypto)" "$lh" \
    "$(echo "$gb / $lh" | bc -l)"
printf '%-34s %10.3f %12.3f\n' "ermd backup.create (durable)" "$le" \
    "$(echo "$gb / $le" | bc -l)"
printf '%-34s %10.3f %12.3f\n' "cp + sha256sum (no fsync)" "$lc" \
    "$(echo "$gb / $lc" | bc -l)"
printf '\n%-34s %10s %12s\n' "small files ($SMALL_N x $SMALL_KB KiB)" \
    "seconds" "files/s"
printf '%-34s %10.3f %12.0f\n' "sha256 alone (libcrypto)" "$sh" \
    "$(echo "$SMALL_N / $sh" | bc -l)"
printf '%-34s %10.3f %12.0f\n' "ermd backup.create (durable)" "$se" \
    "$(echo "$SMALL_N / $se" | bc -l)"
printf '%-34s %10.3f %12.0f\n' "cp -r + sha256sum (no fsync)" "$sc" \
    "$(echo "$SMALL_N / $sc" | bc -l)"

r1=$(echo "$lh / $le" | bc -l)
r2=$(echo "$lc / $le" | bc -l)
r3=$(echo "$SMALL_N / $se" | bc -l)
verdict() { [ "$(echo "$1 >= $2" | bc -l)" = 1 ] && echo met || echo MISSED; }
printf '\n%-44s %8s %8s  %s\n' "ratio" "value" "target" ""
printf '%-44s %8.2f %8s  %s\n' "large: ermd / sha256 alone (throughput)" \
    "$r1" ">= 0.85" "$(verdict "$r1" 0.85)"
printf '%-44s %8.2f %8s  %s\n' "large: ermd / cp + sha256sum" "$r2" \
    ">= 2.5" "$(verdict "$r2" 2.5)"
printf '%-44s %8.0f %8s  %s\n' "small: ermd backups per second" "$r3" \
    ">= 1000" "$(verdict "$r3" 1000)"
echo "(raw numbers: $RAW)"
