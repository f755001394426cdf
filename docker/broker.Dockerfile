# syntax=docker/dockerfile:1
# Build: docker build -f docker/broker.Dockerfile -t keel/broker .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p broker \
    && cp target/release/broker /broker

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 keel
COPY --from=build /broker /usr/local/bin/broker
USER keel
# The seed's ports: the API on 8082, metrics on 9090.
ENV HOST=0.0.0.0 PORT=8082 METRICS_PORT=9090 LOG_FORMAT=json
EXPOSE 8082 9090
HEALTHCHECK --interval=10s --timeout=3s CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8082"]
ENTRYPOINT ["/usr/local/bin/broker"]
