"""Verifying a stored report: compute it again from the same parameters, as of the same
instant, over the data as it is now, and compare the two documents number by number.

Documents are compared, not files (a file holds the instant it was written). Numbers are
paired by section, block, row and metric; a streamed table by the digest of its rows.
"""
from __future__ import annotations

import datetime as dt
import math
from typing import Any, Dict, List, Optional, Tuple

from .convert import utc_text
from .errors import Conflict
from .manifest import METRIC_DEFINITIONS_VERSION, code_version
from .report_records import RECORD_VERSION, document_record, load_record, numbers_in

#: Two floats this close (relative) are the same number: sums of the same values may differ in
#: their last bits when the database adds them in another order. Every other value must be equal.
FLOAT_TOLERANCE = 1e-12
#: Differences listed in a verification's answer at most (``difference_count`` says how many).
MAX_LISTED = 1000


def same(old: Any, new: Any) -> bool:
    """Whether two JSON values are the same number, text or structure."""
    if isinstance(old, bool) or isinstance(new, bool):
        return old is new
    if isinstance(old, (int, float)) and isinstance(new, (int, float)):
        if isinstance(old, float) and math.isnan(old):
            return isinstance(new, float) and math.isnan(new)
        return old == new or math.isclose(old, new, rel_tol=FLOAT_TOLERANCE, abs_tol=0.0)
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(same(a, b) for a, b in zip(old, new))
    if isinstance(old, dict) and isinstance(new, dict):
        return old.keys() == new.keys() and all(same(old[k], new[k]) for k in old)
    return old == new


class Comparison:
    """The differences found between two records, and how many numbers were compared."""

    def __init__(self):
        self.differences: List[dict] = []
        self.numbers = 0
        self.streamed_tables = 0

    def differ(self, section: dict, block: str, *, row: Any = None, metric: Any = None, field: Any = None,
               old: Any = None, new: Any = None, what: str = "") -> None:
        """One difference: where it is (section, block, row, metric, field), the value then and now,
        and ``what`` in words."""
        self.differences.append({"section": section.get("name"), "section_title": section.get("title"),
                                 "block": block, "row": row, "metric": metric, "field": field,
                                 "old": old, "new": new, "what": what})

    # -- records ---------------------------------------------------------

    def records(self, old: dict, new: dict) -> None:
        for key, (then, now) in _paired(old.get("sections", []), new.get("sections", []), _section_key).items():
            section = then or now
            if then is None or now is None:
                self.differ(section, "section", what="section added" if then is None else "section removed")
                continue
            self.section(then, now)

    def section(self, old: dict, new: dict) -> None:
        for key, (then, now) in _paired(old.get("blocks", []), new.get("blocks", []), _block_key).items():
            block = then or now
            if then is None or now is None:
                self.differ(old, _block_name(block), old=None if then is None else "present",
                            new=None if now is None else "present",
                            what="block added" if then is None else "block removed")
                continue
            kind = then.get("kind")
            if kind == "kpis":
                self.kpis(old, then, now)
            elif kind == "table":
                self.table(old, then, now)
            elif kind == "chart":
                self.chart(old, then, now)
            else:
                self.numbers += numbers_in(then)
                if not same(then, now):
                    self.differ(old, _block_name(then), old=then.get("markdown", then), new=now.get("markdown", now),
                                what="text changed")

    def kpis(self, section: dict, old: dict, new: dict) -> None:
        for name, (then, now) in _paired(old.get("items", []), new.get("items", []),
                                         lambda item, _: item.get("name")).items():
            if then is None or now is None:
                self.differ(section, "KPIs", metric=name, old=then and then.get("value"),
                            new=now and now.get("value"), what="metric added" if then is None else "metric removed")
                continue
            for field in ("value", "previous", "change", "unavailable"):
                self.numbers += numbers_in(then.get(field))
                if not same(then.get(field), now.get(field)):
                    self.differ(section, "KPIs", metric=name, field=field, old=then.get(field), new=now.get(field),
                                what=f"{then.get('label') or name}: {field}")

    def table(self, section: dict, old: dict, new: dict) -> None:
        title = old.get("title") or "table"
        if "digest" in old or "digest" in new:
            self.streamed_tables += 1
            then, now = old.get("digest") or {}, new.get("digest") or {}
            if then.get("sha256") != now.get("sha256") or then.get("rows") != now.get("rows"):
                self.differ(section, title, old={"rows": then.get("rows"), "sha256": then.get("sha256")},
                            new={"rows": now.get("rows"), "sha256": now.get("sha256")},
                            what=f"raw table {title} changed" if old.get("raw") else f"table {title} changed")
            return
        labels = [c.get("label") or c.get("name") for c in old.get("columns", [])]
        if [c.get("name") for c in old.get("columns", [])] != [c.get("name") for c in new.get("columns", [])]:
            self.differ(section, title, old=labels, new=[c.get("label") for c in new.get("columns", [])],
                        what="columns changed")
            return
        old_rows, new_rows = old.get("rows", []), new.get("rows", [])
        keyed = _row_keys(old_rows, new_rows)
        for key, (then, now) in _paired(old_rows, new_rows, keyed).items():
            if then is None or now is None:
                self.numbers += numbers_in(then)
                self.differ(section, title, row=key, old=then, new=now,
                            what="row added" if then is None else "row removed")
                continue
            for label, a, b in zip(labels, then, now):
                self.numbers += numbers_in(a)
                if not same(a, b):
                    self.differ(section, title, row=key, metric=label, old=a, new=b, what=f"{label} of {key}")

    def chart(self, section: dict, old: dict, new: dict) -> None:
        title = old.get("title") or "chart"

        def points(chart: dict) -> Dict[Tuple[str, str], Any]:
            found = {}
            for series in chart.get("series", []):
                for category, value in zip(chart.get("categories", []), series.get("values", [])):
                    found[(str(category), series.get("name"))] = value
            return found

        then, now = points(old), points(new)
        for key in list(then) + [k for k in now if k not in then]:
            a, b = then.get(key), now.get(key)
            self.numbers += numbers_in(a)
            if key not in then or key not in now or not same(a, b):
                self.differ(section, title, row=key[0], metric=key[1], old=a, new=b,
                            what=f"{key[1]} at {key[0]}")


