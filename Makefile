# The two commands a newcomer needs (see README):
#   cargo run --release -- serve     # run flinkgate on its embedded default
#   make test                        # every test, the real control plane and real nodes included
#
# `make test` builds the local Kubernetes control plane, kubelet, kube-proxy
# and CoreDNS from Go modules the first time (about 9-12 minutes on 2 cores,
# cached in ~/.cache/flinkgate), then runs unit, TLS integration and
# end-to-end tests; the real-node ones also install containerd and build the
# flink:1.20 image (cached) and need root.

E2E_DIR ?= $(or $(TMPDIR),/tmp)/flinkgate-e2e-make
REAL_NODES_DIR ?= $(or $(TMPDIR),/tmp)/flinkgate-real-make
# `make cluster-up REAL_NODES=2`: real nodes (kubelet + containerd) instead of kwok ones.
REAL_NODES ?= 0
KWOK_NODES ?= $(if $(filter 0,$(REAL_NODES)),3,0)

TOOLS ?= $(or $(FLINKGATE_CACHE),$(HOME)/.cache/flinkgate)/tools

.PHONY: test control-plane bench load release-pgo cluster-up cluster-down crds deny

test: control-plane
	@status=0; FLINKGATE_E2E_DIR=$(E2E_DIR) FLINKGATE_REAL_NODES_DIR=$(REAL_NODES_DIR) \
	  cargo test --locked || status=$$?; \
	hack/cluster down --dir $(E2E_DIR) >/dev/null 2>&1; \
	hack/cluster down --dir $(REAL_NODES_DIR) >/dev/null 2>&1; exit $$status

control-plane:
	hack/build

# Licences, bans and sources of every dependency (cargo-deny is built into
# the cache on first use; advisories need a database this machine cannot fetch).
deny:
	@test -x $(TOOLS)/bin/cargo-deny || cargo install cargo-deny --locked --root $(TOOLS)
	$(TOOLS)/bin/cargo-deny --log-level error check licenses bans sources

bench:
	cargo bench --bench decision

load:
	benches/load.sh

# target/pgo/flinkgate: a profile-guided release build, trained on the review
# fixtures (needs llvm-profdata of rustc's LLVM version; see hack/pgo-build).
release-pgo:
	hack/pgo-build

cluster-up: control-plane
	cargo build --release
	FLINKGATE_BIN=$(CURDIR)/target/release/flinkgate hack/cluster up \
	  --nodes $(KWOK_NODES) --real-nodes $(REAL_NODES)

cluster-down:
	hack/cluster down

crds:
	cargo run --quiet -- crds --out-dir deploy/crds
