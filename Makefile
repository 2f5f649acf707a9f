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

.PHONY: test control-plane bench load cluster-up cluster-down crds

test: control-plane
	@status=0; FLINKGATE_E2E_DIR=$(E2E_DIR) FLINKGATE_REAL_NODES_DIR=$(REAL_NODES_DIR) \
	  cargo test --locked || status=$$?; \
	deploy/local/cluster down --dir $(E2E_DIR) >/dev/null 2>&1; \
	deploy/local/cluster down --dir $(REAL_NODES_DIR) >/dev/null 2>&1; exit $$status

control-plane:
	deploy/local/build

bench:
	cargo bench --bench decision

load:
	benches/load.sh

cluster-up: control-plane
	cargo build --release
	FLINKGATE_BIN=$(CURDIR)/target/release/flinkgate deploy/local/cluster up \
	  --nodes $(KWOK_NODES) --real-nodes $(REAL_NODES)

cluster-down:
	deploy/local/cluster down

crds:
	cargo run --quiet -- crds --out-dir deploy/crds
