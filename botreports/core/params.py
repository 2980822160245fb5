"""Report requests: the typed body of a generation request and its validation
into a ``ReportSpec`` that the pipeline runs. Every problem names its field."""
from __future__ import annotations

import datetime as dt
import re
from typing import Any, Dict, List, Mapping, Optional

import attrs

from . import convert
from .errors import ValidationError
from .models import Period
from .scheduling import RELATIVE_PERIODS, parse_instant, relative_period, zone

MAX_TITLE = 200
MAX_BOT_IDS = 100
#: The period of a request that gives neither dates nor a period (the built-in templates' default).
DEFAULT_PERIOD = "last_30_days"
#: What a title, a bot id or a channel must not contain (``convert.UNSAFE_CHARACTERS``).
UNSAFE_TITLE_CHARACTERS = convert.UNSAFE_CHARACTERS


@attrs.define
class GenerateRequest:
    """The JSON body of ``POST /generate`` (and ``Reports.generate``)."""

    type: Optional[str] = None
    format: str = "pdf"
    start_date: Optional[str] = None
    end_date: Optional[str] = None
    period: Optional[str] = None
    timezone: str = "UTC"
    bot_id: Any = None
    channel: Optional[str] = None
    include_charts: bool = True
    title: Optional[str] = None
    sections: Optional[List[Dict[str, Any]]] = None
    template_id: Optional[str] = None
    options: Dict[str, Any] = attrs.Factory(dict)


@attrs.frozen
class SectionRequest:
    """One section of a report with its validated options."""

    name: str
    options: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class ReportSpec:
    """A validated report definition: everything the pipeline needs."""

    type: str
    format: str
    period: Period
    title: str
    sections: tuple
    bot_ids: tuple = ()
    channel: Optional[str] = None
    include_charts: bool = True
    template_id: Optional[str] = None
    options: Mapping[str, Any] = attrs.field(factory=dict)

    def parameters(self) -> dict:
        """The JSON form stored with the report, re-validated when a worker runs it."""
        return {
            "type": self.type,
            "format": self.format,
            "start_date": convert.unstructure(self.period.start),
            "end_date": convert.unstructure(self.period.end),
            "timezone": self.period.timezone,
            "bot_id": list(self.bot_ids) or None,
            "channel": self.channel,
            "include_charts": self.include_charts,
            "title": self.title,
            "sections": [{"type": s.name, **s.options} for s in self.sections],
            "template_id": self.template_id,
            "options": dict(self.options),
        }


def title_problem(text: Any) -> Optional[str]:
    """Why ``text`` is not a usable title (a report's title, a schedule's or template's name), or None."""
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TITLE:
        return f"must be 1 to {MAX_TITLE} characters"
    if UNSAFE_TITLE_CHARACTERS.search(text):
        return "must not contain control or bidirectional-override characters"
    return None


def check_option(problems: list, field: str, option, value):
    """Validate one section option against its ``Option`` declaration."""
    kinds = {"str": str, "int": int, "float": (int, float), "bool": bool, "list": list, "dict": dict}
    expected = kinds.get(option.type, object)
    if isinstance(value, bool) and option.type in ("int", "float"):
        problems.append((field, f"must be of type {option.type}"))
        return value
    if not isinstance(value, expected):
        problems.append((field, f"must be of type {option.type}"))
        return value
    if option.choices is not None and value not in option.choices:
        problems.append((field, f"must be one of {', '.join(map(str, option.choices))}"))
    if option.minimum is not None and isinstance(value, (int, float)) and value < option.minimum:
        problems.append((field, f"must be at least {option.minimum:g}"))
    if option.maximum is not None and isinstance(value, (int, float)) and value > option.maximum:
        problems.append((field, f"must be at most {option.maximum:g}"))
    return value


def validate(data: Any, *, report_types, sections, exporters, settings,
             now: Optional[dt.datetime] = None) -> ReportSpec:
    """Turn a request body into a ``ReportSpec`` or raise one ``ValidationError`` listing every problem."""
    request = convert.structure(data, GenerateRequest)
    problems: list = []
    now = now or dt.datetime.now(dt.timezone.utc)

    report_type = None
    if request.type is None:
        problems.append(("type", f"is required; one of {', '.join(sorted(report_types))}"))
    elif request.type not in report_types:
        problems.append(("type", f"unknown report type {request.type!r}; valid: {', '.join(sorted(report_types))}"))
    else:
        report_type = report_types[request.type]
    if request.format not in exporters:
        problems.append(("format", f"unknown format {request.format!r}; valid: {', '.join(sorted(exporters))}"))
    else:
        _exporter_options(request, exporters, problems)

    try:
        zone(request.timezone)
        tz_ok = True
    except ValueError as exc:
        problems.append(("timezone", f"{exc}; use an IANA name such as Europe/Berlin"))
        tz_ok = False

    period = None
    if tz_ok:
        period = _period(request, problems, settings, now)

    bot_ids = request.bot_id
    if bot_ids is None:
        bot_ids = ()
    elif isinstance(bot_ids, str):
        bot_ids = (bot_ids,)
    elif isinstance(bot_ids, list) and all(isinstance(b, str) for b in bot_ids) and len(bot_ids) <= MAX_BOT_IDS:
        bot_ids = tuple(dict.fromkeys(bot_ids))
    else:
        problems.append(("bot_id", f"must be a bot id or a list of at most {MAX_BOT_IDS} bot ids"))
        bot_ids = ()

    for index, bot_id in enumerate(bot_ids):
        issue = convert.unsafe_character_problem(bot_id)
        if issue:
            problems.append(("bot_id" if isinstance(request.bot_id, str) else f"bot_id[{index}]", issue))
    channel_issue = convert.unsafe_character_problem(request.channel) if isinstance(request.channel, str) else None
    if channel_issue:
        problems.append(("channel", channel_issue))
    title_issue = title_problem(request.title) if request.title is not None else None
    if title_issue:
        problems.append(("title", title_issue))

    section_requests = _sections(request, report_type, sections, settings, problems)
    if problems:
        raise ValidationError.from_problems(problems)
    title = (request.title or "").strip() or f"{report_type.title} report"
    return ReportSpec(
        type=request.type, format=request.format, period=period, title=title,
        sections=tuple(section_requests), bot_ids=bot_ids, channel=request.channel,
        include_charts=request.include_charts, template_id=request.template_id,
        options=request.options)


