# syntax=docker/dockerfile:1
#
# flinkgate container image: one static (musl) binary on an empty base.
#
#   docker build -t flinkgate:latest .
#
# Without docker, `hack/images platform` builds the same runtime layout (a
# static glibc build instead of musl) for the local real-node clusters.
#
# Needs BuildKit (the default builder of current Docker and of buildx) for the
# cache mounts. The image runs as 65532:65532 with a read-only root
# filesystem (see deploy/base/deployment.yaml); it needs no shell and writes
# no files.

############################################################################
# Build: Rust on Debian bookworm, cross-compiling to x86_64 musl so the
# binary is fully static and runs on an empty base image.
FROM rust:1-bookworm AS builder

# musl-tools provides musl-gcc (the C compiler wrapper for musl's headers and
# libc). Cargo.toml's rust-version is the minimum; rust:1 is the latest
# stable, which is what Cargo.lock is tested with.
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
# llvm-tools: llvm-profdata of rustc's own LLVM, for the profile-guided build.
RUN rustup target add x86_64-unknown-linux-musl \
 && rustup component add llvm-tools

# mimalloc (libmimalloc-sys) and ring build C code through the cc crate.
# For the musl target that C must be compiled by musl-gcc, against musl's
# headers: glibc-compiled objects in a static musl binary fail to link or
# misbehave at run time. cc-rs reads this variable for the target.
ENV CC_x86_64_unknown_linux_musl=musl-gcc

WORKDIR /src
COPY . .

# The release build is profile-guided, as `hack/images` builds it for the
# local clusters: hack/pgo-build builds flinkgate instrumented, serves every
# review fixture to it over TLS (with oha, which it installs into its cache),
# then builds again with that profile (about a third less CPU per review;
# README, benchmarks). The cache mounts keep the crate registry, the builds,
# oha and the profile between builds (the profile is kept while the source is
# unchanged); the binary is written outside them, into the stage.
# --locked: build exactly Cargo.lock, fail if it is out of date.
ENV FLINKGATE_CACHE=/cache/flinkgate
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/cache/flinkgate \
    hack/pgo-build --target x86_64-unknown-linux-musl --out /flinkgate

# Smoke test: the static binary runs (no dynamic loader needed).
RUN /flinkgate --version

# An /etc/passwd and /etc/group naming the nonroot user, so tools that look
# the uid up (ps, kubectl debug) show a name; the runtime does not need them.
RUN echo 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin' > /passwd \
 && echo 'nonroot:x:65532:' > /group

############################################################################
# Runtime: nothing but the binary, CA roots and the user database.
FROM scratch

# CA roots: the in-cluster API client trusts the ServiceAccount's ca.crt, but
# a kubeconfig pointing at a publicly signed API server needs system roots.
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /passwd /etc/passwd
COPY --from=builder /group /etc/group
COPY --from=builder /flinkgate /flinkgate

# Same ids as runAsUser/runAsGroup in deploy/base/deployment.yaml; numeric,
# so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 65532:65532

# HTTPS: admission (/validate, /mutate), /healthz, /readyz, /metrics.
EXPOSE 8443

ENTRYPOINT ["/flinkgate"]
CMD ["serve"]
