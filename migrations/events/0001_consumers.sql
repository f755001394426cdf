-- State of the event library, shared by every service that consumes: where each consumer group
-- of the embedded log stands, and messages handlers gave up on.

create table consumer_positions (
    group_id text not null,
    topic text not null,
    -- The last handled outbox row, in (txid, id) order.
    txid bigint not null,
    outbox_id bigint not null,
    updated_at timestamptz not null default now(),
    primary key (group_id, topic)
);

create table dead_letters (
    id bigserial primary key,
    group_id text not null,
    topic text not null,
    partition integer not null,
    "offset" bigint not null,
    key bytea,
    -- [[name, value], ...]
    headers jsonb not null,
    payload bytea,
    error text not null,
    created_at timestamptz not null default now()
);
create index dead_letters_group_topic_idx on dead_letters (group_id, topic);
