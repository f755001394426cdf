# syntax=docker/dockerfile:1
# Build: docker build -f docker/externalsource-controller.Dockerfile -t keel/externalsource-controller .
# One image, two binaries: the controller and its hook-executor sidecar (which needs the tools
# the whitelist allows, jq here).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p externalsource-controller \
    && cp target/release/externalsource-controller target/release/externalsource-hook-executor /

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates jq \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 keel
COPY --from=build /externalsource-controller /externalsource-hook-executor /usr/local/bin/
USER keel
ENV LOG_FORMAT=json ARTIFACT_SERVER_PORT=8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/externalsource-controller"]
