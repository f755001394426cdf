-- Endpoints, authentications (passwords encrypted by the service), the links between
-- applications and authentications, and the event outbox.

create table endpoints (
    id bigserial primary key,
    tenant_id bigint not null references tenants (id),
    source_id bigint not null references sources (id) on delete cascade,
    role text,
    port integer,
    "default" boolean not null default false,
    scheme text,
    host text,
    path text,
    verify_ssl boolean,
    certificate_authority text,
    receptor_node text,
    availability_status text not null default 'in_progress',
    availability_status_error text,
    last_checked_at timestamptz,
    last_available_at timestamptz,
    paused_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index endpoints_source_id_idx on endpoints (source_id);
-- At most one default endpoint, and one endpoint per role, per source.
create unique index endpoints_default_per_source on endpoints (source_id) where "default";
create unique index endpoints_role_per_source on endpoints (source_id, role) where role is not null;

create table authentications (
    id bigserial primary key,
    tenant_id bigint not null references tenants (id),
    -- The source the resource belongs to; deleting the source deletes its authentications.
    source_id bigint not null references sources (id) on delete cascade,
    resource_type text not null check (resource_type in ('Source', 'Endpoint', 'Application', 'Authentication')),
    resource_id bigint not null,
    name text,
    authtype text,
    username text,
    -- AES-256-GCM: 12-byte nonce followed by the ciphertext and tag. Never the plain text.
    password_encrypted bytea,
    extra jsonb,
    version text,
    availability_status text,
    availability_status_error text,
    last_checked_at timestamptz,
    last_available_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index authentications_source_id_idx on authentications (source_id);
create index authentications_resource_idx on authentications (resource_type, resource_id);

create table application_authentications (
    id bigserial primary key,
    tenant_id bigint not null references tenants (id),
    application_id bigint not null references applications (id) on delete cascade,
    authentication_id bigint not null references authentications (id) on delete cascade,
    paused_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint application_authentications_unique unique (application_id, authentication_id)
);
create index application_authentications_authentication_id_idx
    on application_authentications (authentication_id);

-- Events written in the same transaction as the change they describe; a relay publishes them.
create table outbox (
    id bigserial primary key,
    topic text not null,
    event_type text not null,
    -- The message key: org id, else account number, else the identity header.
    key text not null,
    -- [[name, value], ...] in the order they are sent.
    headers jsonb not null,
    -- json, not jsonb: the payload is kept byte for byte as serialized.
    payload json not null,
    created_at timestamptz not null default now(),
    published_at timestamptz
);
-- No index beyond the key: the relay reads forward by id from its last position.

create trigger endpoints_updated_at before update on endpoints
    for each row execute function set_updated_at();
create trigger authentications_updated_at before update on authentications
    for each row execute function set_updated_at();
create trigger application_authentications_updated_at before update on application_authentications
    for each row execute function set_updated_at();
