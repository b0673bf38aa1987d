"""The gate's configuration: expectations/gate.yml, overridden by ECRM_GATE_* environment variables.

Thresholds are numbers the GX queries read from the database session (ops.gate_setting(name)),
and severities override each expectation's meta.severity, so neither needs the suites' JSON to
change when an operator wants a check to warn instead of block for a while.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..settings import get_settings

SEVERITIES = ("blocking", "warning")


@dataclass(frozen=True)
class GateConfig:
    settings: dict[str, float] = field(default_factory=dict)
    severity: dict[str, str] = field(default_factory=dict)  # "<suite>.<name>" or "<name>" -> blocking|warning
    quarantine_limit: int = 1000

    def severity_of(self, suite: str, name: str, default: str) -> str:
        return self.severity.get(f"{suite}.{name}") or self.severity.get(name) or default


def _parse_severity(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, value = item.partition("=")
        value = value.strip().lower()
        if value not in SEVERITIES:
            raise ValueError(f"ECRM_GATE_SEVERITY: {item!r} must be <suite>.<expectation>=blocking|warning")
        out[key.strip()] = value
    return out


def load_config(path: Path | None = None) -> GateConfig:
    path = path or Path(os.environ.get("ECRM_GATE_CONFIG") or get_settings().expectations_dir / "gate.yml")
    raw = yaml.safe_load(path.read_text()) if path.exists() else {}
    raw = raw or {}
    settings = {str(k): float(v) for k, v in (raw.get("settings") or {}).items()}
    for key in list(settings):
        env = os.environ.get(f"ECRM_GATE_{key.upper()}")
        if env:
            settings[key] = float(env)
    if os.environ.get("ECRM_HOLDOUT_PCT"):
        settings["holdout_pct"] = float(os.environ["ECRM_HOLDOUT_PCT"])
    severity = {str(k): str(v).lower() for k, v in (raw.get("severity") or {}).items()}
    bad = {k: v for k, v in severity.items() if v not in SEVERITIES}
    if bad:
        raise ValueError(f"{path}: severities must be blocking or warning, got {bad}")
    severity.update(_parse_severity(os.environ.get("ECRM_GATE_SEVERITY", "")))
    limit = int(os.environ.get("ECRM_GATE_QUARANTINE_LIMIT") or raw.get("quarantine_limit") or 1000)
    return GateConfig(settings=settings, severity=severity, quarantine_limit=limit)
