#!/bin/sh
# Check `make install` and `make uninstall` without touching the system:
# stage an install into a temporary DESTDIR, check that every file is
# where it belongs and that none names the DESTDIR, build a small program
# against the staged liberm.pc and run it against a private ermd started
# from the staged tree, check the staged bash completion, then uninstall
# and check that nothing of ours is left. A second install with another
# prefix checks that the unit's ExecStart and the .pc follow the prefix.
#
# usage: sh tests/install-check.sh   (from `make install-check`; B and
# MAKE may be set)

set -u

here=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-build}
MAKE=${MAKE:-make}
tmp=$(mktemp -d /tmp/ermd-install-check.XXXXXX) || exit 1
chmod 755 "$tmp"
stage=$tmp/stage
pid=
pass=0
fail=0

cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ok() {
	pass=$((pass + 1))
	echo "ok   $*"
}
bad() {
	fail=$((fail + 1))
	echo "FAIL $*"
}
# check WHAT COMMAND...: ok when COMMAND succeeds.
check() {
	what=$1
	shift
	if "$@"; then ok "$what"; else bad "$what"; fi
}

mk() {
	"$MAKE" -C "$here" --no-print-directory B="$B" "$@"
}

# ---- install, prefix /usr ------------------------------------------------

if mk install DESTDIR="$stage" prefix=/usr >"$tmp/install.log" 2>&1; then
	ok "make install DESTDIR=... prefix=/usr"
else
	bad "make install DESTDIR=... prefix=/usr"
	cat "$tmp/install.log"
	echo "install-check: $pass passed, $fail failed"
	exit 1
fi

unitdir=$(dirname "$(find "$stage" -name ermd.service | head -1)")
compdir=$(dirname "$(find "$stage" -path '*/completions/ermctl' | head -1)")
for f in usr/sbin/ermd usr/bin/ermctl usr/lib/liberm.so.1.0.0 \
    usr/lib/liberm.a usr/lib/pkgconfig/liberm.pc usr/include/erm/erm.h \
    usr/lib/sysusers.d/ermd.conf etc/ermd/ermd.conf usr/share/ermd/ermd.conf \
    usr/share/man/man1/ermctl.1 usr/share/man/man3/liberm.3 \
    usr/share/man/man5/ermd.conf.5 usr/share/man/man8/ermd.8; do
	check "installed /$f" test -f "$stage/$f"
done
check "units in ${unitdir#$stage}" test -f "$unitdir/ermd.service" -a \
    -f "$unitdir/ermd.socket"
check "bash completion in ${compdir#$stage}" test -s "$compdir/ermctl"
check "liberm.so.1 -> liberm.so.1.0.0" \
    test "$(readlink "$stage/usr/lib/liberm.so.1")" = liberm.so.1.0.0
check "liberm.so -> liberm.so.1" \
    test "$(readlink "$stage/usr/lib/liberm.so")" = liberm.so.1
check "SONAME liberm.so.1" sh -c "readelf -d '$stage/usr/lib/liberm.so.1.0.0' |
    grep -q 'SONAME.*\[liberm.so.1\]'"
check "ermd and ermctl are executable" test -x "$stage/usr/sbin/ermd" -a \
    -x "$stage/usr/bin/ermctl"

# No staged file may name the staging directory (a .pc, a unit, a pip
# RECORD or a compiled .pyc that did would be wrong once installed).
if grep -rl -- "$tmp" "$stage" >"$tmp/leaks" 2>/dev/null; then
	bad "staged files name DESTDIR:"
	sed 's/^/	/' "$tmp/leaks"
else
	ok "no staged file contains the DESTDIR path"
fi
check "ExecStart=/usr/sbin/ermd" grep -q '^ExecStart=/usr/sbin/ermd ' \
    "$unitdir/ermd.service"
check "liberm.pc: libdir=/usr/lib" grep -qx 'libdir=/usr/lib' \
    "$stage/usr/lib/pkgconfig/liberm.pc"

# A second install keeps a config that is already there.
echo "# local change" >>"$stage/etc/ermd/ermd.conf"
mk install DESTDIR="$stage" prefix=/usr >"$tmp/install2.log" 2>&1
check "a second install keeps an existing /etc/ermd/ermd.conf" \
    grep -q '^# local change$' "$stage/etc/ermd/ermd.conf"
# Put the shipped one back so that uninstall may remove it.
cp "$stage/usr/share/ermd/ermd.conf" "$stage/etc/ermd/ermd.conf"

if grep -q 'Python client skipped' "$tmp/install.log"; then
	echo "skip Python client: $(grep 'Python client skipped' \
	    "$tmp/install.log" | sed 's/^install: //')"
else
	check "Python client staged (manifest)" \
	    test -s "$stage/usr/share/ermd/python.files"
fi

# ---- a program built against the staged liberm.pc -------------------------

cat >"$tmp/hello.c" <<'EOF'
#include <stdio.h>
#include <string.h>

#include <erm.h>

int
main(int argc, char **argv)
{
	struct erm_client	*c;
	json_t			*res = NULL, *params;
	enum erm_status		 st;

	if (argc != 2)
		return (2);
	if ((st = erm_connect(&c, argv[1])) != ERM_OK) {
		fprintf(stderr, "connect: %s\n", erm_strerror(st));
		return (1);
	}
	erm_set_timeout(c, 5000);
	params = json_pack("{s:s}", "client", "install-check");
	st = erm_call(c, "hello", params, &res);
	json_decref(params);
	if (st != ERM_OK) {
		fprintf(stderr, "hello: %s\n", erm_strerror(st));
		erm_close(c);
		return (1);
	}
	printf("protocol %lld\n", (long long)json_integer_value(
	    json_object_get(res, "protocol")));
	json_decref(res);
	erm_close(c);
	return (0);
}
EOF
pcflags=$(PKG_CONFIG_SYSROOT_DIR="$stage" \
    PKG_CONFIG_PATH="$stage/usr/lib/pkgconfig" \
    pkg-config --cflags --libs liberm 2>"$tmp/pc.err")
