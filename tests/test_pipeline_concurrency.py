"""Sections collected side by side: the document keeps the requested order, a
failing section fails the report under its name, and progress only grows while
naming the sections still being collected. Also: the raw conversation rows a
source hands over in table order are the rows the section builds otherwise."""
import threading
import time

import pytest

from botreports import Reports, hookimpl
from botreports.core.errors import ReportFailed
from botreports.core.models import Kpi, Kpis, Option, Section
from botreports.core.pipeline import COLLECT_END, COLLECT_START, build_document, collect_workers
from botreports.core.service import SYSTEM


class PacedSections:
    """``paced`` (sleeps, then reports which thread ran it) and ``broken``."""

    @hookimpl
    def register_sections(self):
        def paced(ctx):
            time.sleep(ctx.options["delay"])
            return [Kpis([Kpi("delay", "Delay", ctx.options["delay"]),
                          Kpi("thread", "Thread", threading.get_ident())])]

        def broken(ctx):
            time.sleep(ctx.options["delay"])
            raise ValueError("the metric definition is wrong")

        delay = {"delay": Option("float", 0.0, minimum=0, maximum=5)}
        return [Section("paced", "Paced", paced, options=delay), Section("broken", "Broken", broken, options=delay)]


@pytest.fixture
def rk(tmp_path, botreports_demo_db):
    import shutil

    shutil.copy(botreports_demo_db, tmp_path / "analytics.db")
    instance = Reports(data_dir=tmp_path, load_entrypoints=False, plugins=[PacedSections()])
    yield instance
    instance.close()


def build(rk, sections, progress=lambda percent, stage: None):
    spec = rk.validate({"type": "custom", "format": "json", "start_date": "2025-01-20", "end_date": "2025-01-21",
                        "sections": sections})
    return build_document(spec, sections=rk.sections, report_types=rk.report_types, source=rk.source,
                          principal=SYSTEM, reports=rk, settings=rk.settings, progress=progress)


def test_sqlite_source_allows_concurrent_queries_on_at_most_the_cores(rk):
    import os

    assert rk.source.concurrent_queries is True
    assert collect_workers(rk.source, 50) == max(1, os.cpu_count() or 1)
    assert collect_workers(rk.source, 1) == 1
    assert collect_workers(object(), 50) == 1  # a source that says nothing is asked one query at a time


@pytest.mark.skipif(not (__import__("os").cpu_count() or 1) > 1, reason="one core: sections run one by one")
def test_document_keeps_requested_order_when_later_sections_finish_first(rk):
    delays = [0.3, 0.0, 0.15, 0.0, 0.05]
    seen = []
    document = build(rk, [{"type": "paced", "delay": d} for d in delays] + [{"type": "usage_summary"}],
                     progress=lambda percent, stage: seen.append((percent, stage)))
    names = [s.name for s in document.sections]
    assert names == ["paced"] * 5 + ["usage_summary"]
    assert [s.blocks[0].items[0].value for s in document.sections[:5]] == delays
    threads = {s.blocks[0].items[1].value for s in document.sections[:5]}
    assert len(threads) > 1 and threading.get_ident() not in threads
    percents = [p for p, _ in seen]
    assert percents == sorted(percents) and percents[0] == COLLECT_START and percents[-1] == COLLECT_END
    assert len(set(percents)) >= 3
    # Every stage before the end names what is still running; the slowest section is in each.
    assert all(stage.startswith("collecting ") and "paced" in stage for _, stage in seen[:-1])
    assert seen[-1][1] == "collected"


def test_failing_section_fails_the_report_under_its_name(rk):
    with pytest.raises(ReportFailed, match="section 'broken' failed: the metric definition is wrong"):
        build(rk, [{"type": "paced", "delay": 0.1}, {"type": "broken", "delay": 0.0},
                   {"type": "usage_summary"}])


def test_sections_run_one_by_one_for_a_source_that_does_not_allow_concurrency(rk, monkeypatch):
    monkeypatch.setattr(type(rk.source), "concurrent_queries", False)
    seen = []
    document = build(rk, [{"type": "paced", "delay": 0.0}, {"type": "usage_summary"}],
                     progress=lambda percent, stage: seen.append((percent, stage)))
    assert document.sections[0].blocks[0].items[1].value == threading.get_ident()
    assert [stage for _, stage in seen] == ["collecting paced", "collecting usage_summary", "collected"]


def test_conversation_rows_in_table_order_match_the_mapped_rows(rk, monkeypatch):
    """The fast path (rows in column order straight from SQL) against the generic mapping of
    ``conversation_rows``: the same cells, types included."""
    def raw_rows():
        document = build(rk, [{"type": "conversations_raw"}])
        table = next(block for section in document.sections if section.name == "conversations_raw"
                     for block in section.blocks)
        return [list(row) for row in table.rows]

    fast = raw_rows()
    monkeypatch.setattr(type(rk.source), "conversation_table_rows", lambda self, scope, user_label: None)
    mapped = raw_rows()
    assert fast and fast == mapped
    assert [[type(v) for v in row] for row in fast] == [[type(v) for v in row] for row in mapped]


def test_a_large_artifact_is_synced_as_it_grows_and_hashes_what_was_written(tmp_path, monkeypatch):
    """Past every ``SYNC_EVERY`` bytes a thread syncs the file so far; the artifact's bytes, size
    and hash are what the exporter wrote, and an exporter failing mid-way leaves no file and no
    sync thread behind."""
    import hashlib

    import attrs

    from botreports.core import pipeline
    from botreports.core.models import Period, ReportDocument

    syncs = []
    from botreports.core import artifact_stream
    from botreports.core.errors import ExportFailed

    monkeypatch.setattr(artifact_stream.ArtifactStream, "SYNC_EVERY", 1000)
    monkeypatch.setattr(artifact_stream, "sync_data", lambda fd: syncs.append(fd))
    chunks = [f"{n:05d}".encode() * 100 for n in range(40)]  # 40 writes of 500 bytes

    @attrs.define
    class Writes:
        format: str = "bin"
        media_type: str = "application/octet-stream"
        fail_after: int = -1

        def export(self, document, stream, options):
            for n, chunk in enumerate(chunks):
                if n == self.fail_after:
                    raise RuntimeError("renderer crashed")
                stream.write(chunk)

    import datetime as dt
    utc = dt.timezone.utc
    document = ReportDocument(report_id="r", title="t", type="usage", organization=None,
                              period=Period(dt.datetime(2025, 1, 1, tzinfo=utc), dt.datetime(2025, 1, 2, tzinfo=utc)),
                              generated_at=dt.datetime(2025, 1, 2, tzinfo=utc), parameters={}, sections=[])
    artifact = pipeline.write_artifact(document, Writes(), tmp_path / "a.bin", {})
    data = b"".join(chunks)
    assert (tmp_path / "a.bin").read_bytes() == data
    assert artifact.size == len(data) and artifact.sha256 == hashlib.sha256(data).hexdigest()
    assert len(syncs) >= 5  # about one per 1000 bytes (fewer only while one is still running)
    with pytest.raises(ExportFailed, match="renderer crashed") as failed:
        pipeline.write_artifact(document, Writes(fail_after=20), tmp_path / "b.bin", {})
    assert isinstance(failed.value.__cause__, RuntimeError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]
    assert not any(t.name == "botreports-artifact-sync" for t in threading.enumerate())
