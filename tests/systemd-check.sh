#!/bin/sh
# Check the systemd units: `systemd-analyze verify` must be silent and the
# service's sandbox must keep `systemd-analyze security` at or below 1.5.
#
# usage: sh tests/systemd-check.sh BINARY
#
# verify insists that ExecStart's program exists, so both units are copied to
# a temporary directory with ExecStart pointing at BINARY (normally
# build/ermd) and checked there; everything else, ExecReload included, is
# checked as installed.

set -eu

THRESHOLD=15	# exposure 1.5, in the tenths --threshold= takes
MIN_SYSTEMD=250	# first with `security --offline=` and `--threshold=`

usage() {
	echo "usage: sh tests/systemd-check.sh BINARY" >&2
	exit 2
}

[ $# -eq 1 ] || usage
here=$(cd "$(dirname "$0")/.." && pwd)
units="$here/systemd"

if [ ! -f "$1" ] || [ ! -x "$1" ]; then
	echo "systemd-check: $1: no such executable (run make first)" >&2
	exit 1
fi
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
case $bin in
*[!A-Za-z0-9._/+-]*)
	# ExecStart= would need quoting and sed escaping; not worth it.
	echo "systemd-check: $bin: path must be made of [A-Za-z0-9._/+-]" >&2
	exit 1
	;;
esac

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "systemd-check: systemd-analyze not found;" \
	    "install the 'systemd' package (apt-get install systemd)" >&2
	exit 1
fi
ver=$(systemd-analyze --version | sed -n '1s/^systemd \([0-9][0-9]*\).*/\1/p')
if [ -z "$ver" ] || [ "$ver" -lt "$MIN_SYSTEMD" ]; then
	echo "systemd-check: systemd-analyze ${ver:-of unknown version} is" \
	    "too old; systemd >= $MIN_SYSTEMD is needed" \
	    "(Debian 12 or later)" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ermd-systemd.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

sed "s|^ExecStart=/usr/sbin/ermd |ExecStart=$bin |" \
    "$units/ermd.service" >"$tmp/ermd.service"
if ! grep -q "^ExecStart=$bin " "$tmp/ermd.service"; then
	echo "systemd-check: ermd.service: no 'ExecStart=/usr/sbin/ermd ...'" \
	    "line to rewrite" >&2
	exit 1
fi
cp "$units/ermd.socket" "$tmp/ermd.socket"

# --man=no: the man pages named in Documentation= are installed with the
# package, not present in a build tree.
if ! (cd "$tmp" && systemd-analyze verify --man=no \
    ermd.socket ermd.service) >"$tmp/verify.out" 2>&1 ||
    [ -s "$tmp/verify.out" ]; then
	echo "systemd-check: systemd-analyze verify failed:" >&2
	cat "$tmp/verify.out" >&2
	exit 1
fi
echo "systemd-check: verify: ermd.service ermd.socket ok"

if ! systemd-analyze security --offline=yes --threshold="$THRESHOLD" \
    "$tmp/ermd.service" >"$tmp/security.out" 2>&1; then
	cat "$tmp/security.out" >&2
	echo "systemd-check: overall exposure above 1.5 (see above)" >&2
	exit 1
fi
line=$(sed -n 's/.*\(Overall exposure level\)/\1/p' "$tmp/security.out")
if [ -z "$line" ]; then
	cat "$tmp/security.out" >&2
	echo "systemd-check: no overall exposure line in the output" >&2
	exit 1
fi
echo "systemd-check: security: $line"
