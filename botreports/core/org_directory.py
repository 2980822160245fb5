"""The bots and channels an organisation has, as forms offer them (the web console's report
form): read from the analytics source, kept a few minutes per organisation."""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import weakref
from typing import Dict, List

from .models import Period, Scope

log = logging.getLogger("botreports")
#: Seconds an organisation's directory is reused: bots and channels change rarely, and the
#: channel list is an aggregate over the last ``CHANNEL_DAYS`` days.
FRESH_FOR = 300.0
CHANNEL_DAYS = 90
_cache = weakref.WeakKeyDictionary()  # Reports -> {org id: (read at, directory)}
_lock = threading.Lock()


def directory(reports, org_id) -> Dict[str, List]:
    """``{"bots": [(id, name), ...], "channels": [name, ...]}`` of ``org_id``, sorted by name.

    A source that cannot answer (botserver's database down) gives empty lists: a form still
    accepts ids typed by hand."""
    now = time.monotonic()
    with _lock:
        cache = _cache.setdefault(reports, {})
        hit = cache.get(org_id)
    if hit is not None and now - hit[0] < FRESH_FOR:
        return hit[1]
    end = dt.datetime.now(dt.timezone.utc)
    scope = Scope(org_id=org_id, period=Period(end - dt.timedelta(days=CHANNEL_DAYS), end, "UTC"))
    try:
        source = reports.source
        bots = sorted(source.bot_names(scope).items(), key=lambda item: (str(item[1]).lower(), item[0]))
        channels = sorted({row["key"] for row in source.usage_breakdown(scope, "channel") if row.get("key")})
    except Exception as exc:  # a directory is a convenience: never the reason a page fails
        log.warning("bots and channels of %s not available: %s", org_id, exc)
        return {"bots": [], "channels": []}
    found = {"bots": bots, "channels": channels}
    with _lock:
        cache[org_id] = (now, found)
    return found
