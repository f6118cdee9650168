# ermd — build, run, test. Everything lands in build/; nothing needs root
# except `make deps` (which installs Debian packages).

VERSION	 = 0.1.0
B	?= build
CC	?= cc

PKGS	 = libevent jansson sqlite3 inih libsystemd libcrypto libcurl
DEB_PKGS = build-essential libevent-dev libjansson-dev libsqlite3-dev \
	   libcurl4-openssl-dev libssl-dev libinih-dev libsystemd-dev check \
	   pkg-config
# Only what the test suites use on top of the build dependencies.
DEB_TEST_PKGS = systemd redis-server clang libclang-rt-14-dev \
	   postgresql python3-psycopg2 curl nginx openssl mandoc

WARN	 = -Wall -Wextra -Werror
OPT	?= -O2 -g
SAN	?=
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE $(WARN) $(OPT) $(SAN) \
	   -DERMD_VERSION='"$(VERSION)"' -Iproto -Idaemon -Iclient \
	   $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(CFLAGS)
LDLIBS_D = $(shell pkg-config --libs libevent jansson sqlite3 inih libsystemd libcrypto libcurl 2>/dev/null) -lpthread -lm
LDLIBS_C = $(shell pkg-config --libs jansson 2>/dev/null)
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null)

PROTO_SRC  = $(wildcard proto/*.c)
DAEMON_SRC = $(filter-out daemon/ermd.c,$(wildcard daemon/*.c))
CLIENT_SRC = $(filter-out client/ermctl%.c,$(wildcard client/*.c))
CTL_SRC	   = $(wildcard client/ermctl*.c)
UNIT_SRC   = $(wildcard tests/unit/test_*.c)
REGRESS_SRC = $(wildcard tests/regress/test_*.c)

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))
pic = $(patsubst %.c,$(B)/pic/%.o,$(1))

UNIT_BIN    = $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))
REGRESS_BIN = $(patsubst tests/regress/%.c,$(B)/tests/%,$(REGRESS_SRC))
EXAMPLES    = $(patsubst docs/examples/%.c,$(B)/examples/%,$(wildcard docs/examples/*.c))

all: $(B)/ermd $(B)/ermctl $(B)/liberm.so.1 $(B)/liberm.a $(B)/liberm.pc \
    $(EXAMPLES)

.PHONY: all deps run check check-all unit regress fuzz asan tsan bench clean \
	systemd-check supabase-selftest promtool install uninstall man-lint \
	install-check python-test

deps:
	@sh .ci/deps.sh $(DEB_PKGS)

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(B)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -fPIC -fvisibility=hidden -MMD -MP -c $< -o $@

$(B)/libermd.a: $(call obj,$(PROTO_SRC) $(DAEMON_SRC))
	@rm -f $@
	ar rcs $@ $^

$(B)/ermd: $(call obj,daemon/ermd.c) $(B)/libermd.a
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_D)

# liberm exports only erm_* (everything is built hidden; erm.h marks the API
# visible through the version script).
$(B)/liberm.so.1: $(call pic,$(PROTO_SRC) $(CLIENT_SRC)) client/liberm.map
	$(CC) $(CFLAGS_ALL) -shared -Wl,-soname,liberm.so.1 \
	    -Wl,--version-script=client/liberm.map -o $@ \
	    $(call pic,$(PROTO_SRC) $(CLIENT_SRC)) $(LDLIBS_C)
	ln -sf liberm.so.1 $(B)/liberm.so

$(B)/liberm.a: $(call obj,$(PROTO_SRC) $(CLIENT_SRC))
	@rm -f $@
	ar rcs $@ $^

PC_SED = -e 's|@PREFIX@|$(prefix)|' -e 's|@VERSION@|$(VERSION)|' \
	 -e 's|@LIBDIR@|$(libdir)|' -e 's|@INCLUDEDIR@|$(includedir)|'
$(B)/liberm.pc: client/liberm.pc.in Makefile
	@mkdir -p $(B)
	sed $(PC_SED) client/liberm.pc.in > $@

$(B)/ermctl: $(call obj,$(CTL_SRC)) $(B)/liberm.a
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_C)

# docs/examples/*.c, linked with liberm.a as a user's program would be.
$(B)/examples/%: docs/examples/%.c $(B)/liberm.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -o $@ $< $(B)/liberm.a $(LDLIBS_C)

# Install directories, by their GNU names (make install prefix=/usr
# DESTDIR=/tmp/stage); PREFIX, LIBDIR and INCLUDEDIR are older spellings that
# still work. ermd reads /etc/ermd/ermd.conf (compiled in) whatever these say:
# with another sysconfdir, start it with -c (docs/operations.md).
PREFIX	    ?= /usr/local
prefix	    ?= $(PREFIX)
exec_prefix ?= $(prefix)
bindir	    ?= $(exec_prefix)/bin
sbindir	    ?= $(exec_prefix)/sbin
LIBDIR	    ?= $(exec_prefix)/lib
libdir	    ?= $(LIBDIR)
INCLUDEDIR  ?= $(prefix)/include
includedir  ?= $(INCLUDEDIR)
sysconfdir  ?= /etc
datarootdir ?= $(prefix)/share
mandir	    ?= $(datarootdir)/man
pkgconfigdir ?= $(libdir)/pkgconfig
systemdsystemunitdir ?= $(or $(shell pkg-config \
	--variable=systemdsystemunitdir systemd 2>/dev/null), \
	$(prefix)/lib/systemd/system)
bashcompdir ?= $(or $(shell pkg-config --variable=completionsdir \
	bash-completion 2>/dev/null),$(datarootdir)/bash-completion/completions)
sysusersdir ?= $(prefix)/lib/sysusers.d

# ---- run -----------------------------------------------------------------

run:
	@sh .ci/deps.sh $(DEB_PKGS)
	@$(MAKE) --no-print-directory all
	@mkdir -p run/state
	@echo "ermd: socket ./run/ermd.sock, state ./run/state (Ctrl-C stops)"
	$(B)/ermd -f -c conf/ermd.conf -S run/ermd.sock -D run/state

# ---- tests ---------------------------------------------------------------

$(B)/tests/test_%: tests/unit/test_%.c $(B)/libermd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itests -MMD -MP -o $@ $< $(B)/libermd.a $(LDLIBS_D) $(CHECK_LIBS)

$(B)/tests/test_%: tests/regress/test_%.c tests/regress/harness.c \
    tests/regress/harness.h $(B)/liberm.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itests/regress -MMD -MP -o $@ $< tests/regress/harness.c \
	    $(B)/liberm.a $(LDLIBS_C) -lsqlite3 $(CHECK_LIBS)

unit: $(UNIT_BIN)
	@for t in $(UNIT_BIN); do echo "== $$t"; $$t || exit 1; done

regress: all $(REGRESS_BIN) $(B)/tests/failsync.so
	@for t in $(REGRESS_BIN); do echo "== $$t"; \
	    ERMD=$(B)/ermd ERMCTL=$(B)/ermctl PROMTOOL=$(PROMTOOL) \
	    FAILSYNC_SO=$(B)/tests/failsync.so $$t || exit 1; done

# fsync and fdatasync failing on demand, preloaded into the daemon by
# test_store_fatal; plain, without the sanitizers of `make asan`.
$(B)/tests/failsync.so: tests/regress/failsync.c
	@mkdir -p $(dir $@)
	$(CC) -shared -fPIC -O2 -Wall -Wextra -o $@ $<

# The Python client (client/python) against a private ermd; Debian's
# python3 (>= 3.9), standard library only.
python-test: $(B)/ermd
	ERMD=$(B)/ermd /usr/bin/python3 -m unittest discover -s client/python/tests

# Like `make run`, `make check` first installs what is missing (as root) so
# that it is the one command a fresh machine needs; the sub-make then sees
# the installed pkg-config files.
check:
	@sh .ci/deps.sh $(DEB_PKGS) $(DEB_TEST_PKGS)
	@$(MAKE) --no-print-directory check-all

check-all: all promtool unit regress python-test systemd-check \
    supabase-selftest fuzz man-lint install-check
	@echo "make check: all suites passed"

# promtool, for `promtool check metrics` in test_errors_metrics: taken
# from Debian's prometheus package without installing it (no server);
# unpacked outside $(B), whose *.d files are make dependencies.
PROMTOOL = $(B)/tools/promtool
promtool: $(PROMTOOL)
$(PROMTOOL):
	@mkdir -p $(B)/tools
	t=$$(mktemp -d) && chmod 755 $$t && cd $$t && \
	    apt-get download prometheus >/dev/null 2>&1 && \
	    dpkg-deb -x prometheus_*.deb x && \
	    cp x/usr/bin/promtool $(CURDIR)/$@ && cd / && rm -rf $$t
	@test -x $@

# The PostgREST-conformant endpoint the forwarder is tested against, checked
# against its conformance points on a throwaway PostgreSQL.
supabase-selftest:
	@/usr/bin/python3 tests/supabase/selftest.py

systemd-check: $(B)/ermd
	@sh tests/systemd-check.sh $(B)/ermd

# The libFuzzer target needs clang; without it the fuzz step says so and
# passes (the unit and regress suites still cover the decoder).
FUZZ_SECONDS ?= 30
fuzz:
	@if command -v clang >/dev/null 2>&1; then \
	    mkdir -p $(B)/fuzz && \
	    clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
	        -Iproto $(shell pkg-config --cflags jansson) \
	        -o $(B)/fuzz/fuzz_frame tests/fuzz/fuzz_frame.c $(PROTO_SRC) \
	        $(LDLIBS_C) && \
	    mkdir -p $(B)/fuzz/corpus && \
	    cp tests/fuzz/corpus/* $(B)/fuzz/corpus/ && \
	    $(B)/fuzz/fuzz_frame -max_total_time=$(FUZZ_SECONDS) \
	        -max_len=4096 -artifact_prefix=$(B)/fuzz/ $(B)/fuzz/corpus \
	        2>$(B)/fuzz/log || { tail -40 $(B)/fuzz/log; exit 1; }; \
	    grep -aE '^(Done|#[0-9]+ +DONE)' $(B)/fuzz/log | tail -1; \
	else echo "fuzz: clang not found, skipped"; fi

# ---- install -------------------------------------------------------------
# make install [DESTDIR=...] [prefix=...]: ermd to sbindir, ermctl to
# bindir, liberm (real name, soname and dev links, .a, .pc), erm.h under
# include/erm/, the units with ExecStart pointing at sbindir, the sysusers
# entry, the man pages, the bash completion, and conf/ermd.conf to
# sysconfdir/ermd/ unless one is there (the shipped copy also goes to
# datarootdir/ermd/, which uninstall compares against). The Python client
# is installed with pip when client/python, pip and setuptools are there.
# Nothing installed names DESTDIR (tests/install-check.sh checks).
LIBERM_REAL = liberm.so.1.0.0
MAN_PAGES   = man/ermctl.1 man/liberm.3 man/ermd.conf.5 man/ermd.8
# The system's Python: an install is for the system, not a pyenv or venv.
PYTHON	   ?= $(or $(wildcard /usr/bin/python3),python3)
# pip builds the wheel with setuptools, which before 70.1 needs wheel.
PY_CAN_PIP  = import setuptools, pip; \
	      int(setuptools.__version__.split(".")[0]) > 70 or __import__("wheel")
PYDIR	   ?= client/python
INST	    = $(B)/install
D	    = $(DESTDIR)

install: all
	@rm -rf $(INST) && mkdir -p $(INST)
	sed $(PC_SED) client/liberm.pc.in > $(INST)/liberm.pc
	sed 's|^ExecStart=/usr/sbin/ermd|ExecStart=$(sbindir)/ermd|' \
	    systemd/ermd.service > $(INST)/ermd.service
	$(B)/ermctl completion bash > $(INST)/ermctl.bash
	install -d $(D)$(sbindir) $(D)$(bindir) $(D)$(libdir) \
	    $(D)$(pkgconfigdir) $(D)$(includedir)/erm \
	    $(D)$(systemdsystemunitdir) $(D)$(sysusersdir) \
	    $(D)$(sysconfdir)/ermd $(D)$(datarootdir)/ermd $(D)$(bashcompdir) \
	    $(D)$(mandir)/man1 $(D)$(mandir)/man3 $(D)$(mandir)/man5 \
	    $(D)$(mandir)/man8
	install -m 0755 $(B)/ermd $(D)$(sbindir)/ermd
	install -m 0755 $(B)/ermctl $(D)$(bindir)/ermctl
	install -m 0755 $(B)/liberm.so.1 $(D)$(libdir)/$(LIBERM_REAL)
	ln -sf $(LIBERM_REAL) $(D)$(libdir)/liberm.so.1
	ln -sf liberm.so.1 $(D)$(libdir)/liberm.so
	install -m 0644 $(B)/liberm.a $(D)$(libdir)/liberm.a
	@# A real install into /usr/local/lib needs the loader's cache renewed.
	@if [ -z "$(D)" ] && [ "$$(id -u)" -eq 0 ] && \
	    command -v ldconfig >/dev/null; then ldconfig; fi
	install -m 0644 $(INST)/liberm.pc $(D)$(pkgconfigdir)/liberm.pc
	install -m 0644 client/erm.h $(D)$(includedir)/erm/erm.h
	install -m 0644 $(INST)/ermd.service systemd/ermd.socket \
	    $(D)$(systemdsystemunitdir)/
	install -m 0644 systemd/ermd.sysusers $(D)$(sysusersdir)/ermd.conf
	install -m 0644 conf/ermd.conf $(D)$(datarootdir)/ermd/ermd.conf
	@if [ -e $(D)$(sysconfdir)/ermd/ermd.conf ]; then \
	    echo "install: kept $(D)$(sysconfdir)/ermd/ermd.conf (the" \
	        "shipped one is $(datarootdir)/ermd/ermd.conf)"; \
	else echo "install -m 0644 conf/ermd.conf" \
	        "$(D)$(sysconfdir)/ermd/ermd.conf"; \
	    install -m 0644 conf/ermd.conf $(D)$(sysconfdir)/ermd/ermd.conf; fi
	for m in $(MAN_PAGES); do \
	    s=$${m##*.}; install -m 0644 $$m $(D)$(mandir)/man$$s/ || exit 1; \
	done
	install -m 0644 $(INST)/ermctl.bash $(D)$(bashcompdir)/ermctl
	@if [ ! -d $(PYDIR) ]; then \
	    echo "install: Python client skipped ($(PYDIR) not found)"; \
	elif ! $(PYTHON) -c '$(PY_CAN_PIP)' 2>/dev/null; then \
	    echo "install: Python client skipped (no pip, setuptools or" \
	        "wheel for $(PYTHON))"; \
	else set -x && $(PYTHON) -m pip install -q --no-deps --no-compile \
	        --no-build-isolation --no-warn-script-location \
	        --disable-pip-version-check --root-user-action=ignore \
	        --report $(INST)/pip.json \
	        $(if $(D),--root $(D)) --prefix $(prefix) $(PYDIR) && \
	    $(PYTHON) .ci/pyrecord.py $(INST)/pip.json '$(D)' $(prefix) \
	        > $(D)$(datarootdir)/ermd/python.files; fi

# Removes what install put in place. sysconfdir/ermd/ermd.conf goes only
# when it is still the shipped one; a changed config is kept.
uninstall:
	@if [ -f $(D)$(datarootdir)/ermd/python.files ]; then \
	    echo "uninstall: the Python client"; \
	    sort -r $(D)$(datarootdir)/ermd/python.files | while read -r f; do \
	        if [ -d "$(D)$$f" ]; then rmdir "$(D)$$f" 2>/dev/null; \
	        else rm -f "$(D)$$f"; rmdir "$$(dirname "$(D)$$f")" \
	            2>/dev/null; fi; \
	    done; rm -f $(D)$(datarootdir)/ermd/python.files; fi; true
	@c=$(D)$(sysconfdir)/ermd/ermd.conf; \
	if [ -e $$c ] && ! cmp -s $$c $(D)$(datarootdir)/ermd/ermd.conf; then \
	    echo "uninstall: kept $$c (changed since install)"; \
	else rm -f $$c; rmdir $(D)$(sysconfdir)/ermd 2>/dev/null; true; fi
	rm -f $(D)$(sbindir)/ermd $(D)$(bindir)/ermctl \
	    $(D)$(libdir)/$(LIBERM_REAL) $(D)$(libdir)/liberm.so.1 \
	    $(D)$(libdir)/liberm.so $(D)$(libdir)/liberm.a \
	    $(D)$(pkgconfigdir)/liberm.pc $(D)$(includedir)/erm/erm.h \
	    $(D)$(systemdsystemunitdir)/ermd.service \
	    $(D)$(systemdsystemunitdir)/ermd.socket \
	    $(D)$(sysusersdir)/ermd.conf $(D)$(datarootdir)/ermd/ermd.conf \
	    $(D)$(bashcompdir)/ermctl
	for m in $(MAN_PAGES); do \
	    rm -f $(D)$(mandir)/man$${m##*.}/$${m#man/}; done
	@rmdir $(D)$(includedir)/erm $(D)$(datarootdir)/ermd 2>/dev/null; true

# The man pages must be mandoc-lint clean at level warning (style messages
# are not errors: mandoc's style checks disagree with one another).
man-lint:
	@mandoc -T lint -W warning $(MAN_PAGES) && echo "man-lint: ok"

# Stage an install, check it, build and run a program against the staged
# liberm.pc, uninstall; see the script. (Not $(MAKE) here: make -n would
# run the script.)
install-check: all
	@B=$(B) sh tests/install-check.sh

asan:
	$(MAKE) B=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=all" \
	    unit regress

# Data races: the unit and regress suites built with ThreadSanitizer. Every
# process they start (ermd, ermctl) writes its reports to build-tsan/tsan/,
# and any report fails the run: a daemon killed with -9 cannot fail it by
# its exit status.
tsan:
	rm -rf build-tsan/tsan && mkdir -p build-tsan/tsan
	TSAN_OPTIONS="log_path=$(CURDIR)/build-tsan/tsan/report" \
	    $(MAKE) B=build-tsan OPT="-O1 -g" SAN="-fsanitize=thread" \
	    unit regress
	@if ls build-tsan/tsan/report.* >/dev/null 2>&1; then \
	    cat build-tsan/tsan/report.*; \
	    echo "tsan: data races reported"; exit 1; fi
	@echo "tsan: no data race reported"

bench: all
	@$(MAKE) --no-print-directory -f bench/bench.mk B=$(B)

clean:
	rm -rf build build-asan build-tsan

-include $(shell find $(B) build-asan build-tsan -name '*.d' -type f 2>/dev/null)
