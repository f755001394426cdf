-- The relay reads unpublished rows in transaction order from the start every round, so a row
-- can never be passed over whatever order transactions finish in; this index holds only the
-- rows still to publish, which keeps that read cheap however large the outbox grows.
create index outbox_unpublished_idx on outbox (txid, id) where published_at is null;
