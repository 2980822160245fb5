"""One report from parameters to artifact: collect -> document -> export -> store.

The artifact is written to a temporary file beside its final place, flushed
and renamed into place, so a crash never leaves a half-written file under a
report's name.
"""
from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path
from typing import Callable, Mapping, Optional

import attrs

from .artifact_stream import ArtifactStream
from .declarations import check_section_result
from .errors import BotReportsError, ExportFailed, ReportFailed
from .manifest import report_manifest
from .models import Principal, ReportDocument, Scope, SectionContext, SectionResult
from .params import ReportSpec

Progress = Callable[[int, str], None]

#: Progress milestones: sections fill 5-80, rendering 80-95, storing 95-100.
COLLECT_START, COLLECT_END, RENDER_DONE = 5, 80, 95


def _no_progress(_percent: int, _stage: str) -> None:
    return None


def section_options(section, requested: Mapping) -> dict:
    """The options a section runs with: declared defaults, then what was asked."""
    options = {name: option.default for name, option in section.options.items()}
    options.update(requested)
    return options


def collect_workers(source, sections: int) -> int:
    """How many threads collect a report's sections: one unless the data source declares that
    its queries may run concurrently (``concurrent_queries = True``), and never more than the
    CPU cores or the sections."""
    if not getattr(source, "concurrent_queries", False):
        return 1
    return max(1, min(os.cpu_count() or 1, sections))


def build_document(spec: ReportSpec, *, sections: Mapping, report_types: Mapping, source,
                   principal: Principal, report_id: Optional[str] = None, reports=None,
                   settings=None, progress: Progress = _no_progress,
                   now: Optional[dt.datetime] = None) -> ReportDocument:
    """Run every section of ``spec`` against ``source`` into a ``ReportDocument``.

    Sections are independent, so a source whose queries may run at the same time has them
    collected on a few threads (the database does the work and releases the GIL meanwhile).
    The document keeps the requested order either way, and a failing section fails the report
    under its name.
    """
    scope = Scope(org_id=principal.org_id, period=spec.period, bot_ids=spec.bot_ids, channel=spec.channel)
    now = now or dt.datetime.now(dt.timezone.utc)
    manifest = report_manifest(spec.parameters(), source=source, scope=scope, report_id=report_id,
                               computed_as_of=now)
    wanted = list(spec.sections)
    raw_name = report_types[spec.type].raw_data_section
    names = [s.name for s in wanted]
    if raw_name and raw_name in sections and raw_name not in names:
        from .params import SectionRequest
        wanted.append(SectionRequest(raw_name))

    origins = reports.registry_origins("sections") if hasattr(reports, "registry_origins") else {}

    def section_plugin(name: str, section) -> str:
        return origins.get(name) or getattr(section.collect, "__module__", None) or "unknown"

    def collect(requested) -> SectionResult:
        section = sections[requested.name]
        ctx = SectionContext(scope=scope, source=source, options=section_options(section, requested.options),
                             principal=principal, include_charts=spec.include_charts, reports=reports,
                             settings=settings, now=now)
        try:
            blocks = section.collect(ctx)
        except ReportFailed:
            raise
        except Exception as exc:
            raise ReportFailed(f"section {requested.name!r} failed: {exc}") from exc
        blocks = check_section_result(requested.name, section_plugin(requested.name, section), blocks)
        if not spec.include_charts:
            blocks = [block for block in blocks if block.kind != "chart"]
        # A section that accepts a "title" option (custom_metric) is shown under the asked title.
        title = ctx.options.get("title") if "title" in section.options else None
        return SectionResult(requested.name, title or section.title, blocks, section.description)

    workers = collect_workers(source, len(wanted))
    if workers > 1:
        results = _collect_concurrently(wanted, collect, workers, progress)
    else:
        results = []
        total = max(len(wanted), 1)
        for index, requested in enumerate(wanted):
            progress(COLLECT_START + (COLLECT_END - COLLECT_START) * index // total, f"collecting {requested.name}")
            results.append(collect(requested))
    progress(COLLECT_END, "collected")
    presentation = reports.presentation_of(spec.template_id) if reports is not None and spec.template_id else {}
    return ReportDocument(
        title=spec.title, type=spec.type, period=spec.period,
        generated_at=now, parameters=spec.parameters(), sections=results, report_id=report_id,
        organization=principal.org_id, presentation=presentation, manifest=manifest)


def _collect_concurrently(wanted: list, collect: Callable, workers: int, progress: Progress) -> list:
    """``collect`` every requested section on ``workers`` threads; results in the requested order.

    Progress is reported from the calling thread as sections finish (a job's progress is
    written by the thread that owns it), in proportion to the sections done, and the stage
    names the sections still being collected. When sections fail, the first of them in the
    requested order fails the report, after the sections already running have stopped (they
    share the data source, which the caller may close next).
    """
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    total = len(wanted)
    results: list = [None] * total
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="botreports-section") as pool:
        submitted = [pool.submit(collect, requested) for requested in wanted]
        index_of = {future: index for index, future in enumerate(submitted)}
        pending = set(submitted)
        progress(COLLECT_START, "collecting " + ", ".join(requested.name for requested in wanted))
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            failed = [index_of[f] for f in finished if f.exception() is not None]
            if failed:
                for future in pending:
                    future.cancel()
                wait(pending)
                raise submitted[min(failed)].exception()
            for future in finished:
                results[index_of[future]] = future.result()
            if pending:
                left = sorted(index_of[f] for f in pending)
                progress(COLLECT_START + (COLLECT_END - COLLECT_START) * (total - len(pending)) // total,
                         "collecting " + ", ".join(wanted[index].name for index in left))
    return results


@attrs.frozen
class Artifact:
    """A stored report file."""

    path: Path
    size: int
    sha256: str
    media_type: str


def write_artifact(document: ReportDocument, exporter, path: Path, options: Mapping,
                   progress: Progress = _no_progress, plugin: str = "") -> Artifact:
    """Render ``document`` with ``exporter`` (registered by ``plugin``) into ``path`` atomically
    (temp file, then rename). An exporter's own error is raised as ``ExportFailed`` naming the
    format and the plugin, the original as its cause (so a transient one is still retried)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    progress(COLLECT_END + 1, f"rendering {exporter.format}")
    fd, tmp_name = tempfile.mkstemp(prefix=".partial-", suffix=path.suffix, dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as raw:
            stream = ArtifactStream(raw, name=path.name)
            try:
                try:
                    exporter.export(document, stream, dict(options))
                except BotReportsError:
                    raise  # already says what is wrong, to the user (limits, options)
                except Exception as exc:
                    owner = plugin or getattr(exporter.export, "__module__", None) or "unknown"
                    raise ExportFailed(f"the {exporter.format} exporter of plugin {owner} failed: "
                                       f"{type(exc).__name__}: {exc}") from exc
                progress(RENDER_DONE, "writing")
                stream.close()  # the exporter may have closed it already; the file stays open
                raw.flush()
            finally:
                stream.settle()  # before the file is synced, closed or removed
            os.fsync(raw.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    return Artifact(path=path, size=stream.size, sha256=stream.digest.hexdigest(), media_type=exporter.media_type)
