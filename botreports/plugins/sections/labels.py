"""How sections show identifiers: bots by name, users by a stable pseudonym.

User ids can be phone numbers or e-mail addresses (WhatsApp, Teams), so no
section prints them: a user appears as ``user-`` and ten hex digits of an
HMAC of the id keyed with the instance's secret, the same in every report
of one instance and not reversible without that secret.
"""
from __future__ import annotations

import functools
import hmac
from typing import Mapping, Optional


def pseudonym(ctx, user_id: Optional[str]) -> Optional[str]:
    """The pseudonym of ``user_id`` in the reports of ``ctx``'s instance."""
    if user_id is None:
        return None
    keyed = _keyed_hmac((getattr(ctx.reports, "secret", None) or "botreports").encode("utf-8"))
    # A copy of an HMAC already keyed skips hashing the key pads again: a raw table of a
    # month names hundreds of thousands of users, each once.
    mac = keyed.copy()
    mac.update(user_id.encode("utf-8"))
    return "user-" + mac.hexdigest()[:10]


@functools.lru_cache(maxsize=16)
def _keyed_hmac(key: bytes):
    return hmac.new(key, digestmod="sha256")


def bot_names(ctx) -> Mapping[str, str]:
    """``{bot_id: name}`` for the report's scope, asked once per section."""
    return ctx.source.bot_names(ctx.scope)


def bot_label(names: Mapping[str, str], bot_id: Optional[str]) -> str:
    """``Acme Support (bot-001)``, or the bare id of a bot with no name."""
    if bot_id is None:
        return "(none)"
    name = names.get(bot_id)
    return f"{name} ({bot_id})" if name else bot_id

