"""The manifest every report carries: what it was computed from, so anyone holding
the file can say which parameters, definitions, code and data made its numbers.

The artifact's own SHA-256 cannot be inside it; the metadata store and the API hold it.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Mapping, Optional

from .convert import utc_text

#: The version of the metric definitions (docs/metrics.md). Bumped whenever a definition changes
#: what a number means or how it is computed, so two reports with the same version, parameters and
#: data watermark must agree number for number.
METRIC_DEFINITIONS_VERSION = 2
#: The shape of the manifest itself.
MANIFEST_SCHEMA = "botreports-manifest/1"


def read_watermark(source, scope) -> Optional[dict]:
    """The data source's watermark for ``scope`` (``source.watermark(scope)``): a JSON-able
    value that changes whenever data the scope may read changes. None for a source without one."""
    watermark = getattr(source, "watermark", None)
    if watermark is None:
        return None
    return watermark(scope)


def code_version() -> str:
    """``botreports.__version__``; imported late (the package imports this module)."""
    from .. import __version__

    return __version__


def report_manifest(parameters: Mapping[str, Any], *, source, scope, report_id: Optional[str],
                    computed_as_of: dt.datetime) -> dict:
    """The manifest of a report about to be computed from ``source`` for ``scope``.

    The watermark is read before the sections run: data written while they run may or may not
    be counted, and a later verification tells which numbers moved.
    """
    return {
        "schema": MANIFEST_SCHEMA,
        "report_id": report_id,
        "parameters": dict(parameters),
        "metric_definitions_version": METRIC_DEFINITIONS_VERSION,
        "code_version": code_version(),
        "computed_as_of": utc_text(computed_as_of),
        "data_source": getattr(source, "name", type(source).__name__),
        "data_watermark": read_watermark(source, scope),
        "artifact_sha256": "kept by the service, not in the file: GET /api/v1/reports/{id} (sha256), "
                           "the download's Repr-Digest header",
    }


def manifest_lines(manifest: Mapping[str, Any]) -> list:
    """``[(label, text)]``: the manifest as the XLSX About sheet and the last page print it,
    in a fixed order; the parameters and the watermark as compact JSON (exact, readable back)."""
    import json

    if not manifest:
        return []

    def compact(value) -> str:
        # ASCII JSON (other characters as \u escapes): read back exactly from any text layer, in
        # any font; a PDF reader may fail to decode a glyph outside the BMP (an emoji in a title).
        return json.dumps(value, sort_keys=True, ensure_ascii=True, separators=(",", ":"), default=str)

    lines = [
        ("Manifest schema", manifest.get("schema")),
        ("Report ID", manifest.get("report_id") or "none (generated straight to a file)"),
        ("Metric definitions", f"version {manifest.get('metric_definitions_version')}"),
        ("Code version", f"botreports {manifest.get('code_version')}"),
        ("Computed as of", manifest.get("computed_as_of")),
        ("Data source", manifest.get("data_source")),
        ("Data watermark", compact(manifest.get("data_watermark"))),
        ("Parameters", compact(manifest.get("parameters"))),
        ("Artifact SHA-256", manifest.get("artifact_sha256")),
    ]
    return [(label, "" if value is None else str(value)) for label, value in lines]
