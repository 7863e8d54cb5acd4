# syntax=docker/dockerfile:1
# The myinfo-proxy image: a release build on Debian bookworm, run on bookworm-slim as uid 65532.
#   docker build -t ghcr.io/myinfo-proxy/myinfo-proxy:0.1.0 .
#   docker push ghcr.io/myinfo-proxy/myinfo-proxy:0.1.0
# The Helm chart (helm/myinfo-proxy) mounts /etc/myinfo-proxy/config.toml and the key Secret.

FROM rust:1-bookworm AS build
# josekit builds against OpenSSL: headers and pkg-config.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The cache mounts (BuildKit) keep downloaded crates and compiled dependencies between builds.
# target/ is a cache mount, so the binary is copied out of it in the same step.
# --no-default-features --features jemalloc: the production binary (jemalloc, tuned by
# .cargo/config.toml, which COPY brings along), without the `demo` feature, so without the
# `demo` and `emulator` commands and without the emulator crate (crates/ is copied only because
# the workspace names it).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --no-default-features --features jemalloc --bin myinfo-proxy \
 && install -D -m 0755 target/release/myinfo-proxy /out/myinfo-proxy \
 && strip --strip-debug /out/myinfo-proxy

# Not distroless/cc: josekit links OpenSSL dynamically (libssl.so.3, libcrypto.so.3), which
# distroless/cc does not ship. bookworm-slim + libssl3 matches the builder's OpenSSL.
FROM debian:bookworm-slim
# ca-certificates: the trust store for tls.roots = "system" or "both" ("webpki" is built in).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/myinfo-proxy /usr/local/bin/myinfo-proxy
LABEL org.opencontainers.image.title="myinfo-proxy" \
      org.opencontainers.image.description="Signs every Singpass Myinfo / FAPI 2.0 call (client assertions, DPoP proofs)" \
      org.opencontainers.image.source="https://github.com/myinfo-proxy/myinfo-proxy" \
      org.opencontainers.image.licenses="Apache-2.0"
# Numeric, so that Kubernetes' runAsNonRoot can check it without a passwd entry.
USER 65532:65532
# 8080: the main listener; 9090: admin (/healthz, /readyz, /metrics, public JWKS).
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/myinfo-proxy"]
CMD ["serve", "--config", "/etc/myinfo-proxy/config.toml"]
