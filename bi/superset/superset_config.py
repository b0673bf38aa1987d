"""Superset configuration shipped with the dashboards (SUPERSET_CONFIG_PATH points here; `ecrm bi deploy`
sets it). Everything that differs per machine or is secret comes from the environment, never from git:

- SUPERSET_SECRET_KEY (required): signs sessions and encrypts the stored connection passwords;
- ECRM_SUPERSET_METADATA_URI: Superset's own metadata database (default: SQLite in ECRM_SUPERSET_HOME,
  `.superset/` in the repository).

The content security policy allows only Superset's own origin: the UI's telemetry pixel (Scarf, requested
from an outside host on every page whatever SCARF_ANALYTICS says) and web fonts from public CDNs are
refused by the browser, so a dashboard viewer's browser talks to this server only (docs/bi.md).
"""

import os
from pathlib import Path

_HOME = Path(os.environ.get("ECRM_SUPERSET_HOME") or Path(__file__).resolve().parents[2] / ".superset")

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]
SQLALCHEMY_DATABASE_URI = os.environ.get("ECRM_SUPERSET_METADATA_URI") or f"sqlite:///{_HOME / 'superset.db'}"
DATA_DIR = str(_HOME)

SCARF_ANALYTICS = False  # asked politely; the CSP below is what actually stops the pixel
# read-only BI: no file uploads, no CTAS, no DML (the login has only ecrm_bi_reader anyway)
PREVENT_UNSAFE_DB_CONNECTIONS = True
FEATURE_FLAGS = {"DASHBOARD_RBAC": False, "ALERT_REPORTS": False}
THEME_FONT_URL_ALLOWED_DOMAINS: list[str] = []

_CSP = {
    "base-uri": ["'self'"],
    "default-src": ["'self'"],
    "img-src": ["'self'", "blob:", "data:"],  # no https://apachesuperset.gateway.scarf.sh, no static.scarf.sh
    "worker-src": ["'self'", "blob:"],
    "connect-src": ["'self'"],  # no map tiles, no mapbox
    "object-src": "'none'",
    "style-src": ["'self'", "'unsafe-inline'"],
    "font-src": ["'self'", "data:"],
    "script-src": ["'self'", "'strict-dynamic'"],
    "frame-ancestors": ["'self'"],
}
TALISMAN_ENABLED = True
TALISMAN_CONFIG = {
    "content_security_policy": _CSP,
    "content_security_policy_nonce_in": ["script-src"],
    "force_https": False,
    "session_cookie_secure": False,
}
TALISMAN_DEV_CONFIG = TALISMAN_CONFIG
CONTENT_SECURITY_POLICY_WARNING = False
