import json

from pyspark.sql import SparkSession

spark = (
    SparkSession.builder.master("local[1]")
    .config("spark.driver.memory", "1g")
    .config("spark.ui.enabled", "false")
    .config("spark.sql.shuffle.partitions", "1")
    .config("spark.sql.ansi.enabled", "false")
    .config("spark.sql.warehouse.dir", "/tmp/spark-probe/wh-constructs")
    .getOrCreate()
)
spark.sql(
    "create or replace temp view t as select timestamp'2026-06-01 10:00:00' as ts, date'2026-06-01' as d, 'a@b.com' as s, 3 as n, cast(1.5 as decimal(12,2)) as amt, true as b, 'x|y' as lst, binary('k') as bin"
)
spark.sql("create table if not exists pq (id int, v string) using parquet")
C = {
    "at time zone 'UTC'": "select cast(d as timestamp) at time zone 'UTC' from t",
    "x::date / ::timestamp / ::integer": "select s::string, d::timestamp, ts::date, '3'::integer from t",
    "x::text": "select n::text from t",
    "x::numeric(12,2)": "select n::numeric(12,2) from t",
    "type text in DDL/seed": "create table tt (a text) using parquet",
    "type timestamptz": "select null::timestamptz",
    "interval '1 day' arithmetic": "select ts + interval '1 day', d - interval '7 days' from t",
    "date + integer": "select d + 1, d - 7 from t",
    "date - date": "select d - date'2026-01-01' from t",
    "timestamp - timestamp": "select ts - ts from t",
    "extract(epoch from interval)": "select extract(epoch from ts - ts) from t",
    "filter (where ...)": "select count(*) filter (where b), sum(amt) filter (where n > 1) from t",
    "bool_or / bool_and": "select bool_or(b), bool_and(b) from t",
    "distinct on": "select distinct on (s) s, n from t",
    "left join lateral (subquery) on true": "select * from t left join lateral (select t.n + 1 as m) x on true",
    "cross join lateral (subquery with limit)": "select * from t cross join lateral (select n2 from (select t.n as n2) order by n2 limit 1) x",
    "generate_series(0,63)": "select * from generate_series(0, 63) as i",
    "regex operator ~": "select s ~ '^[a-z]+' from t",
    "regexp_replace(..., 'gi') 4-arg flags": "select regexp_replace(s, 'A', 'x', 'gi') from t",
    "regexp_replace backrefs \\1": "select regexp_replace(s, '(a)', '\\\\1z') from t",
    "= any(string_to_array(...))": "select s = any(string_to_array(lst, '|')) from t",
    "is distinct from": "select s is distinct from 'x' from t",
    "md5(text)": "select md5(s) from t",
    "sha256(bytea) / encode(...,'hex')": "select encode(sha256(bin), 'hex') from t",
    "convert_to(text,'UTF8')": "select convert_to(s, 'UTF8') from t",
    "get_byte / to_hex / string_agg": "select string_agg(lpad(to_hex(get_byte(bin, 0)), 2, '0'), '') from t",
    "left(s, n) / greatest": "select left(s, 2), greatest(n, 1) from t",
    "'-infinity'::timestamp": "select '-infinity'::timestamp",
    "ntile": "select ntile(5) over (order by n) from t",
    "delete from (parquet table)": "delete from pq where id = 1",
    "merge into (parquet table)": "merge into pq using (select 1 as id, 'a' as v) s on pq.id = s.id when matched then update set * when not matched then insert *",
    "insert overwrite (parquet)": "insert overwrite pq select 1, 'a'",
    "analyze <table> (PG form)": "analyze pq",
    "analyze table .. compute statistics": "analyze table pq compute statistics",
    "create index": "create index i on pq (id)",
    "grant select": "grant select on pq to someone",
    "do $$ ... $$ (PL/pgSQL)": "do $x$ begin null; end $x$",
    "create schema": "create schema if not exists sx",
}
out = {}
for k, q in C.items():
    try:
        df = spark.sql(q)
        if not q.lower().startswith(("create", "delete", "merge", "insert", "analyze", "grant", "do")):
            df.collect()
        out[k] = "ok"
    except Exception as e:
        m = " ".join(str(e).split())
        i = m.find("[")
        out[k] = (m[i:] if i >= 0 else m)[:160]
for k, v in out.items():
    print(f"{k:42s} {v}")
json.dump(out, open("/tmp/spark-probe/constructs.json", "w"), indent=1)
