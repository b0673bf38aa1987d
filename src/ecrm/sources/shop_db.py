"""Orders from the shop's own PostgreSQL: an incremental pull by `updated_at` watermark.

Discount codes: shop.orders.discount_codes (json/jsonb, Shopify's discount_codes array) when the
shop's database has it; COPY writes it into the CSV as the JSON text the file loader reads.

Each run extracts the rows changed in [window_start, interval_end) of shop.customers, shop.orders
and shop.order_lines with `COPY (select ...) TO STDOUT` into CSV files in the landing zone
(landing/shop_db/<day>/), then loads those files with the same loader, checks, quarantine and
ledger as file exports. window_start is interval_start minus a lookback (late refunds and edits
are picked up), or the watermark of the last successful pull when that is older (a missed day is
never skipped); with no watermark yet, the whole history is pulled once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg

from .shop import SPECS


def pull_window(conn: psycopg.Connection, source: str, interval: tuple[datetime, datetime],
                lookback: timedelta, history_begins: datetime) -> tuple[datetime, datetime]:
    row = conn.execute("select high_water from ops.source_watermarks where source = %s", (source,)).fetchone()
    if row is None:
        return history_begins, interval[1]
    return min(interval[0] - lookback, row[0]), interval[1]


def extract(shop_url: str, folder, window: tuple[datetime, datetime], schema: str = "shop") -> dict[str, int]:
    """Write <table>.csv for each shop table into `folder`; returns bytes written per table."""
    from .. import lineage

    with lineage.job("ecrm.extract.shop_db", "pull the shop database's changed rows into landing files") as run:
        written = _extract(shop_url, folder, window, schema)
        if run:  # the shop's tables in, the landing files out (ecrm.lineage names both)
            run.read(*(lineage.table(shop_url, f"{schema}.{name}") for name in SPECS))
            run.wrote(*(lineage.file(folder / f"{name}.csv") for name in SPECS))
    return written


def _extract(shop_url: str, folder, window: tuple[datetime, datetime], schema: str) -> dict[str, int]:
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, int] = {}
    with psycopg.connect(shop_url) as shop:
        # ISO timestamps in UTC, so the files are byte-identical whoever runs the pull.
        shop.execute("set timezone = 'UTC'; set datestyle = 'ISO, YMD'")
        for name, spec in SPECS.items():
            # A shop database without the optional columns (discounts) is pulled without them: the
            # loader reads their absence as unknown (NULL), as it does for older export files.
            present = {r[0] for r in shop.execute(
                "select column_name from information_schema.columns where table_schema = %s and table_name = %s",
                (schema, name))}
            columns = [c for c in spec.columns if c in present or c not in spec.optional]
            query = (f"copy (select {', '.join(columns)} from {schema}.{name} "
                     f"where updated_at >= %s and updated_at < %s order by {', '.join(spec.key)}) "
                     "to stdout (format csv, header)")
            size = 0
            with shop.cursor().copy(query, window) as copy, (folder / f"{name}.csv").open("wb") as out:
                for chunk in copy:
                    out.write(chunk)
                    size += len(chunk)
            written[name] = size
    return written


def advance_watermark(conn: psycopg.Connection, source: str, high_water: datetime) -> None:
    conn.execute("insert into ops.source_watermarks (source, high_water) values (%s, %s) on conflict (source) do "
                 "update set high_water = greatest(ops.source_watermarks.high_water, excluded.high_water), "
                 "updated_at = now()", (source, high_water))
