-- Raw landing tables, the quarantine and the load ledger.
-- Applied idempotently by `ecrm warehouse init` (and before every load), so every statement
-- must be safe to run again.
create schema if not exists raw;
create schema if not exists quarantine;
create schema if not exists ops;

-- Shop export: customers, latest version wins (natural key customer_id).
create table if not exists raw.customers (
    customer_id        text primary key,
    email              text not null,
    first_name         text,
    country            text,
    signed_up_at       timestamptz not null,
    updated_at         timestamptz not null,
    accepts_marketing  boolean not null,
    _file              text not null,
    _line              integer not null,
    _load_id           bigint not null
);

-- Shop export: orders, latest version wins (natural key order_id).
create table if not exists raw.orders (
    order_id         text primary key,
    customer_id      text not null,
    email            text not null,
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    status           text not null,        -- placed | paid | shipped | cancelled | refunded
    currency         text not null,        -- ISO 4217
    total_amount     numeric(12, 2) not null,  -- after discount, incl. all lines
    discount_amount  numeric(12, 2) not null,
    coupon_code      text,
    _file            text not null,
    _line            integer not null,
    _load_id         bigint not null
);

-- Every (order, status, updated_at) ever seen, so refunds and cancellations keep their history.
create table if not exists raw.order_status_history (
    order_id    text not null,
    status      text not null,
    updated_at  timestamptz not null,
    _load_id    bigint not null,
    primary key (order_id, updated_at, status)
);

-- Shop export: order lines (natural key order_id, line_number), latest version wins.
create table if not exists raw.order_lines (
    order_id         text not null,
    line_number      integer not null,
    product_id       text not null,
    product_name     text not null,
    category         text not null,
    quantity         integer not null,
    unit_price       numeric(12, 2) not null,
    discount_amount  numeric(12, 2) not null,
    updated_at       timestamptz not null,
    _file            text not null,
    _line            integer not null,
    _load_id         bigint not null,
    primary key (order_id, line_number)
);

-- Web access log requests, one row per parsed log line; the interval's rows are replaced on rerun.
create table if not exists raw.web_requests (
    requested_at     timestamptz not null,
    remote_addr      text not null,
    remote_user      text,
    method           text,
    path             text not null,
    query_string     text,
    protocol         text,
    status           integer not null,
    bytes_sent       bigint,
    referrer         text,
    user_agent       text,
    is_bot           boolean not null,
    is_static        boolean not null,
    utm_source       text,
    utm_medium       text,
    utm_campaign     text,
    customer_token   text,    -- `ct` query parameter of email click-throughs
    order_id         text,    -- `order` parameter of /checkout/complete (links a visitor to an order)
    _file            text not null,
    _line            integer not null,
    _load_id         bigint not null,
    -- (_file, _line) is the natural key; the index uses the load id, a bigint, because indexing the
    -- file path text on every row costs a third of the COPY time.
    primary key (_load_id, _line)
);
create index if not exists web_requests_requested_at on raw.web_requests (requested_at);

-- ESP events (SendGrid event-webhook shape), deduplicated by event id.
create table if not exists raw.email_events (
    event_id        text primary key,     -- sg_event_id
    event           text not null,        -- processed | delivered | open | click | bounce | unsubscribe | spamreport | dropped | deferred
    email           text not null,
    occurred_at     timestamptz not null,
    campaign_id     text,
    customer_id     text,
    is_machine_open boolean not null default false,
    bounce_type     text,                 -- hard | soft (bounce events)
    reason          text,
    url             text,                 -- click events
    _file           text not null,
    _line           integer not null,
    _load_id        bigint not null
);
create index if not exists email_events_occurred_at on raw.email_events (occurred_at);
-- Campaign marts re-derive one campaign's events at a time.
create index if not exists email_events_campaign on raw.email_events (campaign_id);

-- ESP campaign metadata.
create table if not exists raw.email_campaigns (
    campaign_id   text primary key,
    name          text not null,
    sent_at       timestamptz not null,
    audience      text not null,      -- the audience (sync model) the campaign was sent to
    variant       text,
    _file         text not null,
    _line         integer not null,
    _load_id      bigint not null
);

