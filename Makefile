# muxraft — the two commands a new user needs are `make demo` and `make test`.

CARGO ?= cargo
SIM_SEEDS ?= 200

.PHONY: all build demo test test-rust sim lint bench clean

all: build

build:
	$(CARGO) build --release

## demo: a three-node, 300-group cluster in one process, batched vs naive.
demo:
	$(CARGO) run --release --quiet --example local_cluster

## test: every test the project has.
test: test-rust

# Unit tests, the simulation (its summary is printed), the examples built,
# and the benchmark in smoke mode, all in one optimized-with-assertions build.
test-rust:
	MUXRAFT_SIM_SEEDS=$(SIM_SEEDS) $(CARGO) test --profile ci --lib --tests -- --nocapture
	$(CARGO) build --profile ci --examples
	$(CARGO) test --profile ci --bench heartbeat -- --smoke

## sim: the deterministic simulation alone (SIM_SEEDS=1000 make sim).
sim:
	MUXRAFT_SIM_SEEDS=$(SIM_SEEDS) $(CARGO) test --profile ci --test simulation -- --nocapture

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

## bench: heartbeat cost, naive vs batched, for three cluster sizes.
bench:
	$(CARGO) bench --bench heartbeat -- --nodes 3 --groups 100 --replicas 3 --intervals 50
	$(CARGO) bench --bench heartbeat -- --nodes 5 --groups 1000 --replicas 3 --intervals 50
	$(CARGO) bench --bench heartbeat -- --nodes 5 --groups 10000 --replicas 5 --intervals 20

clean:
	$(CARGO) clean
