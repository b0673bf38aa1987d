import glob
import json
import os
import re

from pyspark.sql import SparkSession

spark = (
    SparkSession.builder.master("local[1]")
    .config("spark.driver.memory", "1g")
    .config("spark.ui.enabled", "false")
    .config("spark.sql.ansi.enabled", "false")
    .config("spark.sql.warehouse.dir", "/tmp/spark-probe/wh-constructs")
    .getOrCreate()
)
parser = spark._jsparkSession.sessionState().sqlParser()
RW = [  # (class, detect-in-error regex, rewrite pattern, replacement)
    ("at time zone", r"near 'at'|near 'time'|near 'zone'", r"\s+at\s+time\s+zone\s+'[^']*'", ""),
    ("::text / text type", r'"TEXT"', r"::\s*text\b", "::string"),
    ("timestamptz type", r'"TIMESTAMPTZ"', r"::\s*timestamptz\b", "::timestamp"),
    ("bit(32) type", r'"BIT', r"::\s*bit\s*\(\s*32\s*\)", ""),
    ("regex operator ~", r"near '~'", r"\s~\*?\s*'", " rlike '"),
    ("distinct on", r"near 'on'|`on`|near '\.'", r"distinct\s+on\s*\([^)]*\)", "distinct"),
    ("array(subquery)/any()", r"near 'select'|near 'array'", r"=\s*any\s*\(\s*array\s*\(", "in ((("),
]
res = {}
for f in sorted(glob.glob("/tmp/spark-probe/dbt_project/target/compiled/ecrm/models/**/*.sql", recursive=True)):
    name = os.path.basename(f)[:-4]
    sql = re.sub(r"--[^\n]*", "", open(f).read())
    found = []
    for _ in range(10):
        try:
            parser.parsePlan(sql)
            found.append("PARSES")
            break
        except Exception as e:
            m = " ".join(str(e).split())
            i = m.find("[")
            m = m[i:] if i >= 0 else m
            for cls, det, pat, rep in RW:
                if re.search(det, m[:200]) and re.search(pat, sql, re.I):
                    n = len(re.findall(pat, sql, re.I))
                    sql = re.sub(pat, rep, sql, flags=re.I)
                    found.append(f"{cls} x{n}")
                    break
            else:
                found.append("OTHER: " + m[:140])
                break
    res[name] = found
json.dump(res, open("/tmp/spark-probe/onion.json", "w"), indent=1)
for k, v in res.items():
    print(k, "|", " ; ".join(v))
# semantics checks (value-level, ansi off as dbt-spark forces)
S = {
    "regexp_replace(s,'A','x','gi') (PG: case-insens global)": "select regexp_replace('aAa','A','x','gi')",
    "regexp_replace backref \\\\1 (PG) ": "select regexp_replace('ab','(a)','\\\\1z')",
    "'-infinity'::timestamp": "select '-infinity'::timestamp",
    "date - date type": "select typeof(date'2026-06-03' - date'2026-06-01')",
    "('x'||substr(md5(..),1,8))::bit(32)::bigint": "select ('x' || substr(md5('holdout:c1'), 1, 8))::bit(32)::bigint",
    "= any(array(select ...))": "select 1 = any(array(select 1))",
    "string_to_array": "select string_to_array('a|b','|')",
    "x = any(split(...)) (Spark rewrite)": "select array_contains(split('a|b','\\\\|'), 'a')",
}
for k, q in S.items():
    try:
        v = spark.sql(q).collect()[0][0]
    except Exception as e:
        m = " ".join(str(e).split())
        i = m.find("[")
        v = (m[i:] if i >= 0 else m)[:110]
    print(f"SEM {k:55s} -> {v!r}")
