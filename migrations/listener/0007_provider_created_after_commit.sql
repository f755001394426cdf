-- The listener announces a new provider itself once the provider has committed. A NOTIFY
-- inside the provider's transaction took PostgreSQL's notification lock, one for the whole
-- cluster, from that transaction's commit until its WAL was flushed: every provider commit
-- queued behind the one before (measured as waits on `Lock:object` in pg_stat_activity).
DROP TRIGGER api_provider_created ON api_provider;
DROP FUNCTION notify_provider_created();
