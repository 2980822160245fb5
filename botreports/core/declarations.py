"""Checks of what plugins declare (at start-up) and of what sections return (at collect time).

Every message names the plugin and the object, and suggests the nearest valid name when a
name is misspelt ("did you mean 'int'?"), so a mistake stops start-up instead of surfacing
later as a silently skipped validation or a failing exporter.
"""
from __future__ import annotations

import difflib
from typing import Any, Iterable, List, Mapping, Optional

from .errors import PluginError, ReportFailed
from .models import (Chart, Column, DataSourceFactory, DeliveryChannel, Exporter, Kpi, Kpis, Option, ReportType,
                     Section, Series, Table, Template, Text)
from .params import check_option

#: The types an ``Option`` may declare, and the Python values each accepts.
OPTION_TYPES = ("str", "int", "float", "bool", "list", "dict")
#: Names authors reach for (JSON Schema's, Python's long ones) and the type they mean.
OPTION_TYPE_ALIASES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool",
                       "array": "list", "object": "dict", "text": "str", "double": "float", "tuple": "list",
                       "mapping": "dict"}
#: What each ``register_*`` hook must return, one object or a list of them.
CONTRIBUTION_TYPES = {"register_report_types": ReportType, "register_sections": Section,
                      "register_exporters": Exporter, "register_data_sources": DataSourceFactory,
                      "register_templates": Template, "register_delivery_channels": DeliveryChannel}
BLOCK_TYPES = (Kpis, Table, Chart, Text)


