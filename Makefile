# muxraft — the two commands a new user needs are `make demo` and `make test`.

CARGO ?= cargo
SIM_SEEDS ?= 200
# The library the Makefile builds and installs carries its soname
# (libmuxraft.so.<ABI>); a plain `cargo build` leaves it without one (see
# build.rs).
export MUXRAFT_SONAME := 1

.PHONY: all build demo demo-host demo-rust test test-rust test-crash sim mutants lint bench clean
.PHONY: lib header c-examples test-c test-install install

all: build

build:
	$(CARGO) build --release

## demo: three queue_node processes on loopback (embedded mode: TCP and a
## write-ahead log each), 300 groups: leaders, heartbeats batched vs naive,
## commits and latency, then SIGKILL of a node, failover, restart, catch-up,
## the leader balancer giving it its share back, a wiped node rejoining, and
## a dead node replaced by a new one in every group while proposals continue
## (examples/c/demo.c drives examples/c/queue_node.c).
demo: c-examples
	$(C_OUT)/demo $(C_OUT)/queue_node

## demo-host: the same kind of cluster in one process, driven by the host
## (muxraft_tick/muxraft_step), batched vs naive (examples/c/cluster.c).
demo-host: c-examples
	$(C_OUT)/cluster

## demo-rust: the same cluster through the Rust API (examples/local_cluster.rs).
demo-rust:
	$(CARGO) run --release --quiet --example local_cluster

## test: every test the project has.
test: test-rust test-c test-crash test-install test-cpp test-erlang fuzz-smoke

# Unit tests, the simulation (its summary is printed), the examples built,
# and the benchmark in smoke mode, all in one optimized-with-assertions build.
test-rust:
	MUXRAFT_SIM_SEEDS=$(SIM_SEEDS) $(CARGO) test --profile ci --lib --tests -- --nocapture
	$(CARGO) build --profile ci --examples
	$(CARGO) test --profile ci --bench heartbeat -- --smoke
	$(CARGO) test --profile ci --bench heartbeat_latency -- --smoke
	$(CARGO) test --profile ci --bench restart -- --smoke
	$(CARGO) test --profile ci --bench reads -- --smoke
	$(CARGO) test --profile ci --bench commit_path -- --smoke

## sim: the deterministic simulation alone (SIM_SEEDS=1000 make sim).
sim:
	MUXRAFT_SIM_SEEDS=$(SIM_SEEDS) $(CARGO) test --profile ci --test simulation -- --nocapture

## mutants: put each known bug back into a copy of the tree, one at a time,
## and show which unit test and whether the simulation catches it
## (scripts/mutants.py; SIM_SEEDS sets the seeds per simulation run,
## MUTANTS=name runs only the mutants whose name contains it).
mutants:
	SIM_SEEDS=$(SIM_SEEDS) python3 scripts/mutants.py

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml -- --check
	$(CARGO) clippy --all-targets -- -D warnings

## bench: heartbeat cost, naive vs batched, for three cluster sizes;
## heartbeat latency under load; restart time after 10,000 and 1,000,000
## committed entries, with snapshots vs replaying the whole log; the soak;
## throughput and latency under an open-loop load past saturation; what
## idle groups cost (bench-idle); the failover time (bench-failover); the leader
## balance time after a restart (bench-balance);
## read-index throughput, batched vs a round per read (benches/reads.rs);
## CPU per commit at mid-load and saturated batch shapes (benches/commit_path.rs);
## the throughput plain vs TLS between nodes (bench-tls).
bench:
	$(CARGO) bench --bench heartbeat -- --nodes 3 --groups 100 --replicas 3 --intervals 50
	$(CARGO) bench --bench heartbeat -- --nodes 5 --groups 1000 --replicas 3 --intervals 50
	$(CARGO) bench --bench heartbeat -- --nodes 5 --groups 10000 --replicas 5 --intervals 20
	$(CARGO) bench --bench heartbeat_latency
	$(CARGO) bench --bench restart
	$(CARGO) bench --bench reads
	$(CARGO) bench --bench commit_path -- --per-group 1
	$(CARGO) bench --bench commit_path -- --per-group 8 --active 250
	$(MAKE) soak
	$(MAKE) bench-throughput
	$(MAKE) bench-idle
	$(MAKE) bench-failover
	$(MAKE) bench-balance
	$(MAKE) bench-tls

clean:
	$(CARGO) clean

# ---------------------------------------------------------------------------
# The C ABI: the library as C programs link it, the C examples and tests, and
# the installation (shared + static library, header, pkg-config file).

PREFIX ?= /usr/local
DESTDIR ?=
VALGRIND ?= valgrind
PKG_CONFIG ?= pkg-config

RELEASE_DIR := target/release
STATIC_LIB := $(RELEASE_DIR)/libmuxraft.a
SHARED_LIB := $(RELEASE_DIR)/libmuxraft.so
C_OUT := target/c
# The native libraries a program linking libmuxraft.a needs, as rustc
# reports them; computed once (in a target dir of its own, so that the
# release build's fingerprints are not disturbed) and cached.
NATIVE_LIBS_FILE := target/native-libs.txt
NATIVE_LIBS_FALLBACK := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
NATIVE_LIBS = $(shell cat $(NATIVE_LIBS_FILE) 2>/dev/null)
ABI_VERSION := $(shell sed -n 's/.*define MUXRAFT_ABI_VERSION \([0-9][0-9]*\).*/\1/p' include/muxraft.h)
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)

