# syntax=docker/dockerfile:1
# Build: docker build -f docker/sources-api.Dockerfile -t keel/sources-api .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p sources-api \
    && cp target/release/sources-api /sources-api

FROM debian:bookworm-slim
# libssl3: librdkafka speaks TLS (SASL_SSL) through OpenSSL; everything else uses rustls.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 keel
COPY --from=build /sources-api /usr/local/bin/sources-api
USER keel
ENV HOST=0.0.0.0 PORT=8000 LOG_FORMAT=json
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8000"]
ENTRYPOINT ["/usr/local/bin/sources-api"]
