"""``botreports generate --option KEY=VALUE``: a format's options (``csv_dialect=semicolon``)
and a section's (``top_intents.limit=5``), each value read as the type its ``Option`` declares."""
from __future__ import annotations

import json
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..core.errors import ValidationError

TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def option_value(text: str, kind: Optional[str]) -> Any:
    """``text`` as a value of the ``Option`` type ``kind``; ``ValueError`` saying what was expected.
    An undeclared option keeps its text (validation then names it and lists the accepted ones)."""
    if kind in (None, "str"):
        return text
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "bool":
        if text.lower() in TRUE + FALSE:
            return text.lower() in TRUE
        raise ValueError(f"expected one of {', '.join(TRUE + FALSE)}")
    if kind == "list":
        if text.lstrip().startswith("["):
            value = json.loads(text)
            if isinstance(value, list):
                return value
        return [item.strip() for item in text.split(",") if item.strip()]
    if kind == "dict":
        value = json.loads(text)
        if not isinstance(value, dict):
            raise ValueError("expected a JSON object")
        return value
    return text


def apply_options(body: Dict[str, Any], pairs: Sequence[str], sections: Mapping, exporters: Mapping,
                  default_sections: Sequence[str]) -> None:
    """Put each ``KEY=VALUE`` of ``pairs`` in ``body``: ``KEY`` a format option, ``SECTION.KEY`` an
    option of that section, which must be among the report's (``--sections``, else the type's
    defaults). Every malformed pair is reported at once, naming it."""
    problems: List[Tuple[str, str]] = []
    format_options: Dict[str, Any] = {}
    by_section: Dict[str, Dict[str, Any]] = {}
    exporter = exporters.get(body.get("format"))
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        field = f"--option {key or pair}"
        if not sep or not key:
            problems.append((field, "must be KEY=VALUE (a format option) or SECTION.KEY=VALUE"))
            continue
        section_name, dot, name = key.partition(".")
        if dot:
            section = sections.get(section_name)
            if section is None:
                problems.append((field, f"unknown section {section_name!r}; valid: {', '.join(sorted(sections))}"))
                continue
            declared = section.options.get(name)
            target = by_section.setdefault(section_name, {})
        else:
            name, declared, target = key, (exporter.options.get(key) if exporter else None), format_options
        try:
            target[name] = option_value(text, declared.type if declared else None)
        except ValueError as exc:
            problems.append((field, f"{text!r} is not of type {declared.type} ({exc})"))
    entries = body.get("sections") or [{"type": name} for name in default_sections]
    listed = [entry["type"] for entry in entries]
    for name in by_section:
        if name not in listed:
            problems.append((f"--option {name}.", f"section {name!r} is not in this report ({', '.join(listed)}); "
                                                  "name it in --sections"))
    if problems:
        raise ValidationError.from_problems(problems)
    if format_options:
        body["options"] = format_options
    if by_section:
        body["sections"] = [{**entry, **by_section.get(entry["type"], {})} for entry in entries]
