"""Revoked bearer tokens: one token by its ``jti``, a sign-in by its ``session_id``, or every
token of a subject issued before a time. Kept in the metadata store and read again every few
seconds, so a revocation made by any process is enforced by all of them within that time."""
from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Callable, Dict, FrozenSet, Mapping, Optional, Tuple

from .convert import unsafe_character_problem
from .errors import ValidationError

#: Seconds a process trusts its copy of the revocations before reading them again.
FRESH_FOR = 2.0
#: What can be revoked, by the claim it matches.
KINDS = {"jti": "jti", "session": "session_id", "subject": "sub"}


class TokenRevocations:
    """The revocations of one metadata store, as a process sees them."""

    def __init__(self, store, clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.clock = clock
        self._lock = threading.Lock()
        self._read_at: Optional[float] = None
        self._ids: Dict[str, FrozenSet[str]] = {}
        self._subjects: Dict[str, float] = {}

    def revoke(self, kind: str, value: str, issued_before: Optional[dt.datetime] = None, reason: str = "") -> dict:
        """Record a revocation; ``issued_before`` (subjects only) defaults to now."""
        problems = []
        if kind not in KINDS:
            problems.append(("kind", f"must be one of {', '.join(KINDS)}"))
        if not isinstance(value, str) or not 1 <= len(value) <= 500:
            problems.append((kind, "must be 1 to 500 characters"))
        elif unsafe_character_problem(value):
            problems.append((kind, unsafe_character_problem(value)))
        if issued_before is not None and kind != "subject":
            problems.append(("issued_before", "applies to a subject only"))
        if problems:
            raise ValidationError.from_problems(problems)
        if kind == "subject":
            issued_before = (issued_before or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
        row = self.store.insert_token_revocation(kind, value, issued_before, reason)
        with self._lock:
            self._read_at = None  # this process enforces it at once
        return row

    def list(self) -> list:
        return self.store.token_revocations()

    def revoked(self, claims: Mapping) -> Optional[str]:
        """Why the token with ``claims`` is revoked (a sentence), or None if it is not."""
        ids, subjects = self._current()
        for kind, claim in (("jti", "jti"), ("session", "session_id")):
            value = claims.get(claim)
            if isinstance(value, str) and value in ids.get(kind, ()):
                return f"its {claim} was revoked"
        before = subjects.get(str(claims.get("sub")))
        if before is not None:
            issued = claims.get("iat")
            # A token that does not say when it was issued cannot show it came after the revocation.
            if not isinstance(issued, (int, float)) or isinstance(issued, bool) or issued < before:
                return "its subject's tokens issued before the revocation were revoked"
        return None

    def _current(self) -> Tuple[Dict[str, FrozenSet[str]], Dict[str, float]]:
        now = self.clock()
        with self._lock:
            if self._read_at is not None and now - self._read_at < FRESH_FOR:
                return self._ids, self._subjects
        ids: Dict[str, set] = {"jti": set(), "session": set()}
        subjects: Dict[str, float] = {}
        for row in self.store.token_revocations():
            if row["kind"] == "subject":
                stamp = dt.datetime.strptime(row["issued_before"], "%Y-%m-%dT%H:%M:%S.%fZ")
                epoch = stamp.replace(tzinfo=dt.timezone.utc).timestamp()
                subjects[row["value"]] = max(epoch, subjects.get(row["value"], epoch))
            elif row["kind"] in ids:
                ids[row["kind"]].add(row["value"])
        with self._lock:
            self._ids = {kind: frozenset(values) for kind, values in ids.items()}
            self._subjects = subjects
            self._read_at = now
            return self._ids, self._subjects