C_FLAGS := -std=c99 -Wall -Wextra -Werror -Iinclude
CXX_FLAGS := -std=c++17 -Wall -Wextra -Werror -Iinclude
C_OPT := -O2 -g
ASAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# tests/c/valgrind.supp: a false positive of ring's AES-GCM assembly (TLS).
VALGRIND_FLAGS := -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect \
                  --suppressions=$(CURDIR)/tests/c/valgrind.supp

C_TEST_SRC := tests/c/test_api.c tests/c/cluster_util.c
C_TEST_DEPS := $(C_TEST_SRC) tests/c/cluster_util.h include/muxraft.h
C_EXAMPLES := $(C_OUT)/minimal $(C_OUT)/cluster $(C_OUT)/queue_node $(C_OUT)/demo
# demo.c and tests/c/crash_test.c run queue_node processes through this.
QUEUE_CLUSTER := examples/c/queue_cluster.c examples/c/queue_cluster.h
# crash_test.c and throughput.c --verify check queue_node's app logs with this.
LOG_VERIFY := examples/c/log_verify.c examples/c/log_verify.h

.PHONY: FORCE
FORCE:

## lib: target/release/libmuxraft.{so,a} (soname libmuxraft.so.$(ABI_VERSION)).
lib: $(STATIC_LIB)

# Cargo decides whether anything needs rebuilding; programs linked against
# the library are relinked only when the library file actually changed.
$(STATIC_LIB): FORCE
	$(CARGO) build --release
$(SHARED_LIB): $(STATIC_LIB)

## header: regenerate the committed include/muxraft.h from src/ffi/ (cbindgen).
header:
	MUXRAFT_UPDATE_HEADER=1 $(CARGO) build --release

# (Built without the release profile's LTO and single codegen unit: only
# the list of native libraries is wanted, and it does not depend on them.)
NATIVE_LIBS_CARGO := CARGO_TARGET_DIR=target/native-libs CARGO_PROFILE_RELEASE_LTO=false \
  CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 $(CARGO)
$(NATIVE_LIBS_FILE): Cargo.toml Cargo.lock
	@mkdir -p $(@D)
	-@$(NATIVE_LIBS_CARGO) clean --release -p muxraft -q 2>/dev/null
	$(NATIVE_LIBS_CARGO) rustc --release --quiet --lib --crate-type staticlib -- --print native-static-libs 2>&1 \
	  | sed -n 's/^note: native-static-libs: //p' > $@.tmp
	@if [ -s $@.tmp ]; then mv $@.tmp $@; else \
	  echo "warning: rustc did not report native-static-libs; using $(NATIVE_LIBS_FALLBACK)"; \
	  echo "$(NATIVE_LIBS_FALLBACK)" > $@; rm -f $@.tmp; fi
	@echo "native libs: $$(cat $@)"

$(C_OUT) $(C_OUT)/lib:
	mkdir -p $@

# The shared library under its soname, for programs linked against it here.
$(C_OUT)/lib/libmuxraft.so.$(ABI_VERSION): $(SHARED_LIB) | $(C_OUT)/lib
	ln -sf ../../release/libmuxraft.so $@
	ln -sf ../../release/libmuxraft.so $(C_OUT)/lib/libmuxraft.so

## c-examples: examples/c/*.c linked against libmuxraft.a, into target/c/.
c-examples: $(C_EXAMPLES)

$(C_OUT)/%: examples/c/%.c include/muxraft.h $(STATIC_LIB) $(NATIVE_LIBS_FILE) | $(C_OUT)
	$(CC) $(C_FLAGS) $(C_OPT) $< $(STATIC_LIB) $(NATIVE_LIBS) -o $@

$(C_OUT)/demo: examples/c/demo.c $(QUEUE_CLUSTER) $(LOG_VERIFY) | $(C_OUT)
	$(CC) $(C_FLAGS) $(C_OPT) examples/c/demo.c examples/c/queue_cluster.c \
		examples/c/log_verify.c -o $@

$(C_OUT)/crash_test: tests/c/crash_test.c $(QUEUE_CLUSTER) $(LOG_VERIFY) | $(C_OUT)
	$(CC) $(C_FLAGS) -Iexamples/c $(C_OPT) tests/c/crash_test.c examples/c/queue_cluster.c \
		examples/c/log_verify.c -o $@

$(C_OUT)/soak: benches/c/soak.c $(QUEUE_CLUSTER) | $(C_OUT)
	$(CC) $(C_FLAGS) -Iexamples/c $(C_OPT) benches/c/soak.c examples/c/queue_cluster.c -o $@

# queue_node prints, and throughput merges, the same latency histogram.
$(C_OUT)/queue_node: examples/c/latency_hist.h

$(C_OUT)/throughput: benches/c/throughput.c examples/c/latency_hist.h $(QUEUE_CLUSTER) \
		$(LOG_VERIFY) | $(C_OUT)
	$(CC) $(C_FLAGS) -Iexamples/c $(C_OPT) benches/c/throughput.c examples/c/queue_cluster.c \
		examples/c/log_verify.c -lm -o $@

