"""The simulated shop's own database: the simulator's daily changes applied to shop.* tables.

Plays the shop's production database for the database pull mode (ecrm.sources.shop_db) in the
demo and tests. Rows the simulator deliberately corrupts for the file exports are skipped here:
a typed database could not hold them.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg

from ..sources import Reject
from ..sources.shop import SPECS, parse_shop_file

SHOP_DDL = """
create schema if not exists shop;
create table if not exists shop.customers (
    customer_id text primary key, email text not null, first_name text, country text,
    signed_up_at timestamptz not null, updated_at timestamptz not null, accepts_marketing boolean not null);
create table if not exists shop.orders (
    order_id text primary key, customer_id text not null, email text not null, created_at timestamptz not null,
    updated_at timestamptz not null, status text not null, currency text not null,
    total_amount numeric(12, 2) not null, discount_amount numeric(12, 2), coupon_code text, discount_codes jsonb);
alter table shop.orders add column if not exists discount_codes jsonb;
create table if not exists shop.order_lines (
    order_id text not null, line_number integer not null, product_id text not null, product_name text not null,
    category text not null, quantity integer not null, unit_price numeric(12, 2) not null,
    discount_amount numeric(12, 2) not null, updated_at timestamptz not null, primary key (order_id, line_number));
create index if not exists orders_updated_at on shop.orders (updated_at);
create index if not exists customers_updated_at on shop.customers (updated_at);
create index if not exists order_lines_updated_at on shop.order_lines (updated_at);
"""
EVERYTHING = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def apply_changes(shop_url: str, folder) -> int:
    """Upsert the export files in `folder` (shop/<day>/ or shop/initial/) into the shop database."""
    applied = 0
    with psycopg.connect(shop_url) as conn:
        conn.execute(SHOP_DDL)
        for name, spec in SPECS.items():
            path = folder / f"{name}.csv"
            if not path.exists():
                continue
            rows = [row for _, row in parse_shop_file(spec, path, EVERYTHING, fast=False) if not isinstance(row, Reject)]
            cols = ", ".join(spec.columns)
            keys = ", ".join(spec.key)
            updates = ", ".join(f"{c} = excluded.{c}" for c in spec.columns if c not in spec.key)
            with conn.cursor() as cur:
                cur.executemany(
                    f"insert into shop.{name} ({cols}) values ({', '.join(['%s'] * len(spec.columns))}) "
                    f"on conflict ({keys}) do update set {updates}", rows)
            applied += len(rows)
    return applied
