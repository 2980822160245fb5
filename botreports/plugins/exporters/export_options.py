"""The options a request passes to an exporter, checked against what the
format declares and completed with its defaults."""
from __future__ import annotations

from typing import Mapping

from ...core.errors import ValidationError
from ...core.params import check_option


def with_defaults(declared: Mapping, given: Mapping) -> dict:
    """Declared defaults, then what was asked; a bad value raises an error naming ``options.<name>``.

    The core validates requests already; this guards exporters called directly by an embedder.
    """
    options = {name: option.default for name, option in declared.items()}
    problems: list = []
    for key, value in (given or {}).items():
        if key in declared:
            options[key] = check_option(problems, f"options.{key}", declared[key], value)
    if problems:
        raise ValidationError.from_problems(problems)
    return options