## bench-throughput: three queue_node processes with data directories (WAL
## synced), 1,000 groups, 16-byte payloads, an open-loop offered load that
## doubles until the commits per second stop growing and then goes past
## saturation, naive then batched heartbeats: per step commits/s, p50/p99/
## p999 commit latency, CPU per commit, elections, leader changes and BUSY
## refusals; the plot of p99 against throughput in target/throughput.svg
## (benches/c/throughput.c; THROUGHPUT_FLAGS adds flags, e.g.
## THROUGHPUT_FLAGS='--rates 5000,10000,20000 --step-seconds 5 --json').
## THROUGHPUT_FLAGS=--verify keeps queue_node's app logs (32-byte payloads;
## the logging costs CPU) and, after each mode's last step, stops proposals,
## lets the cluster settle, stops it and checks every log as test-crash does:
## it prints "verify: N acknowledged proposals, L lost, ..." and fails unless
## no acknowledged proposal was lost, none applied twice or out of order, and
## every replica ends in the same state.
.PHONY: bench-throughput
bench-throughput: $(C_OUT)/throughput $(C_OUT)/queue_node
	$(C_OUT)/throughput --queue-node $(C_OUT)/queue_node $(THROUGHPUT_FLAGS)

## bench-tls: what TLS between nodes costs: the throughput benchmark's
## cluster (batched heartbeats, 1,000 groups) at the same offered rates,
## plain TCP then TLS (--tls-dir tests/certs: the test certificates),
## each step's commits/s, p50/p99/p999 commit latency and CPU per commit
## printed for both (TLS_RATES, default 5000,10000,20000; TLS_STEP_SECONDS,
## default 5; THROUGHPUT_FLAGS adds flags to both runs).
TLS_RATES ?= 5000,10000,20000
TLS_STEP_SECONDS ?= 5
.PHONY: bench-tls
bench-tls: $(C_OUT)/throughput $(C_OUT)/queue_node
	@echo "== plain TCP"
	$(C_OUT)/throughput --queue-node $(C_OUT)/queue_node --modes batched --rates $(TLS_RATES) \
		--step-seconds $(TLS_STEP_SECONDS) --svg target/throughput-plain.svg $(THROUGHPUT_FLAGS)
	@echo "== TLS between nodes"
	$(C_OUT)/throughput --queue-node $(C_OUT)/queue_node --modes batched --rates $(TLS_RATES) \
		--step-seconds $(TLS_STEP_SECONDS) --svg target/throughput-tls.svg --tls-dir tests/certs \
		$(THROUGHPUT_FLAGS)

$(C_OUT)/idle: benches/c/idle.c $(QUEUE_CLUSTER) | $(C_OUT)
	$(CC) $(C_FLAGS) -Iexamples/c $(C_OPT) benches/c/idle.c examples/c/queue_cluster.c -o $@

$(C_OUT)/failover: benches/c/failover.c $(QUEUE_CLUSTER) | $(C_OUT)
	$(CC) $(C_FLAGS) -Iexamples/c $(C_OPT) benches/c/failover.c examples/c/queue_cluster.c -o $@

## bench-idle: what idle groups cost. Three queue_node processes with data
## directories, no proposals, 100,000 groups of 3 replicas: once every group
## has a leader and is quiet (--quiesce 1, the default), each process's CPU
## (% of one core, /proc/<pid>/stat) over 60 s and its RSS per group replica;
## then the same with every group awake (--quiesce 0, heartbeat rows
## batched), and without batching (--batch 0) at 10,000 groups; startup and
## election times too (benches/c/idle.c; IDLE_FLAGS adds flags, e.g.
## IDLE_FLAGS='--groups 20000 --seconds 20 --json'). Fails if a quiesced
## process uses 2% of a core or more.
.PHONY: bench-idle
bench-idle: $(C_OUT)/idle $(C_OUT)/queue_node
	$(C_OUT)/idle --queue-node $(C_OUT)/queue_node $(IDLE_FLAGS)

## bench-failover: three queue_node processes with data directories, 1,000
## idle groups, muxraft's default timeouts; 10 times: SIGKILL the node
## leading about a third of the groups, time until every group has a leader
## again, count elections (none may touch a group the dead node did not
## lead), restart it and let the groups go quiet again (a fresh cluster once
## no node leads a quarter to a half of the groups); with --quiesce 1
## (target: at most 1.1 s every run) and --quiesce 0 for comparison
## (benches/c/failover.c; FAILOVER_FLAGS adds flags, e.g.
## FAILOVER_FLAGS='--runs 20 --json').
.PHONY: bench-failover
bench-failover: $(C_OUT)/failover $(C_OUT)/queue_node
	$(C_OUT)/failover --queue-node $(C_OUT)/queue_node $(FAILOVER_FLAGS)

$(C_OUT)/balance: benches/c/balance.c $(QUEUE_CLUSTER) $(LOG_VERIFY) | $(C_OUT)
	$(CC) $(C_FLAGS) -Iexamples/c $(C_OPT) benches/c/balance.c examples/c/queue_cluster.c \
		examples/c/log_verify.c -o $@

## bench-balance: three queue_node processes with data directories and app
## logs, 1,000 groups, 2,000 proposals/s in all, muxraft's leader balancer
## (on by default in embedded mode); 5 runs on a fresh cluster each: SIGKILL
## the node leading the most groups, wait until every group is led again,
## restart it, time until every node leads within 10% of L/N (333 +- 33),
## with the leaders per node on the way, the balancer's transfers, the
## elections and the failed proposals since the restart (must be 0); then
## every acknowledged proposal checked as test-crash does (0 lost)
## (benches/c/balance.c; BALANCE_FLAGS adds flags, e.g.
## BALANCE_FLAGS='--runs 10 --groups 3000'). Fails if a run takes 10 s.
.PHONY: bench-balance
bench-balance: $(C_OUT)/balance $(C_OUT)/queue_node
	$(C_OUT)/balance --queue-node $(C_OUT)/queue_node $(BALANCE_FLAGS)

