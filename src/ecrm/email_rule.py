"""What a valid e-mail address is: one rule for dbt, the quality gate and the mailer.

An address is valid when, lower-cased and trimmed, it matches EMAIL_PATTERN:

- local part: dot-separated runs of letters, digits and ``_ % + ' -`` (RFC 5322's dot-atom with the
  characters real addresses use; the apostrophe included: o'brien@example.com); no leading,
  trailing or doubled dot;
- domain: dot-separated labels of letters, digits and inner hyphens, ending in a top-level domain
  of two or more letters.

Not accepted, although RFC 5322 allows them: quoted local parts, IP-literal domains, other
printable characters (``! # $ & * / = ? ^ ` { | } ~``) and internationalised addresses; ESPs
refuse or mangle them. The pattern is written so that Python's ``re`` and PostgreSQL's ``~`` read
it the same way (no shorthand classes, no lookarounds).

Where the rule is applied (tests/test_email_rule.py checks each against tests/data/email_addresses.csv):

- dbt: ``macros/is_valid_email.sql`` holds this pattern as a SQL literal (dbt cannot import Python;
  the test checks the two are equal) → ``stg_shop__customers.is_valid_email`` → ``is_contactable``;
- the quality gate: the ``email_valid`` expectations of the GX suites (written by
  ``ecrm.quality.bootstrap`` from this constant; the test checks the JSON files carry it);
- the mailer: the push plan re-checks every member against it (``ecrm.mailer.state.plan_sql``).

The loader is looser on purpose (``ecrm.sources.common.ADDRESS_SHAPE``): raw keeps what the shop
sent, and only what is not an address at all (no ``@``, spaces) is quarantined.
"""

from __future__ import annotations

import re

_ATOM = r"[a-z0-9_%+'-]+"
_LABEL = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"
EMAIL_PATTERN = rf"^{_ATOM}(\.{_ATOM})*@{_LABEL}(\.{_LABEL})*\.[a-z]{{2,}}$"
_COMPILED = re.compile(EMAIL_PATTERN)


def normalize(address: str) -> str:
    """The form every check sees: spaces trimmed, lower-cased (as SQL's ``lower(trim(email))``)."""
    return address.strip(" ").lower()


def is_valid_email(address: str | None) -> bool:
    """True when the normalized address follows the rule (None and empty are not valid)."""
    return address is not None and _COMPILED.fullmatch(normalize(address)) is not None