check "pkg-config --cflags --libs liberm (staged)" test -n "$pcflags"
echo "     $pcflags"
case $pcflags in
*"-I$stage/usr/include/erm"*"-L$stage/usr/lib"*|\
*"-L$stage/usr/lib"*"-I$stage/usr/include/erm"*)
	ok "flags point into the staged tree" ;;
*)
	bad "flags point into the staged tree" ;;
esac
# shellcheck disable=SC2086 # the flags are words
if ${CC:-cc} -Wall -Werror -o "$tmp/hello" "$tmp/hello.c" $pcflags \
    2>"$tmp/cc.err"; then
	ok "a program builds against the staged liberm"
else
	bad "a program builds against the staged liberm"
	cat "$tmp/cc.err"
fi

mkdir -p "$tmp/state"
"$stage/usr/sbin/ermd" -f -c "$stage/etc/ermd/ermd.conf" \
    -S "$tmp/ermd.sock" -D "$tmp/state" 2>"$tmp/ermd.log" &
pid=$!
i=0
while [ ! -S "$tmp/ermd.sock" ] && [ $i -lt 100 ]; do
	sleep 0.05
	i=$((i + 1))
done
check "the staged ermd starts with the staged config" test -S "$tmp/ermd.sock"
if [ -x "$tmp/hello" ] &&
    LD_LIBRARY_PATH="$stage/usr/lib" ldd "$tmp/hello" |
    grep -q "liberm.so.1 => $stage/usr/lib/liberm.so.1"; then
	ok "the program loads the staged liberm.so.1"
else
	bad "the program loads the staged liberm.so.1"
fi
out=$(LD_LIBRARY_PATH="$stage/usr/lib" "$tmp/hello" "$tmp/ermd.sock" 2>&1)
check "it calls hello on a private ermd ($out)" \
    test "$out" = "protocol 1"
check "the staged ermctl pings it" "$stage/usr/bin/ermctl" \
    --socket "$tmp/ermd.sock" ping >/dev/null
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
pid=
if [ "$fail" -ne 0 ]; then
	echo "--- ermd log"
	tail -20 "$tmp/ermd.log"
fi

# ---- bash completion -------------------------------------------------------

if command -v bash >/dev/null 2>&1; then
	# comp WORDS...: what _ermctl offers for the last word.
	cat >"$tmp/comp.sh" <<'EOF'
. "$1"
shift
complete -p ermctl >/dev/null || exit 1
COMP_WORDS=("$@")
COMP_CWORD=$(($# - 1))
COMPREPLY=()
_ermctl
echo "${COMPREPLY[*]}"
EOF
	check "the completion script defines complete -p ermctl" \
	    bash -c ". '$compdir/ermctl' && complete -p ermctl |
	    grep -q -- '-F _ermctl ermctl\$'"
	check "ermctl completion bash matches the installed script" \
	    sh -c "'$stage/usr/bin/ermctl' completion bash |
	    cmp -s - '$compdir/ermctl'"
	c=$(bash "$tmp/comp.sh" "$compdir/ermctl" ermctl bre)
	check "completes a command (bre -> $c)" test "$c" = breaker
	c=$(bash "$tmp/comp.sh" "$compdir/ermctl" ermctl --json backup '')
	check "completes subcommands (backup -> $c)" \
	    test "$c" = "create list show restore verify prune"
	c=$(bash "$tmp/comp.sh" "$compdir/ermctl" ermctl backup list --p)
	check "completes a command's options (backup list --p -> $c)" \
	    test "$c" = "--path"
	c=$(bash "$tmp/comp.sh" "$compdir/ermctl" ermctl --socket /x sta)
	check "skips a common option's argument (-> $c)" \
	    test "$c" = "status stats"
else
	echo "skip bash completion: no bash"
fi

# ---- uninstall ------------------------------------------------------------

if mk uninstall DESTDIR="$stage" prefix=/usr >"$tmp/uninstall.log" 2>&1; then
	ok "make uninstall DESTDIR=... prefix=/usr"
else
	bad "make uninstall DESTDIR=... prefix=/usr"
	cat "$tmp/uninstall.log"
fi
find "$stage" ! -type d >"$tmp/left"
if [ -s "$tmp/left" ]; then
	bad "files left after uninstall:"
	sed 's/^/	/' "$tmp/left"
else
	ok "nothing of ours left after uninstall"
fi

# ---- another prefix ---------------------------------------------------------

s2=$tmp/stage2
if mk install DESTDIR="$s2" prefix=/opt/erm PYDIR=/nonexistent \
    >"$tmp/install3.log" 2>&1; then
	ok "make install prefix=/opt/erm"
	u=$(find "$s2" -name ermd.service | head -1)
	check "ExecStart follows sbindir (/opt/erm/sbin/ermd)" \
	    grep -q '^ExecStart=/opt/erm/sbin/ermd ' "$u"
	check "liberm.pc follows libdir (/opt/erm/lib)" \
	    grep -qx 'libdir=/opt/erm/lib' "$s2/opt/erm/lib/pkgconfig/liberm.pc"
	mk uninstall DESTDIR="$s2" prefix=/opt/erm >/dev/null 2>&1
	check "nothing left after uninstall prefix=/opt/erm" \
	    test -z "$(find "$s2" ! -type d)"
else
	bad "make install prefix=/opt/erm"
	cat "$tmp/install3.log"
fi

echo "install-check: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
