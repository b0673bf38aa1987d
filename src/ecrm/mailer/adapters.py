"""Which mailer adapter to use: the factory (the adapters import ``ecrm.mailer.types``, never this)."""

from __future__ import annotations

from .config import MailerConfig
from .types import Adapter


def adapter_from_config(config: MailerConfig) -> Adapter:
    """The adapter ECRM_MAILER names (outbox by default)."""
    if config.adapter == "listmonk":
        from .listmonk import ListmonkAdapter

        return ListmonkAdapter(config)
    if config.adapter == "mailchimp":
        from .mailchimp import MailchimpAdapter

        return MailchimpAdapter(config)
    from .outbox import OutboxAdapter

    return OutboxAdapter(config)