## soak: three queue_node processes with data directories, 100 groups, at
## least 10,000 commits/s for 120 s with snapshots every 10,000 entries per
## group: the data directories stay under 64 MiB plus the snapshots and the
## resident memory stays flat (benches/c/soak.c; SOAK_FLAGS adds flags).
.PHONY: soak
soak: $(C_OUT)/soak $(C_OUT)/queue_node
	$(C_OUT)/soak --queue-node $(C_OUT)/queue_node $(SOAK_FLAGS)

## test-crash: three queue_node processes with data directories, proposing
## and taking snapshots; one is killed with SIGKILL and restarted every few
## seconds; then every acknowledged proposal must be applied exactly once, in
## the same order, on every replica, and every replica's state at an index
## must be the same however it got there. Run twice: then again with node 3's
## data deleted before half of its restarts (it rejoins by snapshot).
## MUXRAFT_CRASH_SECONDS (default 30) sets how long the kills go on (see
## tests/c/crash_test.c for the other knobs).
## Also the soak benchmark in smoke mode (10 s, bounds on the WAL checked)
## and the throughput benchmark in smoke mode (about 17 s: 100 groups, two
## short steps per mode; each must commit a third of its offered rate),
## and the leader-balance benchmark in smoke mode (about 5 s: 300 groups, one
## kill and restart; balanced within 10 s, no failed or lost proposal).
test-crash: $(C_OUT)/crash_test $(C_OUT)/queue_node $(C_OUT)/soak $(C_OUT)/throughput \
            $(C_OUT)/balance
	$(C_OUT)/crash_test $(C_OUT)/queue_node
	MUXRAFT_CRASH_WIPE=50 MUXRAFT_CRASH_SECONDS=$${MUXRAFT_CRASH_SECONDS:-20} \
		$(C_OUT)/crash_test $(C_OUT)/queue_node
	$(C_OUT)/soak --smoke --queue-node $(C_OUT)/queue_node
	$(C_OUT)/throughput --smoke --queue-node $(C_OUT)/queue_node
	$(C_OUT)/balance --smoke --queue-node $(C_OUT)/queue_node

$(C_OUT)/test_api: $(C_TEST_DEPS) $(STATIC_LIB) $(NATIVE_LIBS_FILE) | $(C_OUT)
	$(CC) $(C_FLAGS) $(C_OPT) -pthread $(C_TEST_SRC) $(STATIC_LIB) $(NATIVE_LIBS) -o $@

$(C_OUT)/test_api_asan: $(C_TEST_DEPS) $(STATIC_LIB) $(NATIVE_LIBS_FILE) | $(C_OUT)
	$(CC) $(C_FLAGS) -O1 -g -pthread $(ASAN_FLAGS) $(C_TEST_SRC) $(STATIC_LIB) $(NATIVE_LIBS) -o $@

$(C_OUT)/cluster_asan: examples/c/cluster.c include/muxraft.h $(STATIC_LIB) $(NATIVE_LIBS_FILE) | $(C_OUT)
	$(CC) $(C_FLAGS) -O1 -g $(ASAN_FLAGS) $< $(STATIC_LIB) $(NATIVE_LIBS) -o $@

# Linked against the shared library (found through the rpath).
$(C_OUT)/test_api_shared: $(C_TEST_DEPS) $(C_OUT)/lib/libmuxraft.so.$(ABI_VERSION) | $(C_OUT)
	$(CC) $(C_FLAGS) $(C_OPT) -pthread $(C_TEST_SRC) -L$(C_OUT)/lib -lmuxraft -Wl,-rpath,'$$ORIGIN/lib' -o $@

# The same test compiled as C++: the header (and the test) are C++-clean.
$(C_OUT)/test_api_cpp: $(C_TEST_DEPS) $(STATIC_LIB) $(NATIVE_LIBS_FILE) | $(C_OUT)
	$(CXX) $(CXX_FLAGS) -pthread -x c++ $(C_TEST_SRC) -x none $(STATIC_LIB) $(NATIVE_LIBS) -o $@

# tests/c/misuse.c: every exported function misused, a table row per misuse.
# misuse_exports.h lists every function include/muxraft.h declares (a line
# that starts a declaration, not a comment, typedef or macro), so that the
# test fails when a function has no row.
MISUSE_SRC := tests/c/misuse.c tests/c/cluster_util.c
MISUSE_DEPS := $(MISUSE_SRC) tests/c/cluster_util.h include/muxraft.h $(C_OUT)/misuse_exports.h
MISUSE_FLAGS := -I$(C_OUT)

$(C_OUT)/misuse_exports.h: include/muxraft.h | $(C_OUT)
	sed -n 's/^[a-z][^(*]*[ *]\(muxraft_[a-z0-9_]*\)(.*/"\1",/p' $< > $@.tmp
	@test -s $@.tmp || { echo "no function declaration found in $<"; rm -f $@.tmp; exit 1; }
	mv $@.tmp $@

$(C_OUT)/misuse: $(MISUSE_DEPS) $(STATIC_LIB) $(NATIVE_LIBS_FILE) | $(C_OUT)
	$(CC) $(C_FLAGS) $(MISUSE_FLAGS) $(C_OPT) $(MISUSE_SRC) $(STATIC_LIB) $(NATIVE_LIBS) -o $@

