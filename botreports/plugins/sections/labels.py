"""How sections show identifiers: bots by name, users by a stable pseudonym.

User ids can be phone numbers or e-mail addresses (WhatsApp, Teams), so no
section prints them: a user appears as ``user-`` and ten hex digits of an
HMAC of the id keyed with the instance's secret, the same in every report
of one instance and not reversible without that secret.
"""
from __future__ import annotations

import hmac
from typing import Mapping, Optional


def pseudonym(ctx, user_id: Optional[str]) -> Optional[str]:
    """The pseudonym of ``user_id`` in the reports of ``ctx``'s instance."""
    if user_id is None:
        return None
    key = (getattr(ctx.reports, "secret", None) or "botreports").encode("utf-8")
    # hmac.digest is the one-shot C path: the same bytes as hmac.new(...).digest(), at a third of the cost
    return "user-" + hmac.digest(key, user_id.encode("utf-8"), "sha256").hex()[:10]


def bot_names(ctx) -> Mapping[str, str]:
    """``{bot_id: name}`` for the report's scope, asked once per section."""
    return ctx.source.bot_names(ctx.scope)


def bot_label(names: Mapping[str, str], bot_id: Optional[str]) -> str:
    """``Acme Support (bot-001)``, or the bare id of a bot with no name."""
    if bot_id is None:
        return "(none)"
    name = names.get(bot_id)
    return f"{name} ({bot_id})" if name else bot_id

