-- The outbox of a service that announces its changes (keel-events): a change and the messages
-- announcing it commit in one transaction; the relay (Kafka) or embedded-log consumers read
-- the rows in transaction order. Applied to the schema of each service with an outbox, with
-- its own history table (`_keel_outbox_migrations`).
--
-- Written to be a no-op where the table already exists in this shape: sources-api's outbox
-- was built by its own migrations (sources/0002, 0004-0007) before keel-events owned it.

create table if not exists outbox (
    id bigserial primary key,
    topic text not null,
    event_type text not null,
    -- The message key: one key's messages stay in one partition, in order.
    key text not null,
    -- [[name, value], ...] in the order they are sent.
    headers jsonb not null,
    -- json, not jsonb: the payload is kept byte for byte as serialized.
    payload json not null,
    created_at timestamptz not null default now(),
    published_at timestamptz,
    -- Readers go in transaction order and only past finished transactions, so a row that
    -- commits late is never skipped.
    txid xid8 not null default pg_current_xact_id()
);

-- The relay reads unpublished rows in transaction order from the start every round; this index
-- holds only the rows still to publish, which keeps that read cheap however large the outbox is.
create index if not exists outbox_unpublished_idx on outbox (txid, id) where published_at is null;
-- Embedded-log consumers read one topic at a time in (txid, id) order.
create index if not exists outbox_topic_txid_id_idx on outbox (topic, txid, id);
-- Retention finds old rows (they arrive in created_at order) in a few block ranges.
create index if not exists outbox_created_at_brin on outbox using brin (created_at);
