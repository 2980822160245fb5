"""How sections show identifiers: bots by name, users by a stable pseudonym.

User ids can be phone numbers or e-mail addresses (WhatsApp, Teams), so no
section prints them: a user appears as ``user-`` and ten hex digits of an
HMAC of the id keyed with the instance's secret, the same in every report
of one instance and not reversible without that secret.
"""
from __future__ import annotations

import functools
import hashlib
from typing import Callable, Mapping, Optional


def pseudonym(ctx, user_id: Optional[str]) -> Optional[str]:
    """The pseudonym of ``user_id`` in the reports of ``ctx``'s instance."""
    return pseudonyms(ctx)(user_id)


def pseudonyms(ctx) -> Callable[[Optional[str]], Optional[str]]:
    """The pseudonym of a user id (None for None) in the reports of ``ctx``'s instance, as one
    callable to ask for many users (a raw table of a month names hundreds of thousands)."""
    return _Pseudonyms.of((getattr(ctx.reports, "secret", None) or "botreports").encode("utf-8"))


class _Pseudonyms:
    """HMAC-SHA256 (RFC 2104) of user ids under one key, as ``hmac`` computes it, with the
    key's two padded blocks hashed once: each id then costs two copies and two short hashes,
    all in C, instead of the ``hmac`` module's Python steps."""

    _BLOCK = 64  # SHA-256's block size in bytes

    def __init__(self, key: bytes):
        if len(key) > self._BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(self._BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    @classmethod
    @functools.lru_cache(maxsize=16)
    def of(cls, key: bytes) -> "_Pseudonyms":
        return cls(key)

    def __call__(self, user_id: Optional[str]) -> Optional[str]:
        if user_id is None:
            return None
        inner = self._inner.copy()
        inner.update(user_id.encode("utf-8"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return "user-" + outer.hexdigest()[:10]


def bot_names(ctx) -> Mapping[str, str]:
    """``{bot_id: name}`` for the report's scope, asked once per section."""
    return ctx.source.bot_names(ctx.scope)


def bot_label(names: Mapping[str, str], bot_id: Optional[str]) -> str:
    """``Acme Support (bot-001)``, or the bare id of a bot with no name."""
    if bot_id is None:
        return "(none)"
    name = names.get(bot_id)
    return f"{name} ({bot_id})" if name else bot_id

