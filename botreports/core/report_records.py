"""The record kept of every stored report, to verify it later: its document in the JSON
form (schema botreports/1), compressed, with each streamed table replaced by a digest
of the rows its artifact read (a raw table may hold millions of rows).

Records live in the metadata store beside the report's row and go when it is deleted.
"""
from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
from typing import Any, Iterable, Iterator, Optional

from .convert import unstructure

#: The shape of a record; a record of another shape is not compared.
RECORD_VERSION = 1


def _digest_default(value):
    """How a row's cells that JSON lacks are hashed: an aware instant as its Unix seconds (a C
    call, five times cheaper than ISO text, the same for every spelling of the instant)."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.timestamp()
    return _default(value)


def _default(value):
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _row_encoder():
    """One C encoder for every row (``JSONEncoder.encode`` would build one per call, which
    costs more than encoding a short row); a pure Python encoder without the C accelerator."""
    make = json.encoder.c_make_encoder
    if make is None:
        encoder = json.JSONEncoder(default=_digest_default, ensure_ascii=False, separators=(",", ":"))
        return lambda row: encoder.encode(list(row))
    encode = make(None, _digest_default, json.encoder.encode_basestring, None, ":", ",", False, False, True)
    return lambda row: "".join(encode(row if isinstance(row, list) else list(row), 0))


row_text = _row_encoder()
#: Rows encoded before their text is hashed in one call.
HASH_EVERY = 2048


class RowDigest:
    """A running SHA-256 over table rows: each row as compact JSON, then a newline."""

    def __init__(self):
        self._sha = hashlib.sha256()
        self._pending: list = []
        self.rows = 0

    def add(self, row) -> None:
        self._pending.append(row_text(row))
        self.rows += 1
        if len(self._pending) >= HASH_EVERY:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._pending.append("")
            self._sha.update("\n".join(self._pending).encode("utf-8"))
            self._pending = []

    def hexdigest(self) -> str:
        self._flush()
        return self._sha.hexdigest()

    def add_all(self, rows: Iterable, limit: Optional[int] = None) -> bool:
        """Add the rows (at most ``limit``); True if ``rows`` ran out."""
        for row in rows:
            if limit is not None and self.rows >= limit:
                return False
            self.add(row)
        return True


class TracedRows:
    """A streamed table's rows on their way to an exporter, hashed as they pass.

    The exporter reads as far as it shows (an HTML page previews a raw table, a CSV writes all
    of it): the digest covers exactly those rows, and a verification reads as many again. A
    table whose rows come as JSON text too (``json_text``) keeps that path open, hashed as text.
    """

    def __init__(self, rows):
        self._rows = rows
        self.digest = RowDigest()
        self.form = "rows"
        self.complete = False
        self._text = None
        if callable(getattr(rows, "json_text", None)):
            self.json_text = self._json_text

    def __iter__(self) -> Iterator:
        add = self.digest.add
        for row in self._rows:
            add(row)
            yield row
        self.complete = True

    def _json_text(self, *args, **kwargs) -> Iterator[str]:
        self.form = "json_text"
        self._text = hashlib.sha256()
        for number, text in enumerate(self._rows.json_text(*args, **kwargs)):
            self._text.update(("," if number else "").encode("utf-8") + text.encode("utf-8"))
            yield text
        self.complete = True

    def summary(self) -> dict:
        """``{form, rows, complete, sha256}`` of what was read (``rows`` None for JSON text)."""
        if self.form == "json_text":
            return {"form": "json_text", "rows": None, "complete": self.complete, "sha256": self._text.hexdigest()}
        return {"form": "rows", "rows": self.digest.rows, "complete": self.complete,
                "sha256": self.digest.hexdigest()}


def kept_whole(table) -> bool:
    """Whether a table is kept row by row in the record (a small table held in a list) rather
    than as a digest (a raw table, or rows that stream)."""
    return not table.raw and isinstance(table.rows, (list, tuple))


def trace_tables(document):
    """``document`` with every streamed table's rows wrapped in ``TracedRows``."""
    import attrs

    sections = []
    for section in document.sections:
        blocks = [attrs.evolve(block, rows=TracedRows(block.rows))
                  if block.kind == "table" and not isinstance(block.rows, (list, tuple)) else block
                  for block in section.blocks]
        sections.append(attrs.evolve(section, blocks=blocks))
    return attrs.evolve(document, sections=sections)


