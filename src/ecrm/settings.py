"""One settings object, read from the environment (ECRM_*), so DAGs, the CLI and tests agree.

Nothing here holds a secret: credentials live in ECRM_WAREHOUSE_URL (or an Airflow connection)
and never in the repository; ECRM_VISITOR_KEY (the visitor_id HMAC key) is read from the
environment and kept out of repr() and logs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from upath import UPath


def project_root() -> Path:
    """The repository root: ECRM_HOME, else the folder holding dbt_project/ above this file or the cwd."""
    if os.environ.get("ECRM_HOME"):
        return Path(os.environ["ECRM_HOME"]).resolve()
    for candidate in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (candidate / "dbt_project").is_dir():
            return candidate
    return Path.cwd()


def dbt_target_dir(project_dir: str | os.PathLike) -> Path:
    """Where dbt writes its artifacts for `project_dir`: DBT_TARGET_PATH when set (relative to the
    project, as dbt reads it), else the project's target/."""
    return Path(project_dir) / os.environ.get("DBT_TARGET_PATH", "target")


def storage_path(value: str | os.PathLike) -> Path | UPath:
    """A folder the pipeline writes to: a local path, or any fsspec URL (s3://bucket/prefix, gs://...,
    memory://...), so workers on different machines share one outbox and one reports folder.

    Local folders (plain paths, file://) come back as a pathlib.Path, so the code that sets owner-only
    modes and renames atomically keeps working; URLs come back as a UPath (credentials and endpoint
    from the environment, as the storage's fsspec implementation reads them)."""
    if isinstance(value, UPath) and not is_local(value):
        return value
    path = UPath(value)
    if path.protocol in ("", "file", "local"):
        return Path(path.path)
    return path


def is_local(path: os.PathLike) -> bool:
    """True for a folder on this machine's disk (where file modes and atomic renames apply)."""
    return isinstance(path, Path)


# Placeholders, not anyone's address: `.invalid` is reserved (RFC 2606) and never delivered.
PLACEHOLDER_REPORT_FROM = '"ecrm report (set ECRM_REPORT_FROM)" <report@example.invalid>'
PLACEHOLDER_REPORT_TO = '"set ECRM_REPORT_TO" <marketing@example.invalid>'


@dataclass(frozen=True)
class Settings:
    root: Path
    warehouse_url: str | None  # None: use the embedded warehouse
    landing: str                # local folder or any fsspec URL (s3://bucket/prefix)
    outbox: Path | UPath        # local folder or any fsspec URL (ECRM_OUTBOX)
    data_dir: Path
    holdout_pct: int
    orders_lookback_days: int   # shop DB pull: re-read this many days for late refunds and edits
    web_lookback_days: int      # a day's web log may hold lines this many days older (dbt var web_lookback_days)
    email_lookback_days: int    # a day's ESP export may hold events this many days older (attribution window)
    clock_skew_minutes: int     # lines this far after the end of the folder's day still load
    shop_db_url: str | None     # the shop's own database (Airflow: connection `ecrm_shop_db`)
    # A re-delivered file must keep this share of its earlier load's rows to replace it (ECRM_MIN_REPLACE_SHARE).
    min_replace_share: float = 0.5
    # a day's loyalty ledger may hold events this many days older (ECRM_LOYALTY_LOOKBACK_DAYS)
    loyalty_lookback_days: int = 7
    # visitor_id HMAC key (ECRM_VISITOR_KEY); None: one generated and kept in the warehouse
    visitor_key: str | None = field(default=None, repr=False)
    # The shop's time zone (ECRM_SHOP_TIMEZONE): the simulated web server rotates its log at 06:25 there.
    shop_timezone: str = "Europe/Berlin"
    # Simulated sources delivered as real systems do (ECRM_SIM_DELIVERY, comma-separated of shop, email,
    # weblogs; "none": every simulated file holds exactly its UTC day). See ecrm.simulate.delivery.
    sim_delivery: str = "shop,email,weblogs"
    # The daily reports (ECRM_REPORTS, a local folder or any fsspec URL): <reports>/DAY/index.html and
    # email.html; default <data dir>/reports.
    reports: Path | UPath | None = None
    # The report's e-mail (<reports>/DAY/email.eml): From and To (comma-separated); the defaults are
    # placeholders under the reserved .invalid domain (ECRM_REPORT_FROM, ECRM_REPORT_TO); kept out of repr().
    report_from: str = field(default=PLACEHOLDER_REPORT_FROM, repr=False)
    report_to: str = field(default=PLACEHOLDER_REPORT_TO, repr=False)
    report_currency: str = "EUR"  # the shop's currency as the report writes it (ECRM_REPORT_CURRENCY)

    @property
    def dbt_project_dir(self) -> Path:
        return self.root / "dbt_project"

    @property
    def expectations_dir(self) -> Path:
        return self.root / "expectations"

    @property
    def embedded_dir(self) -> Path:
        return self.root / ".ecrm" / "warehouse"


