-- The broker's schema `broker`: deployments (desired spec, phase, observed state), the
-- callbacks owed to managers (a durable outbox), and an audit record per operation.

-- One row per deployment. The row is the source of truth and the work queue at once: a
-- deployment in Provisioning or Deleting is owed work, claimed under a lease, so a killed
-- broker's work is taken up again once the lease ends. Drivers create and delete
-- idempotently, so work resumed halfway is safe.
CREATE TABLE deployments (
    id                 text PRIMARY KEY CHECK (id ~ '^deploy-[0-9a-f]{32}$'),
    namespace          text NOT NULL,
    resource_type      text NOT NULL,
    resource_name      text NOT NULL,
    team               text NOT NULL,
    owner              text,
    callback_url       text NOT NULL,
    -- The checked spec with its defaults (what a repeat is compared with).
    spec               jsonb NOT NULL,
    -- The driver target serving it (a name from the configuration).
    target             text NOT NULL,
    phase              text NOT NULL CHECK (phase IN ('Provisioning', 'Ready', 'Failed', 'Deleting', 'Deleted')),
    message            text NOT NULL,
    health             text CHECK (health IN ('Healthy', 'Degraded', 'Unhealthy')),
    endpoint           text,
    port               integer,
    connection_secret  text,
    -- Credentials sealed with the broker's key; readable once (`credentials_read_at`).
    credentials        bytea,
    credentials_read_at timestamptz,
    actual             jsonb,
    drift              jsonb NOT NULL DEFAULT '[]',
    last_checked       timestamptz,
    leased_until       timestamptz,
    attempts           integer NOT NULL DEFAULT 0,
    -- Bumped by every request that changes what is owed; work done for an older generation
    -- does not overwrite a newer one's phase.
    generation         bigint NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
-- One live deployment per natural key; a Deleted one leaves the key free.
CREATE UNIQUE INDEX deployments_natural_key ON deployments (namespace, resource_type, resource_name)
    WHERE phase <> 'Deleted';
CREATE INDEX deployments_owed ON deployments (updated_at) WHERE phase IN ('Provisioning', 'Deleting');
CREATE INDEX deployments_namespace ON deployments (namespace, resource_type, resource_name);

-- Callbacks, delivered in order per deployment with retries; `dead` after the last attempt,
-- re-sendable through the API.
CREATE TABLE callbacks (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    deployment_id  text NOT NULL REFERENCES deployments (id),
    url            text NOT NULL,
    -- The exact body signed and sent.
    body           text NOT NULL,
    state          text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts       integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    leased_until   timestamptz,
    last_error     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    delivered_at   timestamptz
);
CREATE INDEX callbacks_pending ON callbacks (deployment_id, id) WHERE state = 'pending';
CREATE INDEX callbacks_dead ON callbacks (id) WHERE state = 'dead';

-- Who asked for what (KIDP's "audit logging" consideration).
CREATE TABLE audit (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT now(),
    client         text NOT NULL,
    -- The first 8 hex digits of the SHA-256 of the bearer token used (never the token).
    token          text NOT NULL,
    action         text NOT NULL,
    deployment_id  text,
    namespace      text,
    outcome        text NOT NULL
);
CREATE INDEX audit_deployment ON audit (deployment_id);
