"""Sign-in sessions for browsers (the web console): a token signed with the service secret that
says who signed in and how to check that their credential still holds, never the credential
itself. Each use checks the key or token again, so a revoked one ends its sessions."""
from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
import threading
import time
import weakref
from typing import Mapping, Optional, Tuple

from .errors import InvalidCredentials
from .models import Principal, RequestInfo
from .security import sign

#: Seconds a session lasts at most (a bearer token's own expiry may end it sooner).
LIFETIME = 8 * 3600
#: Seconds a session signed in by a credential this module cannot check again (a third-party
#: authentication plugin's) lasts.
UNCHECKED_LIFETIME = 15 * 60
#: Seconds an API key's state read from the store is trusted (pages poll several times a second).
KEY_FRESH_FOR = 2.0
_PURPOSE = "browser-session\n"
_CSRF = "browser-form\n"
_keys = weakref.WeakKeyDictionary()  # Reports -> {key id: (read at, row or None)}
_keys_lock = threading.Lock()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _bearer_claims(request: RequestInfo) -> dict:
    """The claims of the request's bearer token, read after the bearer plugin verified it."""
    authorization = request.header("Authorization") or ""
    token = authorization.partition(" ")[2].strip()
    try:
        claims = json.loads(_unb64(token.split(".")[1]))
    except (IndexError, ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}


def open_session(reports, request: RequestInfo, lifetime: int = LIFETIME) -> Tuple[str, Principal]:
    """Authenticate ``request`` (an API key or a bearer token) and return a session token and the
    principal; ``Unauthorized``/``InvalidCredentials`` as ``Reports.authenticate`` raises them."""
    principal = reports.authenticate(request)
    issued = int(time.time())
    expires = issued + lifetime
    payload = {"sid": secrets.token_urlsafe(16), "pid": principal.id, "org": principal.org_id,
               "roles": sorted(principal.roles), "perms": sorted(principal.permissions),
               "name": principal.name, "via": principal.via, "iat": issued}
    if principal.via == "bearer":
        claims = _bearer_claims(request)
        payload["tok"] = {name: claims[name] for name in ("sub", "jti", "session_id", "iat") if name in claims}
        if isinstance(claims.get("exp"), (int, float)):
            expires = min(expires, int(claims["exp"]))
    elif principal.via != "api_key":
        expires = min(expires, issued + UNCHECKED_LIFETIME)
    payload["exp"] = expires
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    return f"{body}.{sign(reports.secret, _PURPOSE + body)}", principal


def _payload(reports, token: str) -> dict:
    body, _, signature = (token or "").partition(".")
    if not body or not hmac.compare_digest(sign(reports.secret, _PURPOSE + body), signature):
        raise InvalidCredentials("the session is not valid; sign in again")
    try:
        payload = json.loads(_unb64(body))
    except (ValueError, binascii.Error):  # signed by us, so only a changed secret gets here
        raise InvalidCredentials("the session is not valid; sign in again") from None
    if not isinstance(payload, dict) or payload.get("exp", 0) < time.time():
        raise InvalidCredentials("the session has expired; sign in again")
    return payload


def _api_key(reports, org_id: str, key_id: str) -> Optional[Mapping]:
    now = time.monotonic()
    with _keys_lock:
        cache = _keys.setdefault(reports, {})
        hit = cache.get(key_id)
    if hit is not None and now - hit[0] < KEY_FRESH_FOR:
        return hit[1]
    row = next((row for row in reports.list_api_keys(org_id) if row["id"] == key_id), None)
    with _keys_lock:
        if len(cache) > 10_000:
            cache.clear()
        cache[key_id] = (now, row)
    return row


def session_principal(reports, token: str) -> Principal:
    """The principal of a session token, after checking its signature, its expiry, that it was not
    signed out and that its API key or bearer token was not revoked (``InvalidCredentials``)."""
    payload = _payload(reports, token)
    if reports.token_revoked({"session_id": payload["sid"]}):
        raise InvalidCredentials("you have signed out; sign in again")
    roles = payload.get("roles") or []
    if payload.get("via") == "api_key":
        key = _api_key(reports, payload.get("org"), payload.get("pid"))
        if key is None or key["revoked"]:
            raise InvalidCredentials("the API key of this session was revoked; sign in again")
        roles = [key["role"]]
    elif payload.get("via") == "bearer":
        why = reports.token_revoked(payload.get("tok") or {})
        if why:
            raise InvalidCredentials(f"the token of this session was revoked ({why}); sign in again")
    return Principal(id=payload["pid"], org_id=payload.get("org"), roles=roles, name=payload.get("name") or "",
                     permissions=payload.get("perms") or [], via=payload.get("via") or "")


def close_session(reports, token: str) -> None:
    """Sign out: the session is refused from now on by every process (a session revocation)."""
    try:
        payload = _payload(reports, token)
    except InvalidCredentials:
        return  # nothing valid to end
    reports.revocations.revoke("session", payload["sid"], reason="signed out of the console")


def form_token(reports, token: str) -> str:
    """The CSRF token of a session's forms (bound to the session, so it ends with it)."""
    return sign(reports.secret, _CSRF + _payload(reports, token)["sid"])




def anonymous_form_token(reports, nonce: str) -> str:
    """The CSRF token of the sign-in form, bound to a random value kept in a cookie."""
    return sign(reports.secret, _CSRF + "anonymous\n" + nonce)
