# Benchmarks: `make bench` (after `make all`) builds the load generator and
# the baselines, then runs every script in BENCH_SCRIPTS in turn. A new
# benchmark (breakers, error.report, backups...) is one more script here.
# The scripts print numbers and ratios; no timing makes this target fail.

B	?= build
CC	?= cc
BENCH_CFLAGS = -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -Iproto \
	$(shell pkg-config --cflags jansson 2>/dev/null)
# proto/frame.c carries the framing helpers; it needs jansson to link, though
# the load generator's hot path never calls into it.
BENCH_LIBS = $(shell pkg-config --libs jansson 2>/dev/null || echo -ljansson)

BENCH_BIN = $(B)/bench/loadgen $(B)/bench/echo_server
BENCH_SCRIPTS = bench/run-ping.sh
BENCH_SCRIPTS += bench/storage.sh
BENCH_SCRIPTS += bench/run-breaker.sh

.PHONY: bench-all bench-bin $(BENCH_SCRIPTS)

bench-all: $(BENCH_SCRIPTS)

bench-bin: $(BENCH_BIN)

$(B)/bench/%: bench/%.c $(wildcard proto/*.c) proto/erm_proto.h
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $< $(wildcard proto/*.c) $(BENCH_LIBS) -lm

# Scripts run one after another (never in parallel: they share the CPUs).
.NOTPARALLEL:
$(BENCH_SCRIPTS): $(BENCH_BIN)
	@mkdir -p $(B)/bench
	@echo "== $@"
	@RAW=$(B)/bench/$(notdir $(basename $@)).raw bash $@ -b $(B)

# Backups (bench/backup.sh): backup_load drives ermd, hash_only is the
# libcrypto-alone baseline (it needs libcrypto, so it has its own rule).
bench-all: bench/backup.sh
.PHONY: bench/backup.sh
bench/backup.sh: $(B)/bench/backup_load $(B)/bench/hash_only
	@mkdir -p $(B)/bench
	@echo "== $@"
	@RAW=$(B)/bench/backup.raw bash $@ -b $(B)
$(B)/bench/hash_only: bench/hash_only.c
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $< -lcrypto

# Errors and forwarding (bench/errors.sh): loadgen drives error.report,
# errors_sqlite is the SQLite-alone baseline (one commit per row).
bench-all: bench/errors.sh
.PHONY: bench/errors.sh
bench/errors.sh: $(B)/bench/loadgen $(B)/bench/errors_sqlite
	@mkdir -p $(B)/bench
	@echo "== $@"
	@RAW=$(B)/bench/errors.raw bash $@ -b $(B)
$(B)/bench/errors_sqlite: bench/errors_sqlite.c
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $< -lsqlite3

# Workflows (bench/workflow.sh): workflow_load drives ermd through liberm,
# workflow_sqlite is the SQLite-alone baseline (one commit per transition).
bench-all: bench/workflow.sh
.PHONY: bench/workflow.sh
bench/workflow.sh: $(B)/bench/workflow_load $(B)/bench/workflow_sqlite
	@mkdir -p $(B)/bench
	@echo "== $@"
	@RAW=$(B)/bench/workflow.raw bash $@ -b $(B)
$(B)/bench/workflow_load: bench/workflow_load.c $(B)/liberm.a
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -Iclient -o $@ $< $(B)/liberm.a $(BENCH_LIBS)
$(B)/bench/workflow_sqlite: bench/workflow_sqlite.c
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $< -lsqlite3

# Memory under churn (bench/run-soak.sh), last: loadgen and workflow_load
# drive one ermd for about two minutes.
bench-all: bench/run-soak.sh
.PHONY: bench/run-soak.sh
bench/run-soak.sh: $(BENCH_BIN) $(B)/bench/workflow_load
	@mkdir -p $(B)/bench
	@echo "== $@"
	@RAW=$(B)/bench/run-soak.raw bash $@ -b $(B)
