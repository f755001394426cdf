# Keel tasks. `just` is optional: every recipe is a plain command you can run yourself.

# Run every service in one process (needs only PostgreSQL).
up:
    cargo run -p keel -- up

# Every check and test, as CI runs them.
test *ARGS:
    scripts/test {{ARGS}}

# Create the database, run migrations, apply seed data.
migrate:
    cargo run -p keel -- migrate

fmt:
    cargo fmt --all

lint:
    cargo clippy --workspace --all-targets --all-features -- -D warnings

# Rewrite the checked-in OpenAPI documents after an intended API change.
openapi:
    UPDATE_OPENAPI=1 cargo nextest run -p sources-api --all-features checked_in_openapi
    UPDATE_OPENAPI=1 cargo nextest run -p listener checked_in_openapi
    UPDATE_OPENAPI=1 cargo nextest run -p ingestion checked_in_openapi
    UPDATE_OPENAPI=1 cargo nextest run -p broker checked_in_openapi
