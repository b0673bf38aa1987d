"""Issue 26, defect 8: a small gzip holding one huge line (200 MB here, 1 GiB in the report) is
quarantined as `too_long` with memory that does not grow with the line: the readers stop keeping a
line past the limit and stream on to its newline. Each load runs in its own process so that its
peak resident memory (VmHWM, or ru_maxrss without /proc) is the load's alone; the bound is far
below the line's size."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from datetime import date

import pytest

DAY = date(2026, 3, 1)
LINE_MB = 200
PEAK_LIMIT_MB = 300   # the process with pyarrow, psycopg and the loader imported is ~150 MB; the line is 200 MB
UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"
TS = f"{DAY}T10:00:00+00:00"
ORDERS_HEADER = ("order_id,customer_id,email,created_at,updated_at,status,currency,total_amount,"
                 "discount_amount,coupon_code\n")

GOOD = {
    "weblogs": f'10.0.0.1 - - [{DAY:%d/%b/%Y}:10:00:00 +0000] "GET /p HTTP/1.1" 200 5 "-" "{UA}"\n',
    "shop": f"o-1,c-1,ann@example.com,{TS},{TS},paid,EUR,10.00,0.00,\n",
    "email": json.dumps({"sg_event_id": "e-1", "event": "delivered", "email": "ann@example.com",
                         "timestamp": 1772359200, "campaign_id": "cmp-1"}) + "\n",
}
FILES = {"weblogs": "access.log.gz", "shop": "orders.csv.gz", "email": "events.jsonl.gz"}
HEADS = {"weblogs": '10.0.0.2 - - [01/Mar/2026:10:00:00 +0000] "GET /', "shop": "o-2,c-1,", "email": '{"reason": "'}

LOAD = """
import json, resource, sys
from datetime import date
from pathlib import Path
import psycopg
from ecrm.intervals import day_interval
from ecrm.load.ingest import ingest
url, source, folder = sys.argv[1:4]
with psycopg.connect(url, autocommit=True) as conn:
    results = ingest(conn, source, Path(folder), day_interval(date(2026, 3, 1)))
    rows = conn.execute("select reason_code, _line, length(raw_text) from quarantine.rejected_rows").fetchall()
# VmHWM is this process image's own peak: ru_maxrss keeps the forking parent's (pytest's) peak across exec.
status = Path("/proc/self/status")
hwm = [int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("VmHWM:")] \
    if status.exists() else [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]
print(json.dumps({"peak_mb": hwm[0] / 1024,
                  "results": [[r.file, r.rows_read, r.rows_loaded, r.rows_quarantined] for r in results],
                  "quarantine": rows}))
"""


def write_file(path, source: str) -> None:
    """good line, one line of LINE_MB megabytes, good line, written in chunks (the test keeps no copy)."""
    header = ORDERS_HEADER if source == "shop" else ""
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write((header + GOOD[source]).encode() + HEADS[source].encode())
        chunk = b"x" * (1 << 20)
        for _ in range(LINE_MB):
            out.write(chunk)
        out.write(b"\n" + GOOD[source].replace("o-1", "o-3").replace("e-1", "e-3").replace("/p", "/q").encode())


@pytest.mark.parametrize("source", ["weblogs", "shop", "email"])
def test_a_gzip_with_a_200_mb_line_is_quarantined_without_holding_the_line(db_url, tmp_path, source):
    folder = tmp_path / source / DAY.isoformat()
    folder.mkdir(parents=True)
    write_file(folder / FILES[source], source)
    for name in ("customers.csv", "order_lines.csv") if source == "shop" else ():
        (folder / name).write_text({"customers.csv": "customer_id,email,first_name,country,signed_up_at,"
                                    "updated_at,accepts_marketing\n",
                                    "order_lines.csv": "order_id,line_number,product_id,product_name,category,"
                                    "quantity,unit_price,discount_amount,updated_at\n"}[name])
    done = subprocess.run([sys.executable, "-c", LOAD, db_url, source, str(folder)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["peak_mb"] < PEAK_LIMIT_MB, f"peak RSS {report['peak_mb']:.0f} MB for a {LINE_MB} MB line"
    mine = [r for r in report["results"] if r[0].endswith(FILES[source])]
    assert [r[1:] for r in mine] == [[3, 2, 1]]                  # read, loaded, quarantined
    assert [(code, line) for code, line, _ in report["quarantine"]] == [("too_long", 3 if source == "shop" else 2)]
    assert report["quarantine"][0][2] < 10_000                   # a prefix of the line, not the line