$(C_OUT)/misuse_asan: $(MISUSE_DEPS) $(STATIC_LIB) $(NATIVE_LIBS_FILE) | $(C_OUT)
	$(CC) $(C_FLAGS) $(MISUSE_FLAGS) -O1 -g $(ASAN_FLAGS) $(MISUSE_SRC) $(STATIC_LIB) $(NATIVE_LIBS) -o $@

$(C_OUT)/misuse_shared: $(MISUSE_DEPS) $(C_OUT)/lib/libmuxraft.so.$(ABI_VERSION) | $(C_OUT)
	$(CC) $(C_FLAGS) $(MISUSE_FLAGS) $(C_OPT) $(MISUSE_SRC) -L$(C_OUT)/lib -lmuxraft -Wl,-rpath,'$$ORIGIN/lib' -o $@

$(C_OUT)/misuse_cpp: $(MISUSE_DEPS) $(STATIC_LIB) $(NATIVE_LIBS_FILE) | $(C_OUT)
	$(CXX) $(CXX_FLAGS) $(MISUSE_FLAGS) -x c++ $(MISUSE_SRC) -x none $(STATIC_LIB) $(NATIVE_LIBS) -o $@

# tests/c/test_log.c: the log callback (a torn WAL tail and a refused peer
# found in the host's log), plain, under AddressSanitizer + UBSan, under
# valgrind (shared library) and as C++.
LOG_TEST_SRC := tests/c/test_log.c tests/c/cluster_util.c
LOG_TEST_DEPS := $(LOG_TEST_SRC) tests/c/cluster_util.h include/muxraft.h

$(C_OUT)/test_log: $(LOG_TEST_DEPS) $(STATIC_LIB) $(NATIVE_LIBS_FILE) | $(C_OUT)
	$(CC) $(C_FLAGS) $(C_OPT) -pthread $(LOG_TEST_SRC) $(STATIC_LIB) $(NATIVE_LIBS) -o $@

$(C_OUT)/test_log_asan: $(LOG_TEST_DEPS) $(STATIC_LIB) $(NATIVE_LIBS_FILE) | $(C_OUT)
	$(CC) $(C_FLAGS) -O1 -g -pthread $(ASAN_FLAGS) $(LOG_TEST_SRC) $(STATIC_LIB) $(NATIVE_LIBS) -o $@

$(C_OUT)/test_log_shared: $(LOG_TEST_DEPS) $(C_OUT)/lib/libmuxraft.so.$(ABI_VERSION) | $(C_OUT)
	$(CC) $(C_FLAGS) $(C_OPT) -pthread $(LOG_TEST_SRC) -L$(C_OUT)/lib -lmuxraft -Wl,-rpath,'$$ORIGIN/lib' -o $@

$(C_OUT)/test_log_cpp: $(LOG_TEST_DEPS) $(STATIC_LIB) $(NATIVE_LIBS_FILE) | $(C_OUT)
	$(CXX) $(CXX_FLAGS) -pthread -x c++ $(LOG_TEST_SRC) -x none $(STATIC_LIB) $(NATIVE_LIBS) -o $@

$(C_OUT)/header_cpp: tests/c/header_cpp.cc include/muxraft.h $(STATIC_LIB) $(NATIVE_LIBS_FILE) | $(C_OUT)
	$(CXX) $(CXX_FLAGS) -Wpedantic $< $(STATIC_LIB) $(NATIVE_LIBS) -o $@

## test-c: the C API tests, the misuse table (tests/c/misuse.c) and the
## log callback's test (tests/c/test_log.c), plain,
## under AddressSanitizer + UBSan and under valgrind; the same tests built
## as C++; the metrics text of a live cluster read by a real Prometheus
## parser (prometheus_client, tests/c/check_metrics.py); the C examples run.
test-c: $(C_OUT)/test_api $(C_OUT)/test_api_asan $(C_OUT)/test_api_shared \
        $(C_OUT)/test_api_cpp $(C_OUT)/header_cpp $(C_OUT)/cluster_asan $(C_EXAMPLES) \
        $(C_OUT)/misuse $(C_OUT)/misuse_asan $(C_OUT)/misuse_shared $(C_OUT)/misuse_cpp \
        $(C_OUT)/test_log $(C_OUT)/test_log_asan $(C_OUT)/test_log_shared $(C_OUT)/test_log_cpp
	@echo "== C API tests"
	MUXRAFT_METRICS_OUT=$(C_OUT)/metrics.txt $(C_OUT)/test_api
	@echo "== the metrics text, parsed by prometheus_client"
	python3 tests/c/check_metrics.py $(C_OUT)/metrics.txt
	@echo "== C API tests under AddressSanitizer and UBSan"
	ASAN_OPTIONS=detect_leaks=1 $(C_OUT)/test_api_asan
	@echo "== C API tests under valgrind (shared library)"
	$(VALGRIND) $(VALGRIND_FLAGS) $(C_OUT)/test_api_shared
	@echo "== C API tests compiled as C++"
	$(C_OUT)/test_api_cpp
	$(C_OUT)/header_cpp
	@echo "== C API misuse table, plain, under AddressSanitizer and UBSan, under valgrind (shared), as C++"
	$(C_OUT)/misuse
	ASAN_OPTIONS=detect_leaks=1 $(C_OUT)/misuse_asan
	$(VALGRIND) $(VALGRIND_FLAGS) $(C_OUT)/misuse_shared
	$(C_OUT)/misuse_cpp
	@echo "== the log callback: plain, under AddressSanitizer and UBSan, under valgrind (shared), as C++"
	$(C_OUT)/test_log
	ASAN_OPTIONS=detect_leaks=1 $(C_OUT)/test_log_asan
	$(VALGRIND) $(VALGRIND_FLAGS) $(C_OUT)/test_log_shared
	$(C_OUT)/test_log_cpp
	@echo "== C examples"
	$(C_OUT)/minimal
	$(VALGRIND) $(VALGRIND_FLAGS) $(C_OUT)/minimal
	$(C_OUT)/cluster > $(C_OUT)/cluster.out || { cat $(C_OUT)/cluster.out; exit 1; }
	@tail -n 1 $(C_OUT)/cluster.out
	ASAN_OPTIONS=detect_leaks=1 $(C_OUT)/cluster_asan 300 10 > $(C_OUT)/cluster_asan.out || { cat $(C_OUT)/cluster_asan.out; exit 1; }
	@tail -n 1 $(C_OUT)/cluster_asan.out
	$(VALGRIND) $(VALGRIND_FLAGS) $(C_OUT)/cluster 60 5 > $(C_OUT)/cluster_valgrind.out || { cat $(C_OUT)/cluster_valgrind.out; exit 1; }
	@tail -n 1 $(C_OUT)/cluster_valgrind.out