def get_settings() -> Settings:
    root = project_root()
    data_dir = Path(os.environ.get("ECRM_DATA_DIR", root / "data"))
    return Settings(
        root=root,
        warehouse_url=os.environ.get("ECRM_WAREHOUSE_URL") or None,
        landing=os.environ.get("ECRM_LANDING", str(data_dir / "landing")),
        outbox=storage_path(os.environ.get("ECRM_OUTBOX") or data_dir / "outbox"),
        data_dir=data_dir,
        holdout_pct=int(os.environ.get("ECRM_HOLDOUT_PCT", "10")),
        orders_lookback_days=int(os.environ.get("ECRM_ORDERS_LOOKBACK_DAYS", "3")),
        web_lookback_days=int(os.environ.get("ECRM_WEB_LOOKBACK_DAYS", "3")),
        email_lookback_days=int(os.environ.get("ECRM_EMAIL_LOOKBACK_DAYS", "7")),
        clock_skew_minutes=int(os.environ.get("ECRM_CLOCK_SKEW_MINUTES", "10")),
        shop_db_url=os.environ.get("ECRM_SHOP_DB_URL") or None,
        min_replace_share=float(os.environ.get("ECRM_MIN_REPLACE_SHARE") or 0.5),
        loyalty_lookback_days=int(os.environ.get("ECRM_LOYALTY_LOOKBACK_DAYS", "7")),
        visitor_key=os.environ.get("ECRM_VISITOR_KEY") or None,
        shop_timezone=os.environ.get("ECRM_SHOP_TIMEZONE") or "Europe/Berlin",
        sim_delivery=os.environ.get("ECRM_SIM_DELIVERY", "shop,email,weblogs"),
        reports=storage_path(os.environ.get("ECRM_REPORTS") or data_dir / "reports"),
        report_from=os.environ.get("ECRM_REPORT_FROM") or PLACEHOLDER_REPORT_FROM,
        report_to=os.environ.get("ECRM_REPORT_TO") or PLACEHOLDER_REPORT_TO,
        report_currency=report_currency(),
    )


def report_currency() -> str:
    """The currency code the report prints money in (ECRM_REPORT_CURRENCY, default EUR): a label only,
    the warehouse does not convert."""
    return os.environ.get("ECRM_REPORT_CURRENCY") or "EUR"


def dbt_env(url: str) -> dict[str, str]:
    """Split a postgresql:// URL into the ECRM_PG_* variables that dbt_project/profiles.yml reads."""
    parts = urlsplit(url)
    return {
        "ECRM_PG_HOST": parts.hostname or "127.0.0.1",
        "ECRM_PG_PORT": str(parts.port or 5432),
        "ECRM_PG_USER": unquote(parts.username or "postgres"),
        "ECRM_PG_PASSWORD": unquote(parts.password or ""),
        "ECRM_PG_DATABASE": parts.path.lstrip("/") or "postgres",
    }
