-- The ingestion service's schema `ingestion`: its durable task queue and the OpenShift
-- payloads received at the upload endpoint.

-- Tasks are claimed with FOR UPDATE SKIP LOCKED and leased until `leased_until`, so a killed
-- worker's task is picked up again once the lease ends. A file task's rows and its completion
-- commit in one transaction, so a retried file never doubles. `dedup_key` keeps one pending
-- task per provider check, file, summary or upload.
CREATE TABLE tasks (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('check', 'file', 'summary', 'upload')),
    dedup_key     text NOT NULL UNIQUE,
    payload       jsonb NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    run_at        timestamptz NOT NULL DEFAULT now(),
    leased_until  timestamptz,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tasks_due ON tasks (run_at);

-- OpenShift operator payloads as received (the object itself is in the object store).
-- `waiting`: no provider of the org has the payload's cluster id yet; processed once one does.
CREATE TABLE uploads (
    request_id   text PRIMARY KEY,
    org_id       text NOT NULL,
    account      text,
    object_key   text NOT NULL,
    size         bigint NOT NULL,
    cluster_id   text NOT NULL,
    manifest     jsonb NOT NULL,
    -- The CSV files the payload holds (names as in the tarball).
    files        text[] NOT NULL,
    state        text NOT NULL DEFAULT 'received'
                     CHECK (state IN ('received', 'waiting', 'queued', 'failed')),
    reason       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX uploads_waiting ON uploads (org_id, cluster_id) WHERE state = 'waiting';

-- Per provider: why its last run failed, so a failed provider is not taken for one still
-- processing (Koku's rule would leave it alone for days) and the read API can say why.
CREATE TABLE provider_runs (
    provider_uuid uuid PRIMARY KEY,
    failed_at     timestamptz,
    failure       text,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
