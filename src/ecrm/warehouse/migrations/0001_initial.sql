-- 0001: the warehouse's own tables as they stood when migrations were introduced (issue 19),
-- gathered from the modules that used to apply them on every call: raw, quarantine and ops
-- (the loader), the quality gate's results, the published tables, the mailer's state and audit,
-- the build, stage and watermark bookkeeping. dbt owns intermediate, marts, sync and seeds;
-- ecrm.predict owns its marts.* output tables.
--
-- Every statement is `if not exists` / `or replace`, so 0001 also upgrades in place a warehouse
-- made by the code before migrations (it has ops.schema_version and some or all of these tables):
-- the columns later versions added are created with their tables here and added by the
-- `alter table ... add column if not exists` lines for older tables. New changes go in 0002_....
create schema if not exists raw;
create schema if not exists quarantine;
create schema if not exists ops;
create schema if not exists mailer;
create schema if not exists published;

-- ===== raw: the landing tables, loaded idempotently per day (ecrm.load.ingest) =====

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
-- The daily incremental dbt models find what changed since run_date - lookback by these (docs/marts.md).
create index if not exists orders_created_at on raw.orders (created_at);
create index if not exists orders_updated_at on raw.orders (updated_at);
create index if not exists orders_customer on raw.orders (customer_id);

-- Every (order, status, updated_at) ever seen, so refunds and cancellations keep their history.
create table if not exists raw.order_status_history (
    order_id    text not null,
    status      text not null,
    updated_at  timestamptz not null,
    _load_id    bigint not null,
    primary key (order_id, updated_at, status)
);
create index if not exists order_status_history_updated_at on raw.order_status_history (updated_at);

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
create index if not exists order_lines_updated_at on raw.order_lines (updated_at);

-- Web access log requests, one row per parsed log line; a changed file replaces its own load.
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
-- stg_esp__email_events trims campaign_id: the campaign marts look events up by that expression.
create index if not exists email_events_campaign_trimmed on raw.email_events ((nullif(trim(campaign_id), '')));
create index if not exists email_events_load on raw.email_events (_load_id);

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

-- ===== quarantine: rows that could not be loaded (nothing is dropped silently) =====

create table if not exists quarantine.rejected_rows (
    rejected_id    bigserial primary key,
    source         text not null,        -- orders | order_lines | customers | web_logs | email_events | email_campaigns
    _file          text not null,
    _line          integer not null,
    reason         text not null,
    raw_text       text,
    _load_id       bigint not null,
    rejected_at    timestamptz not null default now(),
    reason_code    text                  -- ecrm.sources.REASON_CODES; rows of early versions have none
);
alter table quarantine.rejected_rows add column if not exists reason_code text;
create index if not exists rejected_rows_load on quarantine.rejected_rows (_load_id);
create index if not exists rejected_rows_reason_code on quarantine.rejected_rows (source, reason_code);

-- ===== ops: the loader's ledger and runs, secrets, stages, builds, the gate, publishes =====

-- One row per file load attempt: rows_read = rows_loaded + rows_quarantined for every succeeded row.
-- Loads are replaced by file, not by day (a file holds lines of several days): the ledger keeps the
-- day folder and the window of timestamps the load took; replaced loads' rows are found by load id.
create table if not exists ops.load_ledger (
    load_id              bigserial primary key,
    source               text not null,
    file                 text not null,
    file_size            bigint not null,
    checksum             text not null,       -- sha256 of the file bytes
    interval_start       timestamptz not null,
    interval_end         timestamptz not null,
    run_id               text,
    rows_read            bigint,
    rows_loaded          bigint,
    rows_quarantined     bigint,
    status               text not null,       -- running | succeeded | failed | skipped_duplicate | replaced
    error                text,
    started_at           timestamptz not null default now(),
    finished_at          timestamptz,
    folder               text,
    window_start         timestamptz,
    window_end           timestamptz,
    quarantined_by_code  jsonb                -- {"too_late": 3, ...}
);
alter table ops.load_ledger add column if not exists folder text;
alter table ops.load_ledger add column if not exists window_start timestamptz;
alter table ops.load_ledger add column if not exists window_end timestamptz;
alter table ops.load_ledger add column if not exists quarantined_by_code jsonb;
create index if not exists load_ledger_source_interval on ops.load_ledger (source, interval_start);
create index if not exists load_ledger_checksum on ops.load_ledger (source, checksum);
create index if not exists load_ledger_file on ops.load_ledger (source, file);

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