def replay_digest(rows, kept: dict) -> dict:
    """The digest of a recomputed table's rows read the way its kept digest ``kept`` was: all of
    them, or as many rows as were read then, or as JSON text."""
    if kept.get("form") == "json_text" and callable(getattr(rows, "json_text", None)):
        traced = TracedRows(rows)
        for _ in traced.json_text():
            pass
        return traced.summary()
    digest = RowDigest()
    limit = None if kept.get("complete") or kept.get("rows") is None else int(kept["rows"])
    source = rows._rows if isinstance(rows, TracedRows) else rows
    complete = digest.add_all(iter(source), limit)
    return {"form": "rows", "rows": digest.rows, "complete": complete, "sha256": digest.hexdigest()}


def _table_record(table, replay: Optional[dict]) -> dict:
    head = {"kind": "table", "title": table.title, "raw": table.raw,
            "columns": [{"name": c.name, "label": c.label, "type": c.type} for c in table.columns]}
    if kept_whole(table):
        return {**head, "rows": [list(row) for row in table.rows]}
    if replay is not None:
        return {**head, "digest": replay_digest(table.rows, replay)}
    if isinstance(table.rows, TracedRows):
        return {**head, "digest": table.rows.summary()}
    digest = RowDigest()  # a raw table given as a list: every row is at hand
    digest.add_all(table.rows)
    return {**head, "digest": {"form": "rows", "rows": digest.rows, "complete": True,
                               "sha256": digest.hexdigest()}}


def document_record(document, like: Optional[dict] = None) -> dict:
    """The record of ``document`` after its export: JSON-able, every number at full precision.

    With ``like`` (an earlier record of the same report), streamed tables are read the way
    that record's were, so the two compare row for row.
    """
    kept_digests = _digests_of(like) if like else {}
    sections = []
    for s_index, section in enumerate(document.sections):
        blocks = []
        for b_index, block in enumerate(section.blocks):
            if block.kind == "table":
                blocks.append(_table_record(block, kept_digests.get((s_index, b_index, block.title))
                                            if like else None))
            else:
                blocks.append(unstructure(block))
        sections.append({"name": section.name, "title": section.title, "blocks": blocks})
    record = {
        "record": RECORD_VERSION, "schema": document.schema, "title": document.title, "type": document.type,
        "period": {"start": unstructure(document.period.start), "end": unstructure(document.period.end),
                   "timezone": document.period.timezone},
        "generated_at": unstructure(document.generated_at), "parameters": dict(document.parameters),
        "manifest": dict(document.manifest), "sections": sections,
    }
    # Through JSON once, so a fresh record and a stored one hold values of the same types.
    return json.loads(json.dumps(record, default=_default))


def _digests_of(record: dict) -> dict:
    """``{(section index, block index, title): digest}`` of a record's streamed tables."""
    found = {}
    for s_index, section in enumerate(record.get("sections", [])):
        for b_index, block in enumerate(section.get("blocks", [])):
            if block.get("kind") == "table" and "digest" in block:
                found[(s_index, b_index, block.get("title"))] = block["digest"]
    return found


def pack(record: dict) -> bytes:
    """A record as stored: compact JSON, gzip-compressed."""
    return gzip.compress(json.dumps(record, separators=(",", ":"), default=_default).encode("utf-8"), 6)


def unpack(blob: bytes) -> dict:
    return json.loads(gzip.decompress(blob).decode("utf-8"))


def save_record(store, report_id: str, record: dict) -> None:
    """Keep (or replace, for a retried report) the record of ``report_id``."""
    with store.transaction() as db:
        db.execute("INSERT INTO report_records (report_id, record, created_at) VALUES (?, ?, ?) ON CONFLICT"
                   " (report_id) DO UPDATE SET record = excluded.record, created_at = excluded.created_at",
                   [report_id, pack(record), dt.datetime.now(dt.timezone.utc).isoformat()])


def load_record(store, report_id: str) -> Optional[dict]:
    """The record kept for ``report_id``, or None (a report stored before records were kept)."""
    row = store.db.execute("SELECT record FROM report_records WHERE report_id = ?", [report_id]).fetchone()
    return unpack(row[0]) if row else None


def record_size(store, report_id: str) -> Optional[int]:
    """Bytes the record of ``report_id`` takes in the store (compressed)."""
    row = store.db.execute("SELECT length(record) FROM report_records WHERE report_id = ?",
                           [report_id]).fetchone()
    return row[0] if row else None


def numbers_in(value: Any) -> int:
    """How many numbers a JSON value holds (what a comparison of it checks)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, (int, float)):
        return 1
    if isinstance(value, dict):
        return sum(numbers_in(v) for v in value.values())
    if isinstance(value, list):
        return sum(numbers_in(v) for v in value)
    return 0
