"""When the simulated systems write their files, and which lines each file therefore holds.

Real files never line up with UTC days (docs/formats.md, issue 15); by default the simulator
delivers them the way real systems do, so every daily run exercises the loader's routing of lines
into the day of their own timestamp:

- **web logs**: logrotate runs at 06:25 in the shop's time zone (`ECRM_SHOP_TIMEZONE`, default
  Europe/Berlin). The file it leaves on day D, `weblogs/D/access.log-YYYYMMDD` (logrotate's
  `dateext` name, the rotation date), holds the requests that *finished* between the rotations of
  D-1 and D: most of the previous UTC day and the first hours of D (04:25 UTC in summer, 05:25 in
  winter; the day of a DST change is 23 or 25 hours long). nginx writes a line when the request
  finishes and stamps it with its start, so slow requests appear after faster later ones, and a
  request that started before a rotation but finished after it is in the next file.
- **ESP export**: written at 02:00 UTC and dropped into the folder of the day it ran: events of
  the 24 hours before, [D-1 02:00, D 02:00) UTC, and the campaigns sent in them. A file in day D's
  folder cannot hold lines after D's end (plus the loader's clock skew) without being quarantined as
  `future_timestamp`, so the export of 02:00 on D+1 belongs in D+1's folder, not D's.
- **shop export**: runs shortly after midnight UTC and re-reads the hour before its day as a
  safety margin (transactions that committed late): rows updated in [D 00:00 - 1 h, D+1 00:00),
  each with its latest state in that window. Rows of the last minutes of D-1 appear again in D's
  files; orders and customers merge by latest `updated_at`, order lines by key.

`ECRM_SIM_DELIVERY` (comma-separated `shop,email,weblogs`, `all` or `none`; default all three)
chooses which sources are delivered this way; the others hold exactly their UTC day (`access.log`,
`events.jsonl` of the day). With the rotated web log the run of day D has only D's first hours of
requests; the rest arrives with D+1's file and the 3-day web lookback rebuilds D. The gate audits
the web log of the last complete day, the day before the run date (`raw_web_requests`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from .common import SECONDS_PER_DAY, add_days, day_start

SOURCES = ("shop", "email", "weblogs")
ROTATE_AT = time(6, 25)           # logrotate's cron.daily (Debian's /etc/crontab), shop-local time
ESP_EXPORT_AT_S = 2 * 3600        # the ESP's daily export job, UTC
SHOP_EXPORT_OVERLAP_S = 3600     # the shop export re-reads the hour before its day


@dataclass(frozen=True)
class Delivery:
    """Which sources are delivered as real systems do (else aligned to UTC days), and where."""

    shop: bool = True
    email: bool = True
    weblogs: bool = False
    timezone: str = "Europe/Berlin"

    @classmethod
    def parse(cls, spec: str, timezone: str = "Europe/Berlin") -> Delivery:
        names = {part.strip() for part in spec.split(",") if part.strip()} - {"none"}
        if names == {"all"}:
            names = set(SOURCES)
        unknown = names - set(SOURCES)
        if unknown:
            raise ValueError(f"ECRM_SIM_DELIVERY: unknown source(s) {', '.join(sorted(unknown))}; "
                             f"use a comma-separated list of {', '.join(SOURCES)}, or none")
        ZoneInfo(timezone)  # fail early on a misspelt zone
        return cls("shop" in names, "email" in names, "weblogs" in names, timezone)

    @classmethod
    def from_settings(cls) -> Delivery:
        from ..settings import get_settings

        settings = get_settings()
        return cls.parse(settings.sim_delivery, settings.shop_timezone)

    # -- web logs ----------------------------------------------------------------------------------
    def rotation_ts(self, day: date) -> int:
        """Unix seconds of logrotate's run on `day` (06:25 shop-local time)."""
        local = datetime.combine(day, ROTATE_AT, tzinfo=ZoneInfo(self.timezone))
        return int(local.timestamp())

    def weblog_window(self, day: date) -> tuple[int, int]:
        """Finish times [start, end) of the requests in the log file of day's folder."""
        if not self.weblogs:
            return day_start(day), day_start(day) + SECONDS_PER_DAY
        return self.rotation_ts(add_days(day, -1)), self.rotation_ts(day)

    def weblog_name(self, day: date) -> str:
        return f"access.log-{day:%Y%m%d}" if self.weblogs else "access.log"

    # -- ESP ---------------------------------------------------------------------------------------
    def email_window(self, day: date) -> tuple[int, int]:
        """Event times [start, end) of the ESP export in day's folder."""
        if not self.email:
            return day_start(day), day_start(day) + SECONDS_PER_DAY
        return day_start(day) - SECONDS_PER_DAY + ESP_EXPORT_AT_S, day_start(day) + ESP_EXPORT_AT_S

    # -- shop --------------------------------------------------------------------------------------
    def shop_window(self, day: date) -> tuple[int, int]:
        """`updated_at` range [start, end) of the shop export in day's folder."""
        overlap = SHOP_EXPORT_OVERLAP_S if self.shop else 0
        return day_start(day) - overlap, day_start(day) + SECONDS_PER_DAY
