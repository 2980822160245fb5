"""Roles, the seed's permission table, key hashing and signed links."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Iterable, Optional

#: Roles, lowest first: each role holds every permission of the roles before it.
ROLES = ("report_viewer", "report_creator", "report_admin", "admin")
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES, start=1)}

#: The seed's "Required Permissions" table: action -> lowest role allowed.
PERMISSIONS = {
    "report.generate": "report_creator",
    "report.view": "report_viewer",
    "report.list": "report_viewer",
    "report.download": "report_viewer",
    "report.delete": "report_admin",
    "schedule.create": "report_admin",
    "schedule.list": "report_admin",
    "schedule.view": "report_admin",
    "schedule.update": "report_admin",
    "schedule.delete": "report_admin",
    # Reading templates is part of generating with them; writing them is managing them.
    "template.list": "report_viewer",
    "template.view": "report_viewer",
    "template.create": "report_admin",
    "events.ingest": "admin",
    "keys.create": "admin",
}


def rank(roles: Iterable[str]) -> int:
    """The highest rank among ``roles`` (0 when none is ours)."""
    return max((ROLE_RANK.get(role, 0) for role in roles), default=0)


def role_allows(roles: Iterable[str], action: str) -> bool:
    """Whether the permission table lets ``roles`` perform ``action``."""
    needed = PERMISSIONS.get(action)
    if needed is None:
        return False
    return rank(roles) >= ROLE_RANK[needed]


def new_id(prefix: str) -> str:
    """An opaque random id such as ``rpt-3kq9…`` (96 bits)."""
    return f"{prefix}-{secrets.token_urlsafe(12).replace('_', 'x').replace('-', 'y')}"


def new_api_key() -> str:
    return "brk_" + secrets.token_urlsafe(32)


def hash_secret(value: str) -> str:
    """SHA-256 of a high-entropy secret (API keys are random, so no slow KDF is needed)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


#: The shortest signing key accepted: HS256 keys shorter than its 32-byte output weaken it, and
#: a short text key is guessed offline from one signed link or token.
MIN_SECRET_BYTES = 32


def check_secret_length(variable: str, value: Optional[str]) -> None:
    """``ValueError`` naming ``variable`` when ``value`` is set but shorter than ``MIN_SECRET_BYTES``."""
    if value and len(value.encode("utf-8")) < MIN_SECRET_BYTES:
        raise ValueError(f"{variable} is {len(value.encode('utf-8'))} bytes long; a signing key must have at least "
                         f"{MIN_SECRET_BYTES} bytes (e.g. the output of: openssl rand -base64 32)")


def sign(secret: str, message: str) -> str:
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def signed_query(secret: str, resource: str, ttl_seconds: int, now: Optional[float] = None) -> tuple:
    """``(expires, signature)`` for a link to ``resource`` valid ``ttl_seconds``."""
    expires = int((now if now is not None else time.time()) + ttl_seconds)
    return expires, sign(secret, f"{resource}\n{expires}")


def check_signature(secret: str, resource: str, expires, signature: str, now: Optional[float] = None) -> bool:
    """True if the link signature matches and has not expired (constant-time compare)."""
    try:
        expires = int(expires)
    except (TypeError, ValueError):
        return False
    if expires < (now if now is not None else time.time()):
        return False
    return hmac.compare_digest(sign(secret, f"{resource}\n{expires}"), str(signature or ""))
