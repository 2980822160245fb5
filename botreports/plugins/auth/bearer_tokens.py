"""Bearer tokens as botserver issues them: HS256 JWTs with ``sub``, ``roles``,
``permissions`` and ``organization_id``; issuer, audience and expiry checked.

botserver's role and permission names are mapped to ours by a configurable
table (``BOTREPORTS_JWT_ROLE_MAP``); our own role names always map to themselves.
"""
from __future__ import annotations

import functools
import time
from typing import Dict, Iterable, Set

from ... import hookimpl
from ...core.errors import InvalidCredentials
from ...core.models import Principal
from ...core.security import ROLES, check_secret_length

#: botserver roles and permissions -> ours; a sensible default, replaced by the setting when given.
DEFAULT_ROLE_MAP = {
    "SuperAdmin": "admin",
    "Admin": "admin",
    "reports.schedule": "report_admin",
    "reports_reader": "report_viewer",
    "BotViewer": "report_viewer",
    "reports.read": "report_viewer",
}
#: Clock skew tolerated between botserver and us when checking ``exp``/``nbf``/``iat``.
LEEWAY_SECONDS = 30


def parse_role_map(text: str) -> Dict[str, str]:
    """``"Admin=admin, reports.read=report_viewer"`` -> a dict; an unknown target role is an error."""
    mapping = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        source, sep, target = item.partition("=")
        source, target = source.strip(), target.strip()
        if not sep or not source or target not in ROLES:
            raise ValueError(f"BOTREPORTS_JWT_ROLE_MAP: {item!r} must be NAME=ROLE with ROLE one of {', '.join(ROLES)}")
        mapping[source] = target
    return mapping


def map_roles(names: Iterable[str], role_map: Dict[str, str]) -> Set[str]:
    """Our roles for a token's roles and permissions."""
    return {role_map.get(name, name) for name in names if role_map.get(name, name) in ROLES}


def _strings(claims: dict, name: str) -> list:
    value = claims.get(name) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidCredentials(f"the token's {name} claim must be a list of strings")
    return value


@functools.lru_cache(maxsize=8)
def role_map_of(text: str) -> Dict[str, str]:
    """The mapping a setting describes (the default map when it is empty), parsed once."""
    return parse_role_map(text) or dict(DEFAULT_ROLE_MAP)


@hookimpl
def startup(reports):
    # A broken mapping or a guessable key should stop the service at start-up, not on the first request.
    role_map_of(reports.settings.jwt_role_map)
    check_secret_length("BOTREPORTS_JWT_SECRET", reports.settings.jwt_secret)
    if reports.settings.jwt_max_lifetime <= 0:
        raise ValueError("BOTREPORTS_JWT_MAX_LIFETIME must be a positive number of seconds")


def lifetime_problem(claims: dict, maximum: int, now: float) -> str:
    """Why a token lives too long (``exp - iat``, or ``exp`` - now without ``iat``), or ''."""
    issued = claims.get("iat")
    start = issued if isinstance(issued, (int, float)) and not isinstance(issued, bool) else now
    lifetime = claims["exp"] - start
    if lifetime > maximum + LEEWAY_SECONDS:
        return (f"the bearer token is valid for {lifetime:,.0f} s; this server accepts tokens valid for at most "
                f"{maximum:,} s (BOTREPORTS_JWT_MAX_LIFETIME)")
    return ""


@hookimpl
def authenticate(request, reports):
    # An X-API-Key header comes first (DESIGN §6), so leave the request to the API-key plugin.
    if request.header("X-API-Key"):
        return None
    authorization = request.header("Authorization") or ""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    settings = reports.settings
    if not settings.jwt_secret:
        raise InvalidCredentials("bearer tokens are not accepted by this server; send an X-API-Key header")
    import jwt  # only servers that accept tokens pay for the import

    try:
        claims = jwt.decode(token.strip(), settings.jwt_secret, algorithms=["HS256"],
                            issuer=settings.jwt_issuer, audience=settings.jwt_audience, leeway=LEEWAY_SECONDS,
                            options={"require": ["exp", "sub", "iss", "aud"]})
    except jwt.ExpiredSignatureError:
        raise InvalidCredentials("the bearer token has expired") from None
    except jwt.InvalidTokenError as exc:
        raise InvalidCredentials(f"the bearer token is not valid: {exc}") from None
    too_long = lifetime_problem(claims, settings.jwt_max_lifetime, time.time())
    if too_long:
        raise InvalidCredentials(too_long)
    revoked = reports.token_revoked(claims)
    if revoked:
        raise InvalidCredentials(f"the bearer token has been revoked: {revoked}")
    # botserver signs its refresh tokens with the same key: only an access token asks for data.
    if claims.get("type", "access") != "access":
        raise InvalidCredentials(f"the bearer token is a {claims.get('type')!r} token, not an access token")
    org = claims.get("organization_id")
    if not isinstance(org, str) or not org:
        raise InvalidCredentials("the bearer token has no organization_id claim")
    role_map = role_map_of(settings.jwt_role_map)
    permissions = _strings(claims, "permissions")
    roles = map_roles(_strings(claims, "roles") + permissions, role_map)
    return Principal(id=str(claims["sub"]), org_id=org, roles=roles, permissions=permissions,
                     name=str(claims.get("name") or claims["sub"]), via="bearer")
