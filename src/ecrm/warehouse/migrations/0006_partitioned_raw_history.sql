-- 0006: raw.web_requests and raw.email_events partitioned by day (docs/scaling.md "Retention").
--
-- The two raw tables that grow by the day (2M web log lines a day at 1M customers) become
-- range-partitioned on the timestamp the loader windows and dbt filters on (requested_at,
-- occurred_at), one partition per UTC day, plus a DEFAULT partition so that no row is ever
-- refused. Retention (`ecrm warehouse retention --keep-days N`) then detaches and drops whole
-- days instead of a delete + vacuum over the whole table.
--
-- Upgraded in place, in this migration's one transaction: the table is renamed, the partitioned
-- table is created under its name with a partition per day its rows hold, the rows are moved with
-- insert ... select, the views over it (dbt's staging views) are re-pointed at the new table by
-- `create or replace view` with their own definition, and the old table is dropped.
--
-- Keys: PostgreSQL requires a partitioned table's primary key to hold the partition key.
-- web_requests: (_load_id, _line, requested_at) -- (_load_id, _line) is unique by construction.
-- email_events: (event_id, occurred_at); a unique index per partition cannot see an event id
-- loaded on another day, so the loader keeps detecting duplicates with its own query over the
-- whole table (ecrm.load.ingest._merge, under the source's advisory lock: `duplicate_event`).
-- quarantine.rejected_rows stays one table: it holds the few lines that could not load (not a
-- share of the traffic) and is deleted by load id when a file is re-delivered.

-- Partitions of `parent` for the UTC days from_day..to_day (inclusive) that it lacks; returns
-- how many it created. Rows of those days that the DEFAULT partition caught are moved into them.
-- A partition is created apart and attached (SHARE UPDATE EXCLUSIVE on the parent: readers and
-- writers of the other days go on); an advisory lock orders concurrent callers (loader, migrate).
create or replace function ops.ensure_day_partitions(parent regclass, from_day date, to_day date)
returns integer language plpgsql as $$
declare
    schema_name text;
    table_name text;
    key_column text;
    part text;
    day date;
    created integer := 0;
begin
    select n.nspname, c.relname, a.attname into schema_name, table_name, key_column
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
    join pg_partitioned_table p on p.partrelid = c.oid
    join pg_attribute a on a.attrelid = c.oid and a.attnum = p.partattrs[0]
    where c.oid = parent;
    if key_column is null then
        raise exception '% is not a partitioned table', parent;
    end if;
    for day in select d::date from generate_series(from_day, to_day, interval '1 day') as d loop
        part := format('%s_p%s', table_name, to_char(day, 'YYYYMMDD'));
        continue when to_regclass(format('%I.%I', schema_name, part)) is not null;
        perform pg_advisory_xact_lock(hashtext('ecrm-partitions'));
        -- made meanwhile by the caller we waited for: pg_class read with a new snapshot (to_regclass
        -- reads a cache that does not yet know of it)
        continue when exists (select from pg_class where relname = part
                              and relnamespace = schema_name::regnamespace);
        execute format('create table %I.%I (like %s including defaults)', schema_name, part, parent);
        if to_regclass(format('%I.%I', schema_name, table_name || '_default')) is not null then
            execute format('with moved as (delete from %I.%I where %I >= $1 and %I < $2 returning *) '
                           'insert into %I.%I select * from moved',
                           schema_name, table_name || '_default', key_column, key_column, schema_name, part)
                using day::timestamp at time zone 'UTC', (day + 1)::timestamp at time zone 'UTC';
        end if;
        execute format('alter table %s attach partition %I.%I for values from (%L) to (%L)', parent, schema_name,
                       part, day::timestamp at time zone 'UTC', (day + 1)::timestamp at time zone 'UTC');
        created := created + 1;
    end loop;
    return created;
end
$$;

-- This migration's own helper (pg_temp: gone with the session): `schema_name.table_name`
-- rebuilt as a table partitioned by day on key_column, with every row and view kept.
create function pg_temp.partition_by_day(schema_name text, table_name text, key_column text)
returns void language plpgsql as $$
declare
    old_name text := table_name || '_unpartitioned';
    view_names text[];
    view_definitions text[];
    grant_row record;
    day date;
begin
    select coalesce(array_agg(v.name order by v.name), '{}'), coalesce(array_agg(v.definition order by v.name), '{}')
    into view_names, view_definitions
    from (select distinct r.ev_class::regclass::text as name, pg_get_viewdef(r.ev_class) as definition
          from pg_depend d
          join pg_rewrite r on r.oid = d.objid
          where d.classid = 'pg_rewrite'::regclass
            and d.refobjid = format('%I.%I', schema_name, table_name)::regclass
            and r.ev_class <> d.refobjid) as v;
    execute format('alter table %I.%I rename to %I', schema_name, table_name, old_name);
    execute format('create table %I.%I (like %I.%I including defaults) partition by range (%I)',
                   schema_name, table_name, schema_name, old_name, key_column);
    execute format('create table %I.%I partition of %I.%I default',
                   schema_name, table_name || '_default', schema_name, table_name);
    -- the table's grants (a reader role given raw.* by hand) go to the new one
    for grant_row in select acl.privilege_type, acl.grantee from pg_class c, aclexplode(c.relacl) as acl
                     where c.oid = format('%I.%I', schema_name, old_name)::regclass and acl.grantee <> c.relowner loop
        execute format('grant %s on %I.%I to %s', grant_row.privilege_type, schema_name, table_name,
                       case when grant_row.grantee = 0 then 'public' else quote_ident(grant_row.grantee::regrole::text) end);
    end loop;
    for day in execute format('select distinct (%I at time zone ''UTC'')::date from %I.%I order by 1',
                              key_column, schema_name, old_name) loop
        perform ops.ensure_day_partitions(format('%I.%I', schema_name, table_name)::regclass, day, day);
    end loop;
    execute format('insert into %I.%I select * from %I.%I', schema_name, table_name, schema_name, old_name);
    for i in 1 .. coalesce(array_length(view_names, 1), 0) loop
        execute format('create or replace view %s as %s', view_names[i], view_definitions[i]);
    end loop;
    execute format('drop table %I.%I', schema_name, old_name);
end
$$;

-- ===== raw.web_requests, by requested_at =====
select pg_temp.partition_by_day('raw', 'web_requests', 'requested_at');
alter table raw.web_requests add primary key (_load_id, _line, requested_at);
create index web_requests_requested_at on raw.web_requests (requested_at);

-- ===== raw.email_events, by occurred_at =====
select pg_temp.partition_by_day('raw', 'email_events', 'occurred_at');
-- Also the loader's lookup of event ids already loaded (any day): the key's first column.
alter table raw.email_events add primary key (event_id, occurred_at);
create index email_events_occurred_at on raw.email_events (occurred_at);
create index email_events_campaign on raw.email_events (campaign_id);
create index email_events_campaign_trimmed on raw.email_events ((nullif(trim(campaign_id), '')));
create index email_events_load on raw.email_events (_load_id);

analyze raw.web_requests;
analyze raw.email_events;
