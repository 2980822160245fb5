"""Configuration: defaults, overridden by ``BOTREPORTS_*`` environment variables,
overridden by keyword arguments to ``Reports``."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import attrs


def _env(name, default, cast=str):
    value = os.environ.get("BOTREPORTS_" + name)
    if value is None or value == "":
        return default
    if cast is bool:
        return value.strip().lower() in ("1", "true", "yes", "on")
    return cast(value)


@attrs.define
class Settings:
    """Every tunable of a ``Reports`` instance, with the environment variable that sets it."""

    data_dir: Path = attrs.field(converter=Path)
    #: ``BOTREPORTS_DATA``: analytics source URL; default ``sqlite:///<data_dir>/analytics.db``.
    data_url: Optional[str] = None
    #: ``BOTREPORTS_MAX_RANGE_DAYS``: longest period a report may cover.
    max_range_days: int = 400
    #: ``BOTREPORTS_RETENTION_DAYS``: reports expire after this many days.
    retention_days: int = 30
    #: ``BOTREPORTS_DATA_RETENTION_DAYS``: conversations older than this are flagged by compliance.
    data_retention_days: int = 365
    #: ``BOTREPORTS_SECRET``: key for signed links; generated into the data dir when unset.
    secret: Optional[str] = None
    #: ``BOTREPORTS_MAX_SECTIONS``: most sections a custom report may ask for.
    max_sections: int = 30

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        """Defaults, then the environment, then ``overrides`` (None means not given)."""
        values = {
            "data_dir": _env("DATA_DIR", "./data"),
            "data_url": _env("DATA", None),
            "max_range_days": _env("MAX_RANGE_DAYS", 400, int),
            "retention_days": _env("RETENTION_DAYS", 30, int),
            "data_retention_days": _env("DATA_RETENTION_DAYS", 365, int),
            "secret": _env("SECRET", None),
            "max_sections": _env("MAX_SECTIONS", 30, int),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def analytics_url(self) -> str:
        return self.data_url or f"sqlite://{(self.data_dir / 'analytics.db').resolve()}"
