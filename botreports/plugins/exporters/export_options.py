"""The options a request passes to an exporter, with the format's declared defaults filled in."""
from __future__ import annotations

from typing import Mapping


def with_defaults(declared: Mapping, given: Mapping) -> dict:
    """Declared defaults, then what the request asked (already validated by the core)."""
    options = {name: option.default for name, option in declared.items()}
    options.update({key: value for key, value in (given or {}).items() if key in declared})
    return options
