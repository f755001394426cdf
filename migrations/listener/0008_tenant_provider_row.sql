-- A provider's row in its tenant's schema, written through one function so that the statements
-- that write it have the same text for every tenant. With the schema in the text, each tenant's
-- statement was a prepared statement of its own on each pooled connection: never used often
-- enough for a generic plan (it was planned on every run, 0.8 ms of the link's 2.4 ms) and,
-- with more tenants than sqlx's statement cache holds, evicting the listener's other
-- statements. The dynamic insert inside is a one-row statement, cheap to plan. VOLATILE (the
-- default), so it sees the provider row the calling statement has just inserted.
CREATE FUNCTION put_tenant_provider(tenant text, provider uuid, name text, type text)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    EXECUTE format('INSERT INTO %I.reporting_tenant_api_provider (uuid, name, type, provider_id) '
                   'VALUES ($1, $2, $3, $1) ON CONFLICT (uuid) DO UPDATE SET name = excluded.name',
                   tenant)
        USING provider, name, type;
    RETURN 1;
END
$$;
