-- The listener's schema `cost`: Koku's public tables the listener writes (customers, tenants,
-- providers and their credentials and billing sources), the per-source sync state, and the
-- durable work queue. Ids from sources-api are bigint (Koku's int offset column overflowed).

CREATE TABLE api_customer (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid         uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    account_id   varchar(150) UNIQUE,
    org_id       varchar(36) NOT NULL UNIQUE,
    schema_name  text NOT NULL UNIQUE,
    date_created timestamptz NOT NULL DEFAULT now(),
    date_updated timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tenant (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schema_name varchar(63) NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Credentials with their secret fields sealed (AES-GCM, bound to the org); `digest` is the
-- SHA-256 of the plain credentials, so equal credentials share a row as in Koku without the
-- secret being readable.
CREATE TABLE api_providerauthentication (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid        uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    credentials jsonb NOT NULL,
    digest      text NOT NULL UNIQUE
);

CREATE TABLE api_providerbillingsource (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid        uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    data_source jsonb NOT NULL UNIQUE
);

CREATE TABLE api_provider (
    uuid                   uuid PRIMARY KEY,
    name                   varchar(256) NOT NULL,
    type                   varchar(50) NOT NULL,
    authentication_id      bigint NOT NULL REFERENCES api_providerauthentication (id),
    billing_source_id      bigint NOT NULL REFERENCES api_providerbillingsource (id),
    customer_id            bigint NOT NULL REFERENCES api_customer (id),
    setup_complete         boolean NOT NULL DEFAULT false,
    created_timestamp      timestamptz NOT NULL DEFAULT now(),
    polling_timestamp      timestamptz,
    data_updated_timestamp timestamptz,
    active                 boolean NOT NULL DEFAULT true,
    paused                 boolean NOT NULL DEFAULT false,
    additional_context     jsonb NOT NULL DEFAULT '{}',
    -- Koku's duplicate rule: one provider per credentials, billing source and customer.
    CONSTRAINT api_provider_duplicate UNIQUE (authentication_id, billing_source_id, customer_id)
);
CREATE INDEX api_provider_customer ON api_provider (customer_id);

-- One row per platform source the listener follows (Koku's api_sources), with an explicit
-- state instead of Koku's pending_* flags and empty-status gate.
CREATE TABLE api_sources (
    source_id          bigint PRIMARY KEY,
    source_uuid        uuid UNIQUE,
    name               text,
    auth_header        text NOT NULL,
    "offset"           bigint NOT NULL,
    account_id         text,
    org_id             text NOT NULL,
    source_type        text NOT NULL DEFAULT '',
    -- {"credentials": {...}} with secret fields sealed.
    authentication     jsonb NOT NULL DEFAULT '{}',
    billing_source     jsonb NOT NULL DEFAULT '{}',
    koku_uuid          text UNIQUE,
    provider_id        uuid,
    application_id     bigint,
    paused             boolean NOT NULL DEFAULT false,
    -- The availability status last sent to sources-api.
    status             jsonb NOT NULL DEFAULT '{}',
    additional_context jsonb NOT NULL DEFAULT '{}',
    state              text NOT NULL DEFAULT 'new' CHECK (state IN
                           ('new', 'details', 'settings_complete', 'creating', 'linked', 'failed',
                            'pending_update', 'pending_delete')),
    state_reason       text,
    created_timestamp  timestamptz NOT NULL DEFAULT now(),
    linked_timestamp   timestamptz,
    updated_timestamp  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_sources_org ON api_sources (org_id, source_id);

-- The durable work queue: at most one operation per source, claimed with
-- FOR UPDATE SKIP LOCKED and leased until `leased_until`, so a crashed worker's claim expires
-- and another picks it up. A newer trigger bumps `generation` (and makes the row due again);
-- the worker only removes the row when the generation it ran is still the latest.
CREATE TABLE operations (
    source_id   bigint PRIMARY KEY REFERENCES api_sources (source_id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('create', 'update', 'delete')),
    generation  bigint NOT NULL DEFAULT 1,
    attempts    integer NOT NULL DEFAULT 0,
    run_at      timestamptz NOT NULL DEFAULT now(),
    leased_until timestamptz,
    last_error  text,
    parked_at   timestamptz,
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX operations_due ON operations (run_at) WHERE parked_at IS NULL;

-- Tenant schemas are cloned from the migrated template: tables with their columns, defaults,
-- identity columns (fresh sequences), constraints, indexes and comments, then foreign keys,
-- then the migration history, so the clone is at the template's version. Tenant migrations
-- must therefore use identity columns (a serial's default would still name the template's
-- sequence) and only tables, indexes and constraints; extend this function before adding
-- views or functions to tenant schemas.
CREATE FUNCTION clone_schema(source text, target text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    t record;
BEGIN
    EXECUTE format('CREATE SCHEMA %I', target);
    FOR t IN
        SELECT c.relname
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = source AND c.relkind IN ('r', 'p')
        ORDER BY c.relname
    LOOP
        EXECUTE format('CREATE TABLE %I.%I (LIKE %I.%I INCLUDING ALL)',
                       target, t.relname, source, t.relname);
    END LOOP;
    FOR t IN
        SELECT c.relname, con.conname, pg_get_constraintdef(con.oid) AS def
        FROM pg_constraint con
        JOIN pg_class c ON c.oid = con.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = source AND con.contype = 'f'
    LOOP
        EXECUTE format('ALTER TABLE %I.%I ADD CONSTRAINT %I %s', target, t.relname, t.conname,
                       replace(t.def, quote_ident(source) || '.', quote_ident(target) || '.'));
    END LOOP;
    EXECUTE format('INSERT INTO %I._sqlx_migrations SELECT * FROM %I._sqlx_migrations',
                   target, source);
END
$$;
