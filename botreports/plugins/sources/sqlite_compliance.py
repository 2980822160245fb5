"""Compliance queries of the SQLite source: audit events by action and
result, denials per actor, event listings, conversations past retention and
the per-event raw rows. Mixed into ``SqliteAnalytics``."""
from __future__ import annotations

import datetime as dt
import json
from typing import Iterator, List, Optional, Sequence

from ...core.models import Scope
from .sql_time import epoch_ms, instant_from_ms

_EVENT_COLUMNS = "created_at, actor, action, resource_type, resource_id, result, bot_id, ip"


def _event(row) -> dict:
    created, actor, action, resource_type, resource_id, result, bot, ip = row
    return {"created_at": instant_from_ms(created), "actor": actor, "action": action,
            "resource_type": resource_type, "resource_id": resource_id, "result": result, "bot_id": bot,
            "ip": ip}


class ComplianceQueries:
    """Compliance sections' queries (see ``core.datasource.AnalyticsSource``)."""

    def audit_summary(self, scope: Scope) -> List[dict]:
        where, params = self.scoped("audit_events", scope)
        return [{"action": action, "result": result, "events": n}
                for action, result, n in self.query(
                    f"SELECT action, result, count(*) AS n FROM audit_events WHERE {where}"
                    f" GROUP BY action, result ORDER BY n DESC, action, result", params)]

    def audit_denials(self, scope: Scope, limit: int) -> List[dict]:
        where, params = self.scoped("audit_events", scope)
        # The actions travel as a JSON array: an action's name may hold any character, commas too.
        return [{"actor": actor, "denials": n, "actions": sorted(json.loads(actions)),
                 "last_at": instant_from_ms(last)}
                for actor, n, actions, last in self.query(
                    f"SELECT actor, count(*) AS n, json_group_array(DISTINCT action), max(created_at)"
                    f" FROM audit_events WHERE {where} AND result = 'denied'"
                    f" GROUP BY actor ORDER BY n DESC, actor LIMIT ?", params + [int(limit)])]

    def audit_events(self, scope: Scope, *, actions: Optional[Sequence[str]] = None,
                     results: Optional[Sequence[str]] = None, limit: int = 100) -> List[dict]:
        where, params = self.scoped("audit_events", scope)
        for column, values in (("action", actions), ("result", results)):
            if values:
                where += f" AND {column} IN ({', '.join('?' for _ in values)})"
                params += list(values)
        return [_event(row) for row in self.query(
            f"SELECT {_EVENT_COLUMNS} FROM audit_events WHERE {where} ORDER BY created_at DESC, id DESC LIMIT ?",
            params + [int(limit)])]

    def retention_overview(self, scope: Scope, cutoff: dt.datetime) -> List[dict]:
        where, params = self.scoped("conversations", scope, period=False)
        return [{"bot_id": bot, "conversations": n, "oldest_at": instant_from_ms(oldest)}
                for bot, n, oldest in self.query(
                    f"SELECT bot_id, count(*) AS n, min(started_at) FROM conversations"
                    f" WHERE {where} AND started_at < ? GROUP BY bot_id ORDER BY n DESC, bot_id",
                    params + [epoch_ms(cutoff)])]

    def audit_rows(self, scope: Scope) -> Iterator[dict]:
        where, params = self.scoped("audit_events", scope)
        cursor = self.conn.execute(
            f"SELECT {_EVENT_COLUMNS} FROM audit_events WHERE {where} ORDER BY created_at, id", params)
        for row in cursor:
            yield _event(row)
