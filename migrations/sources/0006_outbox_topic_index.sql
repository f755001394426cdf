-- Embedded-log consumers read one topic at a time in (txid, id) order. Without the topic in
-- the index, a consumer of a quiet topic (platform.sources.status) scanned every row of the
-- busy one on each poll, a cost growing with the outbox. The (txid, id) index served only
-- those reads; the relay has its own partial index.
create index outbox_topic_txid_id_idx on outbox (topic, txid, id);
drop index outbox_txid_id_idx;
