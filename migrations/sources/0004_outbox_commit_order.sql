-- Readers of the outbox (the relay, the embedded log) go in transaction order and only past
-- rows whose transaction is finished, so a row that commits late is never skipped.
alter table outbox add column txid xid8 not null default pg_current_xact_id();
create index outbox_txid_id_idx on outbox (txid, id);