## install: PREFIX/lib/libmuxraft.so.$(ABI_VERSION) (+ libmuxraft.so), libmuxraft.a,
## PREFIX/include/muxraft.h and PREFIX/lib/pkgconfig/muxraft.pc. DESTDIR is honoured.
install: $(STATIC_LIB) $(NATIVE_LIBS_FILE)
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 0755 $(SHARED_LIB) $(DESTDIR)$(PREFIX)/lib/libmuxraft.so.$(ABI_VERSION)
	ln -sf libmuxraft.so.$(ABI_VERSION) $(DESTDIR)$(PREFIX)/lib/libmuxraft.so
	install -m 0644 $(STATIC_LIB) $(DESTDIR)$(PREFIX)/lib/libmuxraft.a
	install -m 0644 include/muxraft.h $(DESTDIR)$(PREFIX)/include/muxraft.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|@ABI_VERSION@|$(ABI_VERSION)|g' -e 's|@NATIVE_LIBS@|$(NATIVE_LIBS)|g' \
	    muxraft.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/muxraft.pc
	chmod 0644 $(DESTDIR)$(PREFIX)/lib/pkgconfig/muxraft.pc

## test-install: install into target/, then build examples/c/minimal.c with
## `pkg-config --cflags --libs muxraft` (shared) and with Libs.private
## (static) and run both; check the soname.
INSTALL_TEST_DIR := $(CURDIR)/target/test-install
test-install: $(STATIC_LIB) $(NATIVE_LIBS_FILE)
	rm -rf $(INSTALL_TEST_DIR)
	$(MAKE) --no-print-directory install PREFIX=$(INSTALL_TEST_DIR) DESTDIR=
	@set -e; d=$(INSTALL_TEST_DIR); \
	export PKG_CONFIG_PATH=$$d/lib/pkgconfig; \
	echo "pkg-config --cflags --libs muxraft: $$($(PKG_CONFIG) --cflags --libs muxraft)"; \
	test "$$($(PKG_CONFIG) --modversion muxraft)" = "$(VERSION)"; \
	readelf -d $$d/lib/libmuxraft.so.$(ABI_VERSION) | grep -q 'SONAME.*\[libmuxraft\.so\.$(ABI_VERSION)\]' \
	  || { echo "installed library lacks SONAME libmuxraft.so.$(ABI_VERSION)"; exit 1; }; \
	echo "installed SONAME: libmuxraft.so.$(ABI_VERSION)"; \
	$(CC) -std=c99 -Wall -Wextra -Werror examples/c/minimal.c $$($(PKG_CONFIG) --cflags --libs muxraft) -o $$d/minimal; \
	readelf -d $$d/minimal | grep -q 'NEEDED.*\[libmuxraft\.so\.$(ABI_VERSION)\]' \
	  || { echo "minimal does not need libmuxraft.so.$(ABI_VERSION)"; exit 1; }; \
	LD_LIBRARY_PATH=$$d/lib $$d/minimal; \
	$(CC) -std=c99 -Wall -Wextra -Werror examples/c/minimal.c $$($(PKG_CONFIG) --cflags muxraft) \
	  -Wl,--as-needed $$d/lib/libmuxraft.a $$($(PKG_CONFIG) --static --libs muxraft) -o $$d/minimal-static; \
	if readelf -d $$d/minimal-static | grep -q 'NEEDED.*libmuxraft'; then \
	  echo "minimal-static should not need libmuxraft.so"; exit 1; fi; \
	$$d/minimal-static > /dev/null; \
	echo "test-install: ok (shared and static builds from the installed copy)"

# ---------------------------------------------------------------------------
# The C++ binding: bindings/cpp/muxraft.hpp (header-only C++17), its
# GoogleTest suite built with AddressSanitizer + UBSan and run with leak
# detection, and the README's C++ example (bindings/cpp/examples/cluster.cc).

.PHONY: test-cpp

