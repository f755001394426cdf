-- Tenant schemas cloned ahead of time: the first source of a new org renames one to
-- org<org_id> instead of waiting for a clone, and the listener clones new spares in the
-- background. Spares are migrated at start like tenants.
CREATE TABLE spare_tenants (
    schema_name varchar(63) PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);
