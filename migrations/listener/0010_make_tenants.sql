-- Many new orgs' tenants in one statement and one commit, each as make_tenant makes it. A
-- burst of new orgs asked one at a time, sixteen at once: each rename's commit resets every
-- cached plan of every session of the database, and under load each took up to 250 ms while
-- the orgs' sources waited. Left out, for the caller to make one at a time: an org whose lock
-- another session holds (a replica making it, perhaps cloning: this statement never waits for
-- it), and one for which no spare is left. The caller sends the orgs sorted, so replicas take
-- their locks in one order.
CREATE FUNCTION make_tenants(orgs text[], accounts text[], tenants text[])
RETURNS TABLE (org_id text, customer_id bigint, spare text, account_taken boolean)
LANGUAGE plpgsql
SET search_path = cost, pg_catalog
AS $$
DECLARE
    i int;
    made bigint;
    taken text;
    key text;
BEGIN
    FOR i IN 1 .. coalesce(array_length(orgs, 1), 0) LOOP
        CONTINUE WHEN NOT pg_try_advisory_xact_lock(hashtext('keel.tenant'), hashtext(tenants[i]));
        made := NULL;
        taken := NULL;
        -- A subtransaction each: an account number another org holds fails only its org.
        BEGIN
            SELECT m.customer_id, m.spare INTO made, taken
            FROM make_tenant(orgs[i], accounts[i], tenants[i]) m;
        EXCEPTION WHEN unique_violation THEN
            GET STACKED DIAGNOSTICS key = CONSTRAINT_NAME;
            IF key IS DISTINCT FROM 'api_customer_account_id_key' THEN
                RAISE;
            END IF;
            org_id := orgs[i];
            customer_id := NULL;
            spare := NULL;
            account_taken := true;
            RETURN NEXT;
            CONTINUE;
        END;
        CONTINUE WHEN made IS NULL;
        org_id := orgs[i];
        customer_id := made;
        spare := taken;
        account_taken := false;
        RETURN NEXT;
    END LOOP;
END
$$;
