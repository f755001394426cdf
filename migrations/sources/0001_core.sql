-- Tenants, the type catalogue, sources and applications of the Platform Sources API.

create function set_updated_at() returns trigger language plpgsql as $$
begin
    new.updated_at = now();
    return new;
end;
$$;

create table tenants (
    id bigserial primary key,
    external_tenant text,
    org_id text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
-- A tenant is found by org id first, then by account number (sources-api-go's GetOrCreateTenant).
create unique index tenants_org_id_key on tenants (org_id) where org_id is not null;
create unique index tenants_external_tenant_key on tenants (external_tenant)
    where org_id is null and external_tenant is not null;

create table source_types (
    id bigserial primary key,
    name text not null unique,
    product_name text not null,
    category text not null,
    vendor text not null,
    schema jsonb not null default '{}',
    icon_url text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create table application_types (
    id bigserial primary key,
    name text not null unique,
    display_name text not null,
    dependent_applications jsonb not null default '[]',
    supported_source_types jsonb not null default '[]',
    supported_authentication_types jsonb not null default '{}',
    resource_ownership text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create table meta_data (
    id bigserial primary key,
    application_type_id bigint not null references application_types (id) on delete cascade,
    name text not null,
    payload jsonb not null default 'null',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (application_type_id, name)
);

create table sources (
    id bigserial primary key,
    tenant_id bigint not null references tenants (id),
    source_type_id bigint not null references source_types (id),
    name text not null,
    uid text not null unique,
    version text,
    imported text,
    source_ref text,
    app_creation_workflow text not null default 'manual_configuration',
    availability_status text not null default 'in_progress',
    last_checked_at timestamptz,
    last_available_at timestamptz,
    paused_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint sources_tenant_name_key unique (tenant_id, name)
);

create table applications (
    id bigserial primary key,
    tenant_id bigint not null references tenants (id),
    source_id bigint not null references sources (id) on delete cascade,
    application_type_id bigint not null references application_types (id),
    extra jsonb not null default '{}',
    superkey_data jsonb,
    availability_status text not null default 'in_progress',
    availability_status_error text,
    last_checked_at timestamptz,
    last_available_at timestamptz,
    paused_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint applications_app_type_id_source_id_tenant_id_idx
        unique (application_type_id, source_id, tenant_id)
);
create index applications_source_id_idx on applications (source_id);

create trigger tenants_updated_at before update on tenants
    for each row execute function set_updated_at();
create trigger source_types_updated_at before update on source_types
    for each row execute function set_updated_at();
create trigger application_types_updated_at before update on application_types
    for each row execute function set_updated_at();
create trigger meta_data_updated_at before update on meta_data
    for each row execute function set_updated_at();
create trigger sources_updated_at before update on sources
    for each row execute function set_updated_at();
create trigger applications_updated_at before update on applications
    for each row execute function set_updated_at();