CPP_OUT := target/cpp
CPP_FLAGS := $(CXX_FLAGS) -Wpedantic -Wshadow -Ibindings/cpp -pthread
CPP_HEADERS := bindings/cpp/muxraft.hpp include/muxraft.h
CPP_TEST_SRC := $(wildcard bindings/cpp/test/*.cc)
CPP_TEST_DEPS := $(CPP_TEST_SRC) $(wildcard bindings/cpp/test/*.hpp) $(CPP_HEADERS)
# The example's three nodes listen on loopback ports CPP_EXAMPLE_PORT+1..+3.
CPP_EXAMPLE_PORT ?= 27300

# GoogleTest from Debian's libgtest-dev, which ships libgtest.a and
# libgtest_main.a; where it ships only the sources, they are built here.
GTEST_SRC ?= /usr/src/googletest/googletest
ifeq ($(shell $(CXX) -print-file-name=libgtest.a),libgtest.a)
GTEST_LIBS := $(CPP_OUT)/gtest/libgtest_main.a $(CPP_OUT)/gtest/libgtest.a
else
GTEST_LIBS := -lgtest_main -lgtest
endif

$(CPP_OUT) $(CPP_OUT)/gtest:
	mkdir -p $@

GTEST_BUILD = $(CXX) -std=c++17 -O1 -g -pthread -I$(GTEST_SRC) -I$(GTEST_SRC)/include -c
$(CPP_OUT)/gtest/libgtest.a: | $(CPP_OUT)/gtest
	$(GTEST_BUILD) $(GTEST_SRC)/src/gtest-all.cc -o $(@D)/gtest-all.o
	$(AR) rcs $@ $(@D)/gtest-all.o
$(CPP_OUT)/gtest/libgtest_main.a: | $(CPP_OUT)/gtest
	$(GTEST_BUILD) $(GTEST_SRC)/src/gtest_main.cc -o $(@D)/gtest_main.o
	$(AR) rcs $@ $(@D)/gtest_main.o

$(CPP_OUT)/test_cpp_asan: $(CPP_TEST_DEPS) $(STATIC_LIB) $(NATIVE_LIBS_FILE) \
                          $(filter $(CPP_OUT)/%,$(GTEST_LIBS)) | $(CPP_OUT)
	$(CXX) $(CPP_FLAGS) -O1 -g $(ASAN_FLAGS) $(CPP_TEST_SRC) $(STATIC_LIB) $(GTEST_LIBS) $(NATIVE_LIBS) -o $@

$(CPP_OUT)/cluster: bindings/cpp/examples/cluster.cc $(CPP_HEADERS) $(STATIC_LIB) $(NATIVE_LIBS_FILE) | $(CPP_OUT)
	$(CXX) $(CPP_FLAGS) $(C_OPT) $< $(STATIC_LIB) $(NATIVE_LIBS) -o $@

## test-cpp: the C++ binding's tests (GoogleTest) under AddressSanitizer and
## UBSan with leak detection, and the README's C++ example run.
test-cpp: $(CPP_OUT)/test_cpp_asan $(CPP_OUT)/cluster
	@echo "== C++ binding tests (GoogleTest) under AddressSanitizer and UBSan"
	ASAN_OPTIONS=detect_leaks=1 $(CPP_OUT)/test_cpp_asan
	@echo "== C++ example (README)"
	@awk '/^## C\+\+$$/ {s = 1} s && /^```cpp$$/ {c = 1; next} c && /^```$$/ {exit} c' README.md \
	  | diff -u - bindings/cpp/examples/cluster.cc > /dev/null \
	  || { echo "README.md's C++ example differs from bindings/cpp/examples/cluster.cc"; exit 1; }
	$(CPP_OUT)/cluster $(CPP_EXAMPLE_PORT)

# ---------------------------------------------------------------------------
# The Erlang binding: bindings/erlang/ (rebar3 application, C NIF linking
# libmuxraft.a, EUnit suite). Offline: Debian's erlang-nox, erlang-dev and
# rebar3, no hex packages or plugins.

.PHONY: test-erlang
REBAR3 ?= rebar3

## test-erlang: the NIF built and checked to export only nif_init, the EUnit
## suite (rebar3 eunit), and the README's Erlang example run.
test-erlang: $(STATIC_LIB) $(NATIVE_LIBS_FILE)
	@echo "== Erlang binding (EUnit)"
	$(MAKE) --no-print-directory -C bindings/erlang test REBAR3=$(REBAR3)

# ---------------------------------------------------------------------------
# Fuzzing: fuzz/ (cargo-fuzz, libFuzzer; a crate of its own, outside the
# main build) holds five targets: the frame decoder (frame_decode), the
# heartbeat-batch and group message readers against prost (batch_decode),
# a live host-driven node stepping arbitrary frames (node_step), the
# handshake both ways (handshake) and WAL recovery on arbitrary or mutated
# segments (wal_recovery). Seeds from real traffic are committed in fuzz/seeds/
# (examples/fuzz_seeds.rs writes them); inputs that once found a bug are
# kept in fuzz/regressions/. cargo-fuzz passes -Z flags to rustc: on the
# stable toolchain RUSTC_BOOTSTRAP=1 lets it.

.PHONY: fuzz fuzz-smoke fuzz-build fuzz-seeds cargo-fuzz

FUZZ_TARGETS := frame_decode batch_decode node_step handshake wal_recovery
CARGO_FUZZ_VERSION := 0.12.0
CARGO_FUZZ := RUSTC_BOOTSTRAP=1 $(CARGO) fuzz
# Release build with debug assertions and overflow checks, AddressSanitizer
# (cargo-fuzz's default): its allocator makes -malloc_limit_mb work.
# FUZZ_SANITIZER=none builds without it, into a target directory of its
# own (the ASan build stays): node_step then runs about 3.4 times as many
# executions a second; the RSS limit still holds, the per-allocation limit
# does not (libFuzzer counts allocations through the sanitizer's hooks).
FUZZ_SANITIZER ?= address
FUZZ_BUILD_FLAGS := -O -a -s $(FUZZ_SANITIZER) --fuzz-dir fuzz \
	$(if $(filter address,$(FUZZ_SANITIZER)),,--target-dir fuzz/target-$(FUZZ_SANITIZER))
# No single allocation over 256 MiB (the inputs are at most FUZZ_MAX_LEN,
# 64 KiB), RSS under 2 GiB, and no input may take 10 s. A long campaign
# may want shorter inputs: wal_recovery's grow into thousands of tiny
# segment files (one per segment magic) and slow from 4,000 to 700
# executions a second; FUZZ_MAX_LEN=2048 keeps a real segment whole.
FUZZ_MAX_LEN ?= 65536
FUZZ_LIMITS := -rss_limit_mb=2048 -malloc_limit_mb=256 -timeout=10 -max_len=$(FUZZ_MAX_LEN)
FUZZ_SMOKE_SECONDS ?= 10
# make fuzz: each target this many runs (or FUZZ_SECONDS, whichever ends
# first), one after another on one core; logs in fuzz/logs/.
FUZZ_RUNS ?= 10000000
FUZZ_SECONDS ?= 3600
# The long campaign runs about twice as fast without ASan's stack
# use-after-return checks (Rust's safe code cannot return a dangling
# stack reference), its fill of fresh allocations and its allocation
# stack traces (a crash found is replayed with all of them), and without
# libFuzzer's entropic scheduling; the allocation limits stay.
FUZZ_CAMPAIGN_ASAN := detect_stack_use_after_return=0:max_malloc_fill_size=0:malloc_context_size=0
FUZZ_CAMPAIGN_FLAGS := -entropic=0

cargo-fuzz:
	@$(CARGO) fuzz --version 2>/dev/null | grep -q ' $(CARGO_FUZZ_VERSION)$$' \
	  || $(CARGO) install cargo-fuzz --locked --version $(CARGO_FUZZ_VERSION)

fuzz-build: cargo-fuzz
	$(CARGO_FUZZ) build $(FUZZ_BUILD_FLAGS)

# One target: $(1) the target, $(2) extra libFuzzer flags. New inputs go to
# fuzz/corpus/<target> (not committed); the seeds and regressions are read.
fuzz_run = mkdir -p fuzz/corpus/$(1) fuzz/regressions/$(1) && \
	$(CARGO_FUZZ) run $(FUZZ_BUILD_FLAGS) $(1) fuzz/corpus/$(1) fuzz/seeds/$(1) fuzz/regressions/$(1) \
	  -- $(FUZZ_LIMITS) $(2)

## fuzz-smoke (part of `make test`): installs cargo-fuzz $(CARGO_FUZZ_VERSION) if
## missing, builds the five targets, replays the seeds and regressions and
## fuzzes each target for FUZZ_SMOKE_SECONDS (10).
fuzz-smoke: fuzz-build
	@mkdir -p fuzz/logs; set -e; for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz $$t ($(FUZZ_SMOKE_SECONDS) s)"; \
	  $(call fuzz_run,$$t,-max_total_time=$(FUZZ_SMOKE_SECONDS) -print_final_stats=1) \
	    > fuzz/logs/smoke-$$t.log 2>&1 \
	    || { tail -n 60 fuzz/logs/smoke-$$t.log; echo "fuzz target $$t failed (fuzz/artifacts/$$t)"; exit 1; }; \
	  grep -E '^INFO: seed corpus|^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::(number_of_executed_units|peak_rss_mb)' \
	    fuzz/logs/smoke-$$t.log; \
	done

## fuzz: the long local campaign (not in CI): each target FUZZ_RUNS runs
## (10 million) or FUZZ_SECONDS, one after another; full logs in
## fuzz/logs/<target>.log, final stats (execs, cov, ft, peak RSS) printed.
fuzz: fuzz-build
	@mkdir -p fuzz/logs; set -e; for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz $$t: $(FUZZ_RUNS) runs or $(FUZZ_SECONDS) s"; \
	  export ASAN_OPTIONS=$(FUZZ_CAMPAIGN_ASAN); \
	  $(call fuzz_run,$$t,-runs=$(FUZZ_RUNS) -max_total_time=$(FUZZ_SECONDS) $(FUZZ_CAMPAIGN_FLAGS) -print_final_stats=1) \
	    > fuzz/logs/$$t.log 2>&1 || { tail -n 40 fuzz/logs/$$t.log; exit 1; }; \
	  grep -E '^#[0-9]+[[:space:]]+DONE|^stat::' fuzz/logs/$$t.log; \
	done

## fuzz-seeds: rewrite fuzz/seeds/ from a real three-node cluster's traffic
## (examples/fuzz_seeds.rs).
fuzz-seeds:
	$(CARGO) run --profile ci --example fuzz_seeds -- fuzz/seeds