def _exporter_options(request: GenerateRequest, exporters, problems: list) -> None:
    """Check ``options`` against what the chosen format declares.

    An option of another format is refused too: it would be stored with the
    report and silently do nothing (``max_table_rows`` meant for a PDF does not
    shorten a CSV). A template's own option defaults are fitted to the
    requested format before this (``Reports.apply_template``).
    """
    declared = exporter_options(exporters[request.format])
    known_elsewhere = {name for exporter in exporters.values() for name in exporter_options(exporter)}
    for key, value in request.options.items():
        if key in declared:
            check_option(problems, f"options.{key}", declared[key], value)
        elif key in known_elsewhere:
            problems.append((f"options.{key}", f"not an option of format {request.format}"))
        else:
            accepted = ", ".join(sorted(declared)) or "none"
            problems.append((f"options.{key}", f"unknown option for format {request.format}; accepted: {accepted}"))


def exporter_options(exporter) -> Mapping[str, Any]:
    """The options an exporter declares (none for a third-party exporter that declares nothing)."""
    return getattr(exporter, "options", None) or {}


def _period(request: GenerateRequest, problems: list, settings, now: dt.datetime) -> Optional[Period]:
    tz = request.timezone
    if request.period is not None:
        if request.start_date or request.end_date:
            problems.append(("period", "give either period or start_date and end_date, not both"))
            return None
        if request.period not in RELATIVE_PERIODS:
            problems.append(("period", f"must be one of {', '.join(RELATIVE_PERIODS)}"))
            return None
        return relative_period(request.period, now, tz)
    if request.start_date is None and request.end_date is None:
        return relative_period(DEFAULT_PERIOD, now, tz)
    start = end = None
    for field in ("start_date", "end_date"):
        value = getattr(request, field)
        if value is None:
            other = "end_date" if field == "start_date" else "start_date"
            problems.append((field, f"is required with {other} (YYYY-MM-DD); or give neither, or a period "
                                    "such as last_7_days"))
            continue
        try:
            instant = parse_instant(value, tz, end=(field == "end_date"))
        except ValueError as exc:
            problems.append((field, str(exc)))
            continue
        if field == "start_date":
            start = instant
        else:
            end = instant
    if start is None or end is None:
        return None
    if end <= start:
        problems.append(("end_date", "must not be before start_date"))
        return None
    if end - start > dt.timedelta(days=settings.max_range_days):
        problems.append(("end_date", f"the period is longer than the maximum of {settings.max_range_days} days"))
        return None
    return Period(start, end, tz)


def _sections(request: GenerateRequest, report_type, sections, settings, problems: list) -> List[SectionRequest]:
    if request.sections is None:
        if report_type is not None and report_type.requires_sections:
            problems.append(("sections", f"a {report_type.name} report needs a list of sections; "
                                         f"valid: {', '.join(sorted(sections))}"))
            return []
        names = report_type.default_sections if report_type is not None else ()
        return [SectionRequest(name) for name in names if name in sections]
    if not request.sections:
        problems.append(("sections", "must list at least one section"))
    if len(request.sections) > settings.max_sections:
        problems.append(("sections", f"at most {settings.max_sections} sections"))
        return []
    result = []
    for index, item in enumerate(request.sections):
        field = f"sections[{index}]"
        name = item.get("type")
        if not isinstance(name, str):
            problems.append((f"{field}.type", f"is required; valid: {', '.join(sorted(sections))}"))
            continue
        section = sections.get(name)
        if section is None:
            problems.append((f"{field}.type", f"unknown section {name!r}; valid: {', '.join(sorted(sections))}"))
            continue
        options = {}
        for key, value in item.items():
            if key == "type":
                continue
            if key not in section.options:
                accepted = ", ".join(sorted(section.options)) or "none"
                problems.append((f"{field}.{key}", f"unknown option for {name}; accepted: {accepted}"))
                continue
            options[key] = check_option(problems, f"{field}.{key}", section.options[key], value)
        if getattr(section, "validate", None) is not None:
            defaults = {key: option.default for key, option in section.options.items()}
            for key, problem in section.validate({**defaults, **options}):
                problems.append((f"{field}.{key}", problem))
        result.append(SectionRequest(name, options))
    return result
