-- Retention deletes outbox rows older than OUTBOX_RETENTION_HOURS. Rows arrive in created_at
-- order, so a BRIN index finds the old ones in a few block ranges; it costs inserts next to
-- nothing, unlike a b-tree on the write path.
create index outbox_created_at_brin on outbox using brin (created_at);
