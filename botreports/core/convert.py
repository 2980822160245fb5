"""The project's one private cattrs converter.

Requests are structured strictly (no coercion of ``"false"`` to True, no extra
keys) and every structuring problem becomes a ``ValidationError`` whose details
name the field, so adapters can answer a 400 that says what is wrong.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import typing
from typing import Any, Iterator, Optional, Tuple

import cattrs
from cattrs.cols import list_structure_factory
from cattrs.preconf.json import make_converter
from cattrs.v import format_exception

from .errors import ValidationError

#: Deepest nesting of arrays and objects a request may have. Our bodies need five or six levels;
#: a limit far below the interpreter's recursion limit keeps every later walk of the data
#: (validation, copies, ``json.dumps`` into the store) clear of ``RecursionError``.
MAX_JSON_DEPTH = 64


def _strict(kind, name):
    def structure(value, _type):
        # bool is an int subclass: refuse it where a number is asked for.
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise TypeError(f"must be {name}")
        return value

    return structure


def _is_list(type_) -> bool:
    return typing.get_origin(type_) is list


def _list_hook(type_, conv):
    """Lists only: cattrs would iterate a string (or an object's keys) and complain about each item."""
    (item,) = typing.get_args(type_) or (Any,)
    kind = {dict: "objects", str: "strings"}.get(typing.get_origin(item) or item)
    expected = f"must be a list of {kind}" if kind else "must be a list"
    structure_items = list_structure_factory(type_, conv)

    def structure(value, _type):
        if not isinstance(value, list):
            raise TypeError(expected)
        return structure_items(value, _type)

    return structure


def _make() -> cattrs.Converter:
    conv = make_converter(forbid_extra_keys=True)
    conv.register_structure_hook_factory(_is_list, _list_hook)
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
        elif text == "expected a mapping":
            text = "must be an object"
        yield _field_of(path), text


def structure(data: Any, cls):
    """Turn JSON-like ``data`` into ``cls`` or raise ``ValidationError`` naming each field.

    Every string in ``data``, nested ones and keys included, must be text that
    can be stored and sent back (no lone surrogates).
    """
    if not isinstance(data, dict):
        raise ValidationError.from_problems([("body", "must be a JSON object")])
    problems = list(text_problems(data))
    try:
        result = _converter.structure(data, cls)
    except cattrs.BaseValidationError as exc:
        problems += [problem for problem in _problems_of(exc) if problem not in problems]
    except (TypeError, ValueError) as exc:
        problems.append(("body", str(exc)))
    if problems:
        raise ValidationError.from_problems(problems)
    return result


def unicode_problem(text: str) -> Optional[str]:
    """Why ``text`` cannot be stored as UTF-8 (a lone surrogate such as JSON's ``"\\ud800"``), else None."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"must be valid Unicode text (a lone surrogate at character {exc.start})"
    return None


#: C0 and C1 controls (tab, CR and LF included) and the bidirectional embeddings, overrides and
#: isolates: in a name or an id they break file names, mail subjects and log lines, or make the
#: text display as something other than what it is.
UNSAFE_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def unsafe_character_problem(text: str) -> Optional[str]:
    """Why ``text`` may not be a name or an id that reports print (a control or bidirectional
    override character, with its position and code point), else None."""
    found = UNSAFE_CHARACTERS.search(text)
    if found is None:
        return None
    return (f"must not contain control or bidirectional-override characters"
            f" (U+{ord(found.group()):04X} at character {found.start()})")


def text_problems(data: Any, field: str = "body") -> Iterator[Tuple[str, str]]:
    """``(field, problem)`` for every string in ``data`` (keys too) that is not valid Unicode text.

    Walks without recursion: ``data`` may be as deep as ``MAX_JSON_DEPTH``.
    """
    pending = [(field, data)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, str):
            problem = unicode_problem(value)
            if problem:
                yield where, problem
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and unicode_problem(key):
                    yield where, "has a field name that is not valid Unicode text"
                    continue
                pending.append((key if where == "body" else f"{where}.{key}", item))
        elif isinstance(value, (list, tuple)):
            pending.extend((f"{where}[{index}]", item) for index, item in enumerate(value))


def parse_json(text: str) -> Any:
    """``json.loads`` for request text: ``ValueError`` saying what is wrong, for bad syntax,
    ``NaN``/``Infinity`` (not JSON), and arrays or objects nested deeper than ``MAX_JSON_DEPTH``."""
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError(f"is not valid JSON: nested too deeply (at most {MAX_JSON_DEPTH} levels)") from None
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"is not valid JSON: {exc}") from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise ValueError(f"is not valid JSON: nested too deeply (at most {MAX_JSON_DEPTH} levels)")
    return data


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not allowed in JSON")


def _depth(data: Any) -> int:
    """How deeply arrays and objects nest in ``data`` (0 for a scalar), without recursion."""
    deepest, pending = 0, [(data, 1)]
    while pending:
        value, level = pending.pop()
        if isinstance(value, dict):
            value = value.values()
        elif not isinstance(value, list):
            continue
        deepest = max(deepest, level)
        if level <= MAX_JSON_DEPTH:  # deeper than the limit is all we need to know
            pending.extend((item, level + 1) for item in value)
    return deepest


def unstructure(obj: Any) -> Any:
    """Plain JSON-ready data (datetimes as ISO strings with ``Z``)."""
    return _converter.unstructure(obj)
