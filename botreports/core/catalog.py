"""The catalog: every report type, section, format and template this server offers, with the
options each accepts as JSON Schema, its description and the plugin it came from. The same
option schemas go into the OpenAPI document, so both always say what validation accepts."""
from __future__ import annotations

from typing import Any, Dict, Mapping

from .models import Option, Principal
from .plugin_manager import plugin_origin
from .views import template_view

#: An ``Option`` type -> its JSON Schema type (a JSON number with a fraction is not an ``int``).
JSON_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "list": "array",
              "dict": "object"}


def option_schema(option: Option) -> Dict[str, Any]:
    """One option as a JSON Schema: its type, default, description, choices and limits."""
    schema: Dict[str, Any] = {"type": JSON_TYPES.get(option.type, "string")}
    if option.description:
        schema["description"] = option.description
    if option.default is not None:
        schema["default"] = option.default
    if option.choices is not None:
        schema["enum"] = list(option.choices)
    if option.minimum is not None:
        schema["minimum"] = option.minimum
    if option.maximum is not None:
        schema["maximum"] = option.maximum
    return schema


def options_schema(options: Mapping[str, Option]) -> Dict[str, Any]:
    """A mapping of options as the JSON Schema of an object holding some of them, nothing else."""
    return {"type": "object", "properties": {name: option_schema(option) for name, option in options.items()},
            "additionalProperties": False}


def section_request_schema(name: str, section) -> Dict[str, Any]:
    """A section as a request names it: ``{"type": name, <option>: value, ...}``."""
    schema = options_schema(section.options)
    schema["properties"] = {"type": {"const": name}, **schema["properties"]}
    schema["required"] = ["type"]
    schema["description"] = section.title + (f": {section.description}" if section.description else "")
    return schema


def _origins(reports, kind: str) -> Dict[str, Dict[str, str]]:
    """``{name: {"plugin": registered name, "origin": builtin / distribution / embedder}}``."""
    found = {}
    for name, plugin_name in reports.registry_origins(kind).items():
        plugin = reports.pm.get_plugin(plugin_name)
        found[name] = {"plugin": plugin_name, "origin": plugin_origin(reports.pm, plugin) if plugin else "embedder"}
    return found


def catalog_view(reports, principal: Principal) -> Dict[str, Any]:
    """What a caller may ask for, as ``GET /api/v1/reports/catalog`` shows it (report_viewer:
    reading the catalog is part of generating, as reading templates is)."""
    templates = reports.list_templates(principal)  # authorizes template.list
    types, sections, formats = (_origins(reports, kind) for kind in ("report_types", "sections", "exporters"))
    template_origins = _origins(reports, "templates")
    return {
        "report_types": [
            {"name": name, "title": kind.title, "description": kind.description,
             "default_sections": list(kind.default_sections), "raw_data_section": kind.raw_data_section,
             "requires_sections": kind.requires_sections, **types[name]}
            for name, kind in sorted(reports.report_types.items())],
        "sections": [
            {"name": name, "title": section.title, "description": section.description,
             "options": options_schema(section.options), **sections[name]}
            for name, section in sorted(reports.sections.items())],
        "formats": [
            {"format": name, "extension": exporter.extension, "media_type": exporter.media_type,
             "title": exporter.title or name, "description": exporter.description,
             "options": options_schema(exporter.options), **formats[name]}
            for name, exporter in sorted(reports.exporters.items())],
        "templates": [
            {**template_view(template),
             **(template_origins.get(template.id) or {"plugin": None, "origin": "organisation"})}
            for template in templates],
    }
