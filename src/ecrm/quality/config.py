"""The gate's configuration: expectations/gate.yml, overridden by ECRM_GATE_* environment variables.

Thresholds are numbers the GX queries read from the database session (ops.gate_setting(name)),
and severities override each expectation's meta.severity, so neither needs the suites' JSON to
change when an operator wants a check to warn instead of block for a while.

A severity override is never silent (docs/quality.md, "Severity overrides"):
- it names one check, `<suite>.<check>` (a bare `<check>` only when exactly one suite has it);
- an unknown or ambiguous name is an error (with the nearest names), checked before GX runs;
- the safety checks (holdout, suppression, consent) cannot be downgraded at all;
- every override in force is recorded with each result row of the run in ops.quality_results
  (default severity, effective severity, source, who, and the reason when given).

Syntax: ECRM_GATE_SEVERITY="raw_orders.volume_vs_trailing_7d=warning:Black Friday, planned; ..."
(items separated by `;`, or by `,` when the next item starts with `name=`; `:reason` optional), and
in gate.yml `severity: {raw_orders.volume_vs_trailing_7d: {severity: warning, reason: "..."}}` or
the short `raw_orders.volume_vs_trailing_7d: warning`.
"""

from __future__ import annotations

import difflib
import getpass
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..settings import get_settings

SEVERITIES = ("blocking", "warning")
ENV_SEVERITY = "ECRM_GATE_SEVERITY"
ENV_PREFIX = "ECRM_GATE_"
# ECRM_GATE_* variables that are not thresholds (the thresholds are ECRM_GATE_<SETTING> of gate.yml's settings).
# ECRM_GATE_DATA_DOCS and ECRM_GATE_ENGINE are read by gate.py, ECRM_GATE_WORKERS by fold.py; the rest here.
ENV_NAMES = (ENV_SEVERITY, "ECRM_GATE_CONFIG", "ECRM_GATE_QUARANTINE_LIMIT", "ECRM_GATE_DATA_DOCS", "ECRM_GATE_ENGINE",
             "ECRM_GATE_WORKERS")
# One item ends at `;`, or at a `,` that is followed by the next `name=`: a reason may hold commas.
_ITEM_SPLIT = re.compile(r";|,(?=\s*[A-Za-z0-9_.\-]+\s*=)")


class GateConfigError(ValueError):
    """The gate's configuration is wrong (unknown check, ambiguous name, safety check downgraded...)."""


@dataclass(frozen=True)
class Override:
    """One severity override as written by an operator (not yet checked against the suites)."""

    check: str              # "<suite>.<check>" or a bare "<check>"
    severity: str           # blocking | warning
    source: str             # "env ECRM_GATE_SEVERITY" or "file <path>"
    reason: str | None = None
    by: str | None = None   # the OS user whose process read the override


@dataclass(frozen=True)
class GateConfig:
    settings: dict[str, float] = field(default_factory=dict)
    overrides: tuple[Override, ...] = ()
    quarantine_limit: int = 1000

    @property
    def severity(self) -> dict[str, str]:
        """name -> severity of the overrides (the environment's win over the file's)."""
        return {o.check: o.severity for o in self.overrides}


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name (a container without passwd entry): record none
        return None


def _parse_value(check: str, value: object, where: str) -> tuple[str, str | None]:
    """`warning`, `warning:reason` or {severity: warning, reason: ...} -> (severity, reason)."""
    if isinstance(value, dict):
        unknown = set(value) - {"severity", "reason"}
        if unknown:
            raise GateConfigError(f"{where}: {check}: unknown key(s) {sorted(unknown)}; use severity and reason")
        severity, reason = str(value.get("severity", "")), value.get("reason")
    else:
        severity, _, reason = str(value).partition(":")
    severity = severity.strip().lower()
    reason = (str(reason).strip() or None) if reason is not None else None
    if severity not in SEVERITIES:
        raise GateConfigError(f"{where}: {check}={value!r}: the severity must be blocking or warning "
                              "(syntax: <suite>.<check>=blocking|warning[:reason])")
    return severity, reason


def parse_env_severity(text: str, user: str | None = None) -> list[Override]:
    out: list[Override] = []
    for item in filter(None, (part.strip() for part in _ITEM_SPLIT.split(text))):
        check, sep, value = item.partition("=")
        if not sep or not check.strip():
            raise GateConfigError(f"{ENV_SEVERITY}: {item!r} must be <suite>.<check>=blocking|warning[:reason]")
        severity, reason = _parse_value(check.strip(), value, ENV_SEVERITY)
        out.append(Override(check.strip(), severity, f"env {ENV_SEVERITY}", reason, user))
    return out


def check_env_names(settings: dict[str, float], environ: dict[str, str] | None = None) -> None:
    """Refuse an ECRM_GATE_* variable that names nothing (a misspelt threshold would be ignored silently).

    The error names the nearest valid name (difflib), e.g. ECRM_GATE_VOLUME_TOLERENCE ->
    ECRM_GATE_VOLUME_TOLERANCE. Only names are reported, never values.
    """
    environ = os.environ if environ is None else environ
    valid = sorted({*ENV_NAMES, *(ENV_PREFIX + key.upper() for key in settings)})
    errors = []
    for name in sorted(n for n in environ if n.upper().startswith(ENV_PREFIX) and n not in valid):
        nearest = difflib.get_close_matches(name.upper(), valid, n=1, cutoff=0.6)
        hint = f"did you mean {nearest[0]}?" if nearest else f"valid names: {', '.join(valid)}"
        errors.append(f"unknown gate setting {name}: {hint}")
    if errors:
        raise GateConfigError("; ".join(errors) + " (docs/quality.md)")


def _env_number(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise GateConfigError(f"{name} must be a number, got {text!r}") from None


def load_config(path: Path | None = None) -> GateConfig:
    path = path or Path(os.environ.get("ECRM_GATE_CONFIG") or get_settings().expectations_dir / "gate.yml")
    raw = yaml.safe_load(path.read_text()) if path.exists() else {}
    raw = raw or {}
    settings = {str(k): float(v) for k, v in (raw.get("settings") or {}).items()}
    check_env_names(settings)
    for key in list(settings):
        env = os.environ.get(f"{ENV_PREFIX}{key.upper()}")
        if env:
            settings[key] = _env_number(f"{ENV_PREFIX}{key.upper()}", env)
    if os.environ.get("ECRM_HOLDOUT_PCT"):
        settings["holdout_pct"] = float(os.environ["ECRM_HOLDOUT_PCT"])
    user = _user()
    overrides: dict[str, Override] = {}
    for check, value in (raw.get("severity") or {}).items():
        severity, reason = _parse_value(str(check), value, str(path))
        overrides[str(check)] = Override(str(check), severity, f"file {path}", reason, user)
    for override in parse_env_severity(os.environ.get(ENV_SEVERITY, ""), user):
        overrides[override.check] = override  # the environment wins over the file for the same name
    limit = int(_env_number("ECRM_GATE_QUARANTINE_LIMIT", os.environ.get("ECRM_GATE_QUARANTINE_LIMIT") or "0")
                or raw.get("quarantine_limit") or 1000)
    return GateConfig(settings=settings, overrides=tuple(overrides.values()), quarantine_limit=limit)