-- The orders pull's high-water mark per source (ecrm.sources.shop_db).
create table if not exists ops.source_watermarks (
    source       text primary key,
    high_water   timestamptz not null,
    updated_at   timestamptz not null default now()
);

-- Stages finished per day (ecrm.pipeline): the DAGs' sensors wait on these rows.
create table if not exists ops.stage_runs (
    stage        text not null,
    run_date     date not null,
    run_id       text,
    detail       jsonb,
    finished_at  timestamptz not null default now(),
    primary key (stage, run_date)
);

-- One row per dbt build (action 'build') or gate + publish (action 'publish') under the build lock
-- (ecrm.transform.build_lock).
create table if not exists ops.build_runs (
    build_id     bigint generated always as identity primary key,
    run_date     date not null,
    run_id       text,
    host         text,
    pid          integer,
    backend_pid  integer not null,
    started_at   timestamptz not null default now(),
    finished_at  timestamptz,
    status       text not null,  -- starting | running | succeeded | failed | refused | abandoned
    error        text,
    action       text not null default 'build'
);
alter table ops.build_runs add column if not exists action text not null default 'build';

-- The checksum of the dbt seeds last loaded (seeds load only when they changed).
create table if not exists ops.dbt_seed_state (
    project    text primary key,
    checksum   text not null,
    loaded_at  timestamptz not null default now()
);

