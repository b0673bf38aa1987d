-- 0008: the loyalty program's points ledger (issue 29), an optional fourth source loaded with the
-- shop's files (landing/loyalty/<day>/ledger.csv|jsonl, docs/formats.md "Loyalty ledger").
--
-- One row per ledger event as the loyalty app exports it. points is the signed change of the
-- member's balance: earned > 0, redeemed and expired < 0 (the loader gives them their sign when the
-- app writes amounts), adjusted either way, tier_changed 0 with the new tier. member_id is the app's
-- member; customer_id and email (either may be missing) link it to the shop's customer in dbt.
-- A shop without a loyalty program never writes a row here.
create table if not exists raw.loyalty_events (
    event_id     text primary key,
    member_id    text not null,
    customer_id  text,
    email        text,
    event_type   text not null,       -- earned | redeemed | expired | adjusted | tier_changed
    points       bigint not null,
    order_id     text,
    tier         text,                -- the new tier (tier_changed) or the member's tier when the app says
    occurred_at  timestamptz not null,
    _file        text not null,
    _line        integer not null,
    _load_id     bigint not null
);
create index if not exists loyalty_events_occurred_at on raw.loyalty_events (occurred_at);
create index if not exists loyalty_events_load on raw.loyalty_events (_load_id);
