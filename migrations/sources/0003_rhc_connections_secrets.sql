-- Red Hat Connector connections (shared between a tenant's sources) and tenant secrets.

create table rhc_connections (
    id bigserial primary key,
    tenant_id bigint not null references tenants (id),
    rhc_id text not null,
    extra jsonb,
    availability_status text,
    availability_status_error text,
    last_checked_at timestamptz,
    last_available_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint rhc_connections_tenant_rhc_id_key unique (tenant_id, rhc_id)
);

create table source_rhc_connections (
    source_id bigint not null references sources (id) on delete cascade,
    rhc_connection_id bigint not null references rhc_connections (id) on delete cascade,
    tenant_id bigint not null references tenants (id),
    created_at timestamptz not null default now(),
    primary key (source_id, rhc_connection_id)
);
create index source_rhc_connections_rhc_idx on source_rhc_connections (rhc_connection_id);

create table secrets (
    id bigserial primary key,
    tenant_id bigint not null references tenants (id),
    user_id text,
    name text,
    authtype text,
    username text,
    -- AES-256-GCM, as authentications.password_encrypted.
    password_encrypted bytea,
    extra jsonb,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint secrets_tenant_name_key unique (tenant_id, name)
);

create trigger rhc_connections_updated_at before update on rhc_connections
    for each row execute function set_updated_at();
create trigger secrets_updated_at before update on secrets
    for each row execute function set_updated_at();