-- The quality gate's results (ecrm.quality.gate), with the severity overrides in force for the run
-- (null when the check ran at its suite's severity), and the rows behind failed checks.
create table if not exists ops.quality_results (
    run_date           date not null,
    checkpoint         text not null,
    suite              text not null,
    expectation        text not null,
    column_name        text,
    observed_value     text,
    passed             boolean not null,
    blocking           boolean not null,
    checked_at         timestamptz not null default now(),
    default_severity   text,
    override_severity  text,
    override_source    text,
    override_by        text,
    override_reason    text
);
alter table ops.quality_results add column if not exists default_severity text;
alter table ops.quality_results add column if not exists override_severity text;
alter table ops.quality_results add column if not exists override_source text;
alter table ops.quality_results add column if not exists override_by text;
alter table ops.quality_results add column if not exists override_reason text;
create index if not exists quality_results_run_date on ops.quality_results (run_date);
create table if not exists ops.quality_quarantine (
    run_date        date not null,
    checkpoint      text not null,
    suite           text not null,
    expectation     text not null,
    table_name      text not null,
    row_key         jsonb,
    row_data        jsonb not null,
    reason          text not null,
    blocking        boolean not null,
    quarantined_at  timestamptz not null default now()
);
create index if not exists quality_quarantine_run_date on ops.quality_quarantine (run_date, suite);

-- The gate's suites read the run date and thresholds the gate sets on each of GX's connections.
create or replace function ops.gate_run_date() returns date language sql stable
    as $$ select current_setting('ecrm.run_date')::date $$;
create or replace function ops.gate_day_start() returns timestamptz language sql stable
    as $$ select current_setting('ecrm.run_date')::date::timestamp at time zone 'UTC' $$;
create or replace function ops.gate_day_end() returns timestamptz language sql stable
    as $$ select (current_setting('ecrm.run_date')::date + 1)::timestamp at time zone 'UTC' $$;
create or replace function ops.gate_setting(name text) returns numeric language sql stable
    as $$ select current_setting('ecrm.' || name)::numeric $$;

-- One row per published day (ecrm.publish); the gate's audience-volume check reads it.
create table if not exists ops.publish_runs (
    as_of_date         date primary key,
    audiences          integer not null,
    members            integer not null,
    published_at       timestamptz not null default now(),
    segment_customers  integer
);
alter table ops.publish_runs add column if not exists segment_customers integer;

-- ===== published: the audited day's segments, replaced in one transaction (ecrm.publish) =====

create table if not exists published.audience_members (
    audience      text not null,
    customer_id   text not null,
    email         text not null,
    first_name    text,
    segment       text not null,
    as_of_date    date not null,
    primary key (audience, customer_id)
);
create table if not exists published.customer_segments (
    snapshot_date   date not null,
    customer_id     text not null primary key,
    segment         text not null,
    rfm_cell        text,
    r_score         integer,
    f_score         integer,
    m_score         integer,
    recency_days    integer,
    frequency       bigint not null,
    monetary        numeric(14, 2) not null,
    is_holdout      boolean,
    is_contactable  boolean
);
create table if not exists published.segment_summary (
    snapshot_date          date not null,
    segment                text not null primary key,
    customers              bigint not null,
    contactable_customers  bigint not null,
    holdout_customers      bigint not null,
    revenue                numeric(14, 2) not null,
    total_customers        bigint not null,
    total_revenue          numeric(14, 2) not null,
    customer_share         numeric(12, 6),
    revenue_share          numeric(12, 6)
);

-- ===== mailer: what the ESP has, and the audit of every run and member change (ecrm.mailer) =====

create sequence if not exists mailer.sync_run_seq;
create table if not exists mailer.audience_state (
    target           text not null,
    audience         text not null,
    email_hash       text not null,
    customer_id      text not null,
    email            text not null,
    first_name       text,
    segment          text not null,
    attrs_hash       text not null,
    is_member        boolean not null,
    esp_id           text,
    first_added_day  date not null,
    last_pushed_day  date not null,
    removed_day      date,
    last_run_id      bigint not null,
    updated_at       timestamptz not null default now(),
    primary key (target, audience, email_hash)
);
create table if not exists mailer.sync_runs (
    run_id          bigint not null,
    audience        text not null,
    day             date not null,
    adapter         text not null,
    target          text not null,
    dry_run         boolean not null,
    status          text not null constraint sync_runs_status_check check (status in
                        ('running', 'succeeded', 'failed', 'refused', 'dry_run', 'abandoned')),
    members_before  integer not null,
    members_after   integer not null,
    adds            integer not null,
    updates         integer not null,
    removes         integer not null,
    compliance_removes integer not null default 0,
    excluded        integer not null,
    sent            integer not null default 0,
    rejected        integer not null default 0,
    error           text,
    started_at      timestamptz not null default now(),
    finished_at     timestamptz,
    duration_s      numeric(10, 3),
    abandoned_at    timestamptz,
    abandoned_by_run_id bigint,
    primary key (run_id, audience)
);
create index if not exists sync_runs_day on mailer.sync_runs (day, target);
create table if not exists mailer.sync_changes (
    run_id       bigint not null,
    audience     text not null,
    action       text not null check (action in ('add', 'update', 'remove', 'blocked')),
    email_hash   text not null,
    customer_id  text not null,
    segment      text,
    reason       text,
    result       text not null check (result in ('pending', 'sent', 'skipped', 'rejected', 'esp_suppressed',
                                                 'not_sent', 'excluded')),
    error        text,
    batch_key    text,
    sent_at      timestamptz,
    primary key (run_id, audience, action, email_hash, customer_id)
);
create index if not exists sync_changes_email_hash on mailer.sync_changes (email_hash);
create index if not exists sync_changes_customer on mailer.sync_changes (customer_id);
create table if not exists mailer.esp_suppressions (
    target       text not null,
    email_hash   text not null,
    reason       text not null,
    run_id       bigint,
    created_at   timestamptz not null default now(),
    primary key (target, email_hash)
);

-- mailer.sync_runs of early versions: the columns and the 'abandoned' status they lacked (the
-- constraint is rebuilt only when it lacks 'abandoned', so a current table is not rescanned).
alter table mailer.sync_runs add column if not exists compliance_removes integer not null default 0;
alter table mailer.sync_runs add column if not exists abandoned_at timestamptz;
alter table mailer.sync_runs add column if not exists abandoned_by_run_id bigint;
do $$
begin
    if not exists (
        select 1 from pg_constraint
        where conrelid = 'mailer.sync_runs'::regclass and conname = 'sync_runs_status_check'
          and pg_get_constraintdef(oid) like '%abandoned%'
    ) then
        alter table mailer.sync_runs drop constraint if exists sync_runs_status_check;
        alter table mailer.sync_runs add constraint sync_runs_status_check check (status in
            ('running', 'succeeded', 'failed', 'refused', 'dry_run', 'abandoned'));
    end if;
end
$$;

-- Every change the mailer planned or made per member ("was this person in that day's audience?",
-- ecrm.mailer.audit): a view over the mailer's own tables, so dbt rebuilds never drop it.
create or replace view mailer.member_history as
select r.day, r.target, r.adapter, c.run_id, c.audience, c.action, c.result, c.reason, c.error,
       c.email_hash, c.customer_id, c.segment, c.sent_at, r.status as run_status, r.dry_run
from mailer.sync_changes as c
inner join mailer.sync_runs as r on r.run_id = c.run_id and r.audience = c.audience;

-- The code before migrations recorded the hash of its schema.sql here; ops.schema_migrations replaces it.
drop table if exists ops.schema_version;