-- Rows that could not be loaded: nothing is dropped silently.
create table if not exists quarantine.rejected_rows (
    rejected_id    bigserial primary key,
    source         text not null,        -- orders | order_lines | customers | web_logs | email_events | email_campaigns
    _file          text not null,
    _line          integer not null,
    reason         text not null,
    raw_text       text,
    _load_id       bigint not null,
    rejected_at    timestamptz not null default now()
);
create index if not exists rejected_rows_load on quarantine.rejected_rows (_load_id);

-- One row per file load attempt: rows_read = rows_loaded + rows_quarantined for every succeeded row.
create table if not exists ops.load_ledger (
    load_id           bigserial primary key,
    source            text not null,
    file              text not null,
    file_size         bigint not null,
    checksum          text not null,       -- sha256 of the file bytes
    interval_start    timestamptz not null,
    interval_end      timestamptz not null,
    run_id            text,
    rows_read         bigint,
    rows_loaded       bigint,
    rows_quarantined  bigint,
    status            text not null,       -- running | succeeded | failed | skipped_duplicate
    error             text,
    started_at        timestamptz not null default now(),
    finished_at       timestamptz
);
create index if not exists load_ledger_source_interval on ops.load_ledger (source, interval_start);

-- Raw indexes the daily incremental dbt models need to find what changed since
-- run_date - lookback without reading the whole history (see docs/marts.md).
create index if not exists orders_created_at on raw.orders (created_at);
create index if not exists orders_updated_at on raw.orders (updated_at);
create index if not exists orders_customer on raw.orders (customer_id);
create index if not exists order_status_history_updated_at on raw.order_status_history (updated_at);
create index if not exists order_lines_updated_at on raw.order_lines (updated_at);
-- stg_esp__email_events trims campaign_id: the campaign marts look events up by that expression.
create index if not exists email_events_campaign_trimmed on raw.email_events ((nullif(trim(campaign_id), '')));

-- Quarantine reason codes (a fixed vocabulary, see ecrm.sources.REASON_CODES); older rows have none.
alter table quarantine.rejected_rows add column if not exists reason_code text;
create index if not exists rejected_rows_reason_code on quarantine.rejected_rows (source, reason_code);

-- One row per ingest run, committed before its load transaction begins: a run killed mid-load
-- (process, machine or server) stays `running`, and the next run of the source marks it
-- `abandoned` once its database session is gone (its load rolled back with that session).
create table if not exists ops.ingest_runs (
    ingest_run_id   bigserial primary key,
    source          text not null,
    folder          text not null,
    interval_start  timestamptz not null,
    interval_end    timestamptz not null,
    run_id          text,
    status          text not null default 'running'
                    check (status in ('running', 'succeeded', 'failed', 'abandoned')),
    error           text,
    backend_pid     integer,
    backend_start   timestamptz,
    abandoned_by    bigint,
    started_at      timestamptz not null default now(),
    finished_at     timestamptz
);
create index if not exists ingest_runs_running on ops.ingest_runs (source) where status = 'running';

-- Keys the warehouse's own SQL uses, readable by the owner only (no grant to BI or anyone): the
-- `visitor_id` HMAC key of intermediate.int_web_page_views (dbt_project/macros/visitor_key.sql),
-- 64 bytes, ECRM_VISITOR_KEY (origin 'env', stored by ecrm.warehouse.ensure_visitor_key) or
-- generated once (origin 'generated'); fingerprint = md5 of the key as given, to tell a change.
create table if not exists ops.secrets (
    name        text primary key,
    value       bytea not null,
    fingerprint text not null,
    origin      text not null,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);
revoke all on ops.secrets from public;

-- Loads are replaced by file, not by day (a file holds lines of several days): the ledger keeps the
-- day folder and the window of timestamps the load took; replaced loads' rows are found by load id.
alter table ops.load_ledger add column if not exists folder text;
alter table ops.load_ledger add column if not exists window_start timestamptz;
alter table ops.load_ledger add column if not exists window_end timestamptz;
alter table ops.load_ledger add column if not exists quarantined_by_code jsonb;  -- {"too_late": 3, ...}
create index if not exists load_ledger_checksum on ops.load_ledger (source, checksum);
create index if not exists load_ledger_file on ops.load_ledger (source, file);
create index if not exists email_events_load on raw.email_events (_load_id);
