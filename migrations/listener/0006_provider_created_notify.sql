-- Tells the ingestion service that a provider was created, once its creation commits (Koku
-- queues the new provider's report check with transaction.on_commit).
CREATE FUNCTION notify_provider_created() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_notify('keel_provider_created', NEW.uuid::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER api_provider_created AFTER INSERT ON api_provider
    FOR EACH ROW EXECUTE FUNCTION notify_provider_created();