def did_you_mean(name: Any, candidates: Iterable[str], aliases: Optional[Mapping[str, str]] = None) -> str:
    """``"; did you mean 'int'?"`` for the candidate nearest ``name``, or ``""`` if none is near."""
    if not isinstance(name, str):
        return ""
    candidates = list(candidates)
    alias = (aliases or {}).get(name.lower())
    if alias in candidates:
        return f"; did you mean {alias!r}?"
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _name(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def option_problems(name: Any, option: Any) -> List[str]:
    """What is wrong with one option declaration (empty when it is sound)."""
    if not _name(name):
        return [f"option names must be non-empty strings, not {name!r}"]
    if not isinstance(option, Option):
        return [f"option {name!r} must be an Option, not {type(option).__name__}"]
    if option.type not in OPTION_TYPES:
        return [f"option {name!r} has unknown type {option.type!r}"
                f"{did_you_mean(option.type, OPTION_TYPES, OPTION_TYPE_ALIASES)} (types: {', '.join(OPTION_TYPES)})"]
    problems = []
    if option.minimum is not None and option.maximum is not None and option.minimum > option.maximum:
        problems.append(f"option {name!r} has minimum {option.minimum!r} above maximum {option.maximum!r}")
    for choice in option.choices or ():
        found: list = []
        check_option(found, name, Option(option.type), choice)
        if found:
            problems.append(f"option {name!r} lists choice {choice!r}, which is not of type {option.type}")
    if option.default is not None:
        found = []
        check_option(found, name, option, option.default)
        problems.extend(f"option {name!r} has default {option.default!r}, which {problem}" for _f, problem in found)
    return problems


def _options_problems(options: Any) -> List[str]:
    if not isinstance(options, Mapping):
        return [f"options must be a mapping of name to Option, not {type(options).__name__}"]
    return [problem for name, option in options.items() for problem in option_problems(name, option)]


def contribution_problems(hook_name: str, item: Any) -> List[str]:
    """What is wrong with one object a ``register_*`` hook returned (empty when it is sound)."""
    expected = CONTRIBUTION_TYPES.get(hook_name)
    if expected is not None and not isinstance(item, expected):
        wrong = next((hook for hook, kind in CONTRIBUTION_TYPES.items() if isinstance(item, kind)), None)
        hint = f" (a {type(item).__name__} belongs in {wrong})" if wrong else ""
        return [f"returned {type(item).__name__} {item!r:.60}, expected {expected.__name__}{hint}"]
    problems: List[str] = []
    if isinstance(item, Section):
        if not callable(item.collect):
            problems.append("collect must be callable: collect(ctx) -> list of blocks")
        if item.validate is not None and not callable(item.validate):
            problems.append("validate must be callable or None")
        problems += _options_problems(item.options)
    elif isinstance(item, Exporter):
        if not callable(item.export):
            problems.append("export must be callable: export(document, stream, options)")
        if not (isinstance(item.extension, str) and item.extension.startswith(".") and len(item.extension) > 1
                and "/" not in item.extension):
            example = str(item.extension).strip("./") or "txt"
            problems.append(f"extension {item.extension!r} must start with a dot, e.g. '.{example}'")
        if not (isinstance(item.media_type, str) and "/" in item.media_type):
            problems.append(f"media_type {item.media_type!r} must be a media type such as 'text/plain'")
        problems += _options_problems(item.options)
    elif isinstance(item, ReportType):
        value = item.default_sections
        if isinstance(value, str) or not all(_name(name) for name in value):
            problems.append(f"default_sections must be a list of section names, not {value!r}")
    elif isinstance(item, DataSourceFactory) and not callable(item.open):
        problems.append("open must be callable: open(url) -> a data source")
    elif isinstance(item, DeliveryChannel) and not callable(item.deliver):
        problems.append("deliver must be callable")
    return problems


def check_contribution(hook_name: str, plugin_name: str, key: str, item: Any) -> None:
    """Raise ``PluginError`` naming the plugin when ``item`` is not a sound contribution."""
    problems = contribution_problems(hook_name, item)
    expected = CONTRIBUTION_TYPES.get(hook_name, object)
    label = getattr(item, key, None) if isinstance(item, expected) else None
    if isinstance(item, expected) and not _name(label):
        problems.append(f"{key} must be a non-empty string, not {label!r}")
    if problems:
        what = f" {key} {label!r}" if _name(label) else ""
        raise PluginError(f"plugin {plugin_name!r}: {hook_name}{what}: " + "; ".join(problems))


def check_template_references(templates: Mapping[str, tuple], report_types: Mapping, sections: Mapping,
                              exporters: Mapping) -> None:
    """A plugin's template must name a registered report type, format and sections."""
    for template_id, (template, plugin_name) in templates.items():
        problems = []
        if template.type not in report_types:
            problems.append(f"names unknown report type {template.type!r}{did_you_mean(template.type, report_types)}")
        if template.format not in exporters:
            problems.append(f"names unknown format {template.format!r}{did_you_mean(template.format, exporters)}")
        for entry in template.sections or ():
            name = (entry.get("type") or entry.get("name")) if isinstance(entry, Mapping) else entry
            if name not in sections:
                problems.append(f"names unknown section {name!r}{did_you_mean(name, sections)}")
        if problems:
            raise PluginError(f"plugin {plugin_name!r}: register_templates id {template_id!r}: " + "; ".join(problems))


def unknown_hook_message(hook_names: Iterable[str], unknown: Mapping[str, List[str]]) -> str:
    """``plugin 'x' implements unknown hook 'register_exporter'; did you mean 'register_exporters'?``"""
    names = list(hook_names)
    return "; ".join(f"plugin {plugin!r} implements unknown hook {hook!r}{did_you_mean(hook, names)}"
                     for hook, plugins in sorted(unknown.items()) for plugin in plugins)


def check_section_result(section_name: str, plugin_name: str, blocks: Any) -> list:
    """The blocks a section's ``collect`` returned, as a list; ``ReportFailed`` naming the section
    and its plugin when they are not document blocks (rather than a failure later in an exporter)."""
    where = f"section {section_name!r} of plugin {plugin_name}"
    if blocks is None:
        return []
    if isinstance(blocks, (str, bytes, Mapping)) or not isinstance(blocks, (list, tuple)):
        raise ReportFailed(f"{where} returned {type(blocks).__name__}, expected a list of blocks "
                        "(Kpis, Table, Chart, Text)")
    for index, block in enumerate(blocks):
        if not isinstance(block, BLOCK_TYPES):
            raise ReportFailed(f"{where}: block {index} is {type(block).__name__}, expected Kpis, Table, Chart or Text")
        if isinstance(block, Kpis):
            wrong = next((item for item in block.items if not isinstance(item, Kpi)), None)
            if wrong is not None:
                raise ReportFailed(f"{where}: block {index} (Kpis) holds {type(wrong).__name__}, expected Kpi")
        elif isinstance(block, Table):
            wrong = next((column for column in block.columns if not isinstance(column, Column)), None)
            if wrong is not None:
                raise ReportFailed(f"{where}: block {index} (table {block.title!r}) has a column of type "
                                f"{type(wrong).__name__}, expected Column")
        elif isinstance(block, Chart):
            for series in block.series:
                if not isinstance(series, Series) or len(series.values) != len(block.categories):
                    raise ReportFailed(f"{where}: block {index} (chart {block.title!r}) needs Series with one value "
                                    f"per category ({len(block.categories)})")
    return list(blocks)
