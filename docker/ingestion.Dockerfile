# syntax=docker/dockerfile:1
# Build: docker build -f docker/ingestion.Dockerfile -t keel/ingestion .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ingestion \
    && cp target/release/ingestion /ingestion

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 keel \
    && install -d -o keel /var/lib/keel/ingestion
COPY --from=build /ingestion /usr/local/bin/ingestion
USER keel
ENV HOST=0.0.0.0 INGRESS_PORT=8003 INGESTION_DATA_DIR=/var/lib/keel/ingestion LOG_FORMAT=json
EXPOSE 8003
HEALTHCHECK --interval=10s --timeout=3s CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8003"]
ENTRYPOINT ["/usr/local/bin/ingestion"]
