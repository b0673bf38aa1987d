"""reports/DAY/email.eml: the report as one complete MIME message, ready for any SMTP sender.

    multipart/alternative
    ├── text/plain                 the headline figures, segments, biggest flows and the gate, as text
    └── multipart/related
        ├── text/html              email.html with every chart as <img src="cid:…">
        └── image/png × charts     one inline part per chart, Content-ID <chart.DAY@…>

Gmail and Outlook do not show `data:` images, so the .eml carries the PNGs as related parts (the
structure of the Python docs' "asparagus" example, which every common client shows inline). Text
parts are quoted-printable and images base64: the file is 7-bit ASCII with short lines, so any
SMTP hop takes it as it is (`sendmail -t < email.eml`, or smtplib's `send_message` after
`email.message_from_binary_file(f, policy=email.policy.default)`).

From and To come from the settings (ECRM_REPORT_FROM, ECRM_REPORT_TO); the defaults are
placeholders under the reserved `.invalid` domain, which no server delivers to. The Message-ID is
derived from the day and the message's content: a resend of an unchanged report is recognised as the
same message by the receiving clients, a corrected report (late data, rebuilt day) is a new one.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses

from ..settings import PLACEHOLDER_REPORT_FROM, PLACEHOLDER_REPORT_TO

CID_DOMAIN = "report.ecrm.invalid"


def content_id(chart: str, day: date) -> str:
    """The Content-ID of a chart's PNG part, without the angle brackets (the HTML says `cid:` + this)."""
    return f"{chart}.{day.isoformat()}@{CID_DOMAIN}"


def addresses(value: str, setting: str) -> list[Address]:
    """`Name <a@b>, c@d` as Address objects; a part without an @ is a configuration error, named by
    its position (the setting's text is not echoed: it may hold addresses, which stay out of logs)."""
    found = []
    for i, (name, addr) in enumerate(getaddresses([value]), start=1):
        user, at, domain = addr.rpartition("@")
        if not (user and at and domain):
            raise ValueError(f"{setting}: entry {i} is not an e-mail address (expected 'Name <user@domain>, ...')")
        found.append(Address(display_name=name, username=user, domain=domain))
    if not found:
        raise ValueError(f"{setting} is empty")
    return found


def message(*, day: date, subject: str, html: str, text: str, pngs: dict[str, bytes],
            sender: str = PLACEHOLDER_REPORT_FROM, recipients: str = PLACEHOLDER_REPORT_TO, now: datetime | None = None) -> EmailMessage:
    """The report as a MIME message: `html` must reference each chart as `cid:` + content_id(chart, day)."""
    missing = [chart for chart in pngs if f"cid:{content_id(chart, day)}" not in html]
    if missing:
        raise ValueError(f"the e-mail HTML does not reference the charts {missing}")
    sender_address = addresses(sender, "ECRM_REPORT_FROM")[0]
    digest = hashlib.sha256(html.encode() + b"\0" + text.encode()).hexdigest()[:16]

    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender_address
    msg["To"] = addresses(recipients, "ECRM_REPORT_TO")
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    msg["Message-ID"] = f"<ecrm-report.{day.isoformat()}.{digest}@{sender_address.domain}>"
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies to the report
    msg.set_content(text, cte="quoted-printable")
    msg.add_alternative(html, subtype="html", cte="quoted-printable")
    html_part = msg.get_payload()[1]
    for chart, png in pngs.items():
        html_part.add_related(png, "image", "png", cid=f"<{content_id(chart, day)}>", disposition="inline",
                              filename=f"{chart}.png")  # inline: shown in place, not listed as attachments
    return msg