def _section_key(section: dict, seen: dict) -> tuple:
    name = section.get("name")
    seen[name] = seen.get(name, 0) + 1
    return (name, seen[name])


def _block_key(block: dict, seen: dict) -> tuple:
    kind_title = (block.get("kind"), block.get("title") or "")
    seen[kind_title] = seen.get(kind_title, 0) + 1
    return kind_title + (seen[kind_title],)


def _block_name(block: dict) -> str:
    kind = block.get("kind")
    return block.get("title") or {"kpis": "KPIs", "text": "text"}.get(kind, kind or "block")


def _row_keys(old_rows: list, new_rows: list):
    """How rows are paired: by their first cell when it names each row once in both tables (a
    day, a bot, a channel), else by position."""
    def unique_first(rows):
        firsts = [row[0] if row else None for row in rows]
        return len(set(map(repr, firsts))) == len(firsts)

    if old_rows and unique_first(old_rows) and unique_first(new_rows):
        return lambda row, _: row[0] if row else None

    def position(_row, seen):
        seen["n"] = seen.get("n", 0) + 1
        return f"row {seen['n']}"
    return position


def _paired(old: list, new: list, key_of) -> Dict[Any, Tuple[Optional[Any], Optional[Any]]]:
    """``{key: (old item or None, new item or None)}`` in the order of ``old`` then what ``new`` adds."""
    pairs: Dict[Any, list] = {}
    for index, items in ((0, old), (1, new)):
        seen: dict = {}
        for item in items:
            key = key_of(item, seen)
            key = key if _hashable(key) else repr(key)
            pairs.setdefault(key, [None, None])[index] = item
    return {key: (pair[0], pair[1]) for key, pair in pairs.items()}


def _hashable(value) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def verify(reports, principal, report_id: str) -> dict:
    """Compute ``report_id`` again and compare it with the record kept when it was made.

    Whoever may read the report may verify it. ``Conflict`` when the report is not completed
    (or expired) or has no record (made before records were kept).
    """
    from .jobs import owner_of
    from .pipeline import build_document

    report = reports.get(principal, report_id)
    if report.state not in ("completed", "expired"):
        raise Conflict(f"report {report.id} is {report.state}; only completed reports can be verified")
    kept = load_record(reports.store, report.id)
    if kept is None or kept.get("record") != RECORD_VERSION:
        raise Conflict(f"report {report.id} has no record to verify against (it was made before records "
                       "were kept)")
    spec = reports.validate(report.parameters)
    as_of = _instant(kept.get("manifest", {}).get("computed_as_of") or kept.get("generated_at"))
    document = build_document(spec, sections=reports.sections, report_types=reports.report_types,
                              source=reports.source, principal=owner_of(report), report_id=report.id,
                              reports=reports, settings=reports.settings, now=as_of)
    fresh = document_record(document, like=kept)
    comparison = Comparison()
    comparison.records(kept, fresh)
    then_manifest, now_manifest = kept.get("manifest", {}), fresh.get("manifest", {})
    notes = []
    if then_manifest.get("metric_definitions_version") != METRIC_DEFINITIONS_VERSION:
        notes.append(f"the metric definitions changed since (version {then_manifest.get('metric_definitions_version')}"
                     f" then, {METRIC_DEFINITIONS_VERSION} now): numbers may differ by definition, not by data")
    if then_manifest.get("data_source") != now_manifest.get("data_source"):
        notes.append(f"computed again from another data source ({now_manifest.get('data_source')}, not "
                     f"{then_manifest.get('data_source')})")
    then_mark, now_mark = then_manifest.get("data_watermark"), now_manifest.get("data_watermark")
    data_changed = None if then_mark is None or now_mark is None else not same(then_mark, now_mark)
    if data_changed and not comparison.differences:
        notes.append("the data changed since, but not any number of this report")
    reports.audit(principal, "report.verify", report,
                  details={"differences": len(comparison.differences), "numbers": comparison.numbers})
    return {
        "report_id": report.id,
        "verdict": "changed" if comparison.differences else "unchanged",
        "unchanged": not comparison.differences,
        "numbers_compared": comparison.numbers,
        "streamed_tables_compared": comparison.streamed_tables,
        "difference_count": len(comparison.differences),
        "differences": comparison.differences[:MAX_LISTED],
        "data_changed": data_changed,
        "data_watermark": {"then": then_mark, "now": now_mark},
        "metric_definitions_version": {"then": then_manifest.get("metric_definitions_version"),
                                       "now": METRIC_DEFINITIONS_VERSION},
        "code_version": {"then": then_manifest.get("code_version"), "now": code_version()},
        "computed_as_of": then_manifest.get("computed_as_of"),
        "sha256": report.artifact_sha256,
        "verified_at": utc_text(dt.datetime.now(dt.timezone.utc)),
        "notes": notes,
    }


def _instant(text: Optional[str]) -> Optional[dt.datetime]:
    if not text:
        return None
    return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))

