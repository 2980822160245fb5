"""Where report files live: one artifact-store contract, two implementations. ``open_artifacts``
picks the data directory (the embedded default) or an S3-compatible bucket (many hosts).

A file is named by its key, ``reports/<report id><extension>``, the same in both stores, and
stored in the report's ``artifact_path``. Workers always render into a local temporary file first;
``save`` then makes it durable where it is served from.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from .local import LocalArtifacts


def open_artifacts(location: Optional[str], data_dir: Path):
    """``s3://bucket/prefix`` (endpoint, region and credentials from the standard AWS variables and
    files), or None / a folder path for files under ``data_dir`` (the default)."""
    text = (location or "").strip()
    if text.startswith("s3://"):
        from .s3 import S3Artifacts

        return S3Artifacts.from_url(text)
    if "://" in text:
        raise ValueError(f"BOTREPORTS_ARTIFACTS must be s3://bucket/prefix or empty, not {text!r}")
    return LocalArtifacts(Path(data_dir))


__all__ = ["open_artifacts", "LocalArtifacts"]
