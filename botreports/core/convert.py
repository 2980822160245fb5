"""The project's one private cattrs converter.

Requests are structured strictly (no coercion of ``"false"`` to True, no extra
keys) and every structuring problem becomes a ``ValidationError`` whose details
name the field, so adapters can answer a 400 that says what is wrong.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

import cattrs
from cattrs.preconf.json import make_converter
from cattrs.v import format_exception

from .errors import ValidationError


def _strict(kind, name):
    def structure(value, _type):
        # bool is an int subclass: refuse it where a number is asked for.
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise TypeError(f"must be {name}")
        return value

    return structure


def _make() -> cattrs.Converter:
    conv = make_converter(forbid_extra_keys=True)
    conv.register_structure_hook(str, _strict(str, "a string"))
    conv.register_structure_hook(bool, _strict(bool, "true or false"))
    conv.register_structure_hook(int, _strict(int, "an integer"))
    conv.register_structure_hook(float, lambda v, _t: float(_strict((int, float), "a number")(v, _t)))
    conv.register_unstructure_hook(dt.datetime, utc_text)
    conv.register_unstructure_hook(dt.date, lambda d: d.isoformat())
    conv.register_unstructure_hook(frozenset, sorted)
    return conv


def utc_text(value: dt.datetime) -> str:
    """A datetime as the API spells it: UTC, whole seconds, ``2025-01-31T12:00:00Z``."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value.isoformat(timespec="seconds") + "Z"


_converter = _make()


def _field_of(path: str) -> str:
    """``$.sections[0].type`` -> ``sections[0].type``; the root is ``body``."""
    path = path.strip()
    if path.startswith("$"):
        path = path[1:]
    path = path.lstrip(".")
    return path or "body"


def _format(exc: BaseException, type_) -> str:
    """Our strict hooks already say what was expected; others get cattrs' wording."""
    if isinstance(exc, TypeError) and str(exc).startswith("must be "):
        return str(exc)
    return format_exception(exc, type_)


def _problems_of(exc: BaseException):
    for message in cattrs.transform_error(exc, path="$", format_exception=_format):
        text, _, path = message.rpartition(" @ ")
        if text.startswith("extra fields found"):
            names = text[text.find("(") + 1 : text.rfind(")")]
            for name in names.split(","):
                prefix = _field_of(path)
                field = name.strip() if prefix == "body" else f"{prefix}.{name.strip()}"
                yield field, "unknown field"
            continue
        if text.startswith("must be "):
            pass
        elif text.startswith("invalid value for type, expected "):
            text = "must be " + text.removeprefix("invalid value for type, expected ")
        elif text == "required field missing":
            text = "is required"
        yield _field_of(path), text


def structure(data: Any, cls):
    """Turn JSON-like ``data`` into ``cls`` or raise ``ValidationError`` naming each field."""
    if not isinstance(data, dict):
        raise ValidationError.from_problems([("body", "must be a JSON object")])
    try:
        return _converter.structure(data, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError) as exc:
        if isinstance(exc, cattrs.BaseValidationError):
            raise ValidationError.from_problems(list(_problems_of(exc))) from None
        raise ValidationError.from_problems([("body", str(exc))]) from None


def unstructure(obj: Any) -> Any:
    """Plain JSON-ready data (datetimes as ISO strings with ``Z``)."""
    return _converter.unstructure(obj)
