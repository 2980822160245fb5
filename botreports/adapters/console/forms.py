"""HTML form fields to the JSON bodies the facade validates, and the facade's error ``details``
back to the form fields they name. No rule about reports lives here: a value that cannot be
read as its type is passed on as typed, and the facade's message says what is wrong."""
from __future__ import annotations

import json
import re
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

#: The period choice meaning "the dates below".
CUSTOM_PERIOD = "custom"


def field_id(name: str) -> str:
    """The HTML id of the control of form field ``name`` (``s.top_users.limit`` -> ``f-s-top_users-limit``)."""
    return "f-" + re.sub(r"[^A-Za-z0-9_-]", "-", name)


def typed(value: str, kind: str):
    """A form text as the JSON value an ``Option`` of ``kind`` expects, when it reads as one."""
    text = value.strip()
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        return text
    if kind == "bool":
        return {"true": True, "false": False}.get(text, text)
    if kind == "list":
        return [item.strip() for item in text.split(",") if item.strip()]
    if kind == "dict":
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _options(form: Mapping[str, str], prefix: str, declared: Mapping) -> dict:
    found = {}
    for name, option in declared.items():
        value = form.get(f"{prefix}{name}", "")
        if value.strip():
            found[name] = typed(value, option.type)
    return found


def ordered_sections(chosen: Iterable[str], report_type, sections: Mapping) -> List[str]:
    """The chosen sections in the type's default order, then in catalog order."""
    chosen = set(chosen)
    defaults = list(report_type.default_sections) if report_type is not None else []
    return [name for name in defaults if name in chosen] + \
           [name for name in sections if name in chosen and name not in defaults]


def report_body(form: Mapping[str, str], chosen_sections: List[str], bot_ids: List[str],
                reports) -> Tuple[dict, List[str]]:
    """The generation body of the new-report form, and the section names in the order sent
    (``sections[i]`` in an error names the i-th)."""
    body: dict = {}
    for name in ("type", "format", "timezone", "title", "channel", "template_id"):
        value = form.get(name, "").strip()
        if value:
            body[name] = value
    period = form.get("period", "").strip()
    if period == CUSTOM_PERIOD or (not period and (form.get("start_date") or form.get("end_date"))):
        for name in ("start_date", "end_date"):
            body[name] = form.get(name, "").strip() or None
    elif period:
        body["period"] = period
    if bot_ids:
        body["bot_id"] = bot_ids
    body["include_charts"] = form.get("include_charts") == "on"
    report_type = reports.report_types.get(body.get("type", ""))
    names = ordered_sections(chosen_sections, report_type, reports.sections)
    section_items = []
    for name in names:
        section = reports.sections.get(name)
        options = _options(form, f"s.{name}.", section.options) if section is not None else {}
        section_items.append({"type": name, **options})
    defaults = list(report_type.default_sections) if report_type is not None else []
    # The type's own sections without options are what the type does anyway: leave the list out,
    # so a template's sections (or the type's future defaults) apply.
    if section_items and not (names == defaults and all(len(item) == 1 for item in section_items)):
        body["sections"] = section_items
    exporter = reports.exporters.get(body.get("format", ""))
    if exporter is not None:
        options = _options(form, f"o.{exporter.format}.", getattr(exporter, "options", None) or {})
        if options:
            body["options"] = options
    return body, names


def schedule_body(form: Mapping[str, str], creating: bool) -> dict:
    """The body of the schedule form (all fields; an edit sends them all as its changes)."""
    body: dict = {}
    for name in ("name", "type", "format", "cron", "timezone", "period", "template_id", "subject"):
        value = form.get(name, "").strip()
        if value:
            body[name] = value
        elif not creating and name in ("template_id", "subject"):
            body[name] = None
    if not creating and "name" not in body:
        body["name"] = None
    recipients = re.split(r"[\s,;]+", form.get("recipients", ""))
    body["recipients"] = [item for item in recipients if item]
    body["enabled"] = form.get("enabled") == "on"
    return body


def template_body(form: Mapping[str, str], chosen_sections: List[str], reports) -> dict:
    """The body of the new-template form."""
    body: dict = {}
    for name in ("name", "description", "type", "format"):
        value = form.get(name, "").strip()
        if value:
            body[name] = value
    report_type = reports.report_types.get(body.get("type", ""))
    names = ordered_sections(chosen_sections, report_type, reports.sections)
    if names:
        body["sections"] = [{"type": name} for name in names]
    return body


def field_errors(details: Iterable[Mapping], section_names: List[str] = (),
                 format_name: str = "") -> Dict[str, List[str]]:
    """``{form field: [problem, ...]}`` from an error's ``details``; what names no field of the
    form is kept under ``""`` (the summary at the top of the form)."""
    errors: Dict[str, List[str]] = {}
    for detail in details:
        field, problem = str(detail.get("field", "")), str(detail.get("problem", ""))
        name = field
        found = re.match(r"sections\[(\d+)\](?:\.(\w+))?$", field)
        if found:
            index, option = int(found.group(1)), found.group(2)
            if index < len(section_names) and option and option != "type":
                name = f"s.{section_names[index]}.{option}"
            else:
                name = "sections"
        elif field.startswith("options.") and format_name:
            name = f"o.{format_name}.{field[len('options.'):]}"
        elif field.startswith("bot_id"):
            name = "bot_id"
        errors.setdefault(name, []).append(problem)
    return errors


def first(values: Optional[list]) -> str:
    return values[0] if values else ""
