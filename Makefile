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
	   postgresql python3-psycopg2 curl nginx openssl

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

.PHONY: all deps run check check-all unit regress fuzz asan bench clean format \
	systemd-check supabase-selftest

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

$(B)/liberm.pc: client/liberm.pc.in Makefile
	@mkdir -p $(B)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    client/liberm.pc.in > $@

$(B)/ermctl: $(call obj,$(CTL_SRC)) $(B)/liberm.a
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_C)

# docs/examples/*.c, linked with liberm.a as a user's program would be.
$(B)/examples/%: docs/examples/%.c $(B)/liberm.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -o $@ $< $(B)/liberm.a $(LDLIBS_C)

PREFIX	   ?= /usr/local
LIBDIR	   ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include

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
	    $(B)/liberm.a $(LDLIBS_C) $(CHECK_LIBS)

unit: $(UNIT_BIN)
	@for t in $(UNIT_BIN); do echo "== $$t"; $$t || exit 1; done

regress: all $(REGRESS_BIN)
	@for t in $(REGRESS_BIN); do echo "== $$t"; \
	    ERMD=$(B)/ermd ERMCTL=$(B)/ermctl $$t || exit 1; done

# Like `make run`, `make check` first installs what is missing (as root) so
# that it is the one command a fresh machine needs; the sub-make then sees
# the installed pkg-config files.
check:
	@sh .ci/deps.sh $(DEB_PKGS) $(DEB_TEST_PKGS)
	@$(MAKE) --no-print-directory check-all

check-all: all unit regress systemd-check supabase-selftest fuzz
	@echo "make check: all suites passed"

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

asan:
	$(MAKE) B=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=all" \
	    unit regress

bench: all
	@$(MAKE) --no-print-directory -f bench/bench.mk B=$(B)

format:
	clang-format -i $(wildcard proto/*.[ch] daemon/*.[ch] client/*.[ch])

clean:
	rm -rf build build-asan

-include $(shell find $(B) build-asan -name '*.d' 2>/dev/null)
