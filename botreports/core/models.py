"""attrs classes: the records botreports stores, the values its plugins return,
and the document model every exporter renders (DESIGN §4)."""
from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Iterable, Mapping, Optional, Union

import attrs

# -- who is asking -----------------------------------------------------------


@attrs.frozen
class Principal:
    """An authenticated caller. ``org_id`` None is the local system (the CLI)."""

    id: str
    org_id: Optional[str]
    roles: frozenset = attrs.field(converter=frozenset, factory=frozenset)
    name: str = ""
    permissions: frozenset = attrs.field(converter=frozenset, factory=frozenset)
    via: str = ""

    @property
    def is_system(self) -> bool:
        return self.org_id is None


@attrs.frozen
class RequestInfo:
    """What an adapter knows of a request, handed to the ``authenticate`` hook."""

    method: str = "GET"
    path: str = "/"
    headers: Mapping[str, str] = attrs.field(factory=dict)
    query: Mapping[str, str] = attrs.field(factory=dict)
    remote_addr: str = ""
    #: The user the server or the host already authenticated (WSGI ``REMOTE_USER``), if any.
    remote_user: Optional[str] = None
    #: What a host's middleware left in the WSGI environ under ``botreports.identity`` (any object).
    identity: Any = None

    def header(self, name: str) -> Optional[str]:
        """A header by case-insensitive name."""
        lname = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lname:
                return value
        return None


# -- plugin contributions ----------------------------------------------------


@attrs.frozen
class Option:
    """One option a section accepts: its type (str, int, bool, float, list, dict), default and limits."""

    type: str = "str"
    default: Any = None
    description: str = ""
    choices: Optional[tuple] = None
    minimum: Optional[float] = None
    maximum: Optional[float] = None


@attrs.frozen
class Section:
    """A catalog section: ``collect(ctx)`` returns a list of document blocks."""

    name: str
    title: str
    collect: Callable[["SectionContext"], list]
    description: str = ""
    options: Mapping[str, Option] = attrs.field(factory=dict)
    #: Optional ``validate(options) -> [(option, problem)]`` for rules beyond each option's type
    #: (options that depend on each other); called at request time with defaults filled in.
    validate: Optional[Callable[[Mapping], list]] = None


@attrs.frozen
class ReportType:
    """A report type: its default sections and the section giving its raw data."""

    name: str
    title: str
    description: str = ""
    default_sections: tuple = ()
    raw_data_section: Optional[str] = None
    requires_sections: bool = False


@attrs.frozen
class Exporter:
    """A format: ``export(document, stream, options)`` writes bytes to ``stream``."""

    format: str
    extension: str
    media_type: str
    export: Callable[..., None]
    title: str = ""
    description: str = ""
    #: Options the format accepts in a request's ``options`` (validated, as ``options.<name>``).
    options: Mapping[str, Option] = attrs.field(factory=dict)


@attrs.frozen
class DataSourceFactory:
    """Opens an analytics data source for URLs of one scheme."""

    scheme: str
    open: Callable[[str], Any]
    description: str = ""


class Refused(str):
    """A delivery problem that retrying cannot fix (e.g. a webhook to a private address).

    A channel returns it instead of a plain string for that recipient; the
    attempt is recorded as ``refused`` and never retried.
    """


@attrs.frozen
class DeliveryChannel:
    """Sends a finished report: ``deliver(report, artifact_path, recipients, reports)``."""

    name: str
    deliver: Callable[..., Any]
    description: str = ""


# -- stored records ----------------------------------------------------------

REPORT_STATES = ("pending", "running", "completed", "failed", "expired")
FINAL_STATES = ("completed", "failed", "expired")


@attrs.define
class Report:
    """A report request and its lifecycle, as stored."""

    id: str
    org_id: Optional[str]
    owner_id: str
    type: str
    format: str
    title: str
    parameters: dict
    state: str = "pending"
    progress: int = 0
    stage: str = "queued"
    error: Optional[str] = None
    created_at: Optional[dt.datetime] = None
    started_at: Optional[dt.datetime] = None
    completed_at: Optional[dt.datetime] = None
    expires_at: Optional[dt.datetime] = None
    template_id: Optional[str] = None
    template_version: Optional[int] = None
    schedule_id: Optional[str] = None
    artifact_path: Optional[str] = None
    artifact_size: Optional[int] = None
    artifact_sha256: Optional[str] = None
    media_type: Optional[str] = None
    filename: Optional[str] = None
    attempts: int = 0
    #: Until when the worker running it holds it (renewed while it works); None unless running.
    lease_expires_at: Optional[dt.datetime] = None


@attrs.define
class Schedule:
    """A report definition fired by a cron expression in a timezone."""

    id: str
    org_id: Optional[str]
    owner_id: str
    name: str
    definition: dict
    format: str
    cron: str
    timezone: str = "UTC"
    period: str = "previous_day"
    recipients: list = attrs.Factory(list)
    enabled: bool = True
    created_at: Optional[dt.datetime] = None
    updated_at: Optional[dt.datetime] = None
    next_run_at: Optional[dt.datetime] = None
    #: The owner's roles and how they signed in, to rebuild and re-check them at run time.
    owner_roles: list = attrs.Factory(list)
    owner_via: Optional[str] = None
    #: Mail subject and body (plain text); empty means a default naming the report.
    subject: Optional[str] = None
    message: Optional[str] = None
    #: Webhook URLs told (POST JSON with a signed link) when a run's report is ready.
    webhooks: list = attrs.Factory(list)


@attrs.define
class Template:
    """A reusable report definition; built-in ones have ``org_id`` None."""

    id: str
    name: str
    description: str = ""
    type: str = "custom"
    sections: list = attrs.Factory(list)
    defaults: dict = attrs.Factory(dict)
    format: str = "pdf"
    builtin: bool = False
    org_id: Optional[str] = None
    owner_id: Optional[str] = None
    version: int = 1
    presentation: dict = attrs.Factory(dict)
    created_at: Optional[dt.datetime] = None
    updated_at: Optional[dt.datetime] = None


@attrs.frozen
class ApiKey:
    """A stored API key: only its hash and a short prefix for display."""

    id: str
    org_id: str
    role: str
    name: str
    prefix: str
    created_at: dt.datetime


# -- the document model ------------------------------------------------------

COLUMN_TYPES = ("text", "integer", "number", "percent", "duration", "datetime", "date")
CHART_KINDS = ("bar", "line", "stacked_bar", "pie")
#: Why a KPI or a column has no value: its data source keeps nothing it could be computed from
#: (not the same as zero). Exporters print it where the value would be.
NOT_RECORDED = "not recorded by this source"


@attrs.frozen
class Period:
    """The instants a report covers: ``[start, end)`` in UTC, shown in ``timezone``."""

    start: dt.datetime
    end: dt.datetime
    timezone: str = "UTC"

    @property
    def length(self) -> dt.timedelta:
        return self.end - self.start

    def previous(self) -> "Period":
        """The same local calendar span just before this one, what changes compare with
        (``core.scheduling.previous_period``: the month before, the N local days before)."""
        from .scheduling import previous_period  # scheduling builds on this module

        return previous_period(self)


@attrs.frozen
class Kpi:
    """One headline metric; ``change`` is the relative change vs the previous period.

    ``unavailable`` is the reason a metric has no value at all (``NOT_RECORDED``): its value,
    previous value and change are then None, and exporters print the reason instead of a number.
    """

    name: str
    label: str
    value: Union[int, float, None]
    unit: str = ""
    previous: Union[int, float, None] = None
    change: Optional[float] = None
    unavailable: Optional[str] = None


@attrs.frozen
class Kpis:
    """A row of headline metrics."""

    items: tuple = attrs.field(converter=tuple)
    kind: str = "kpis"


@attrs.frozen
class Column:
    """A typed table column; ``unavailable`` is the reason it holds no values (``NOT_RECORDED``):
    its cells are empty and exporters say why beside the table."""

    name: str
    label: str
    type: str = attrs.field(default="text", validator=attrs.validators.in_(COLUMN_TYPES))
    unavailable: Optional[str] = None


@attrs.frozen
class Table:
    """Typed rows; a raw-data table may carry an iterator streamed by exporters."""

    title: str
    columns: tuple = attrs.field(converter=tuple)
    rows: Iterable = attrs.field(factory=list, eq=False)
    raw: bool = False
    kind: str = "table"

    def unavailable_note(self) -> Optional[str]:
        """``Errored replies, CSAT: not recorded by this source.``: the columns without values and
        why, as exporters print it beside the table; None when every column has its values."""
        reasons: dict = {}
        for column in self.columns:
            if column.unavailable:
                reasons.setdefault(column.unavailable, []).append(column.label)
        if not reasons:
            return None
        return " ".join(f"{', '.join(labels)}: {reason}." for reason, labels in reasons.items())


@attrs.frozen
class Series:
    """One labelled series of values over a chart's categories."""

    name: str
    values: tuple = attrs.field(converter=tuple)


@attrs.frozen
class Chart:
    """A bar, line, stacked bar or pie chart over categories (dates or labels)."""

    title: str
    chart: str = attrs.field(validator=attrs.validators.in_(CHART_KINDS))
    categories: tuple = attrs.field(converter=tuple)
    series: tuple = attrs.field(converter=tuple)
    x_label: str = ""
    y_label: str = ""
    kind: str = "chart"


@attrs.frozen
class Text:
    """Markdown text (sanitized when rendered)."""

    markdown: str
    kind: str = "text"


Block = Union[Kpis, Table, Chart, Text]


@attrs.frozen
class SectionResult:
    """A rendered section: its name, title and blocks."""

    name: str
    title: str
    blocks: tuple = attrs.field(converter=tuple)
    description: str = ""


@attrs.frozen
class ReportDocument:
    """A report computed once; every exporter renders this same object."""

    title: str
    type: str
    period: Period
    generated_at: dt.datetime
    parameters: Mapping[str, Any]
    sections: tuple = attrs.field(converter=tuple)
    report_id: Optional[str] = None
    organization: Optional[str] = None
    schema: str = "botreports/1"
    #: The template's look (intro_markdown, css, layout, logo), when a template made the report.
    presentation: Mapping[str, Any] = attrs.field(factory=dict)
    #: What the report was computed from (``core.manifest``): exact parameters, metric-definition
    #: and code versions, the data watermark. Every format prints it; the file's own hash is not in it.
    manifest: Mapping[str, Any] = attrs.field(factory=dict)

    def blocks(self, kind: Optional[str] = None):
        """Every block of every section, optionally only of one kind."""
        for section in self.sections:
            for block in section.blocks:
                if kind is None or block.kind == kind:
                    yield section, block

    def raw_table(self) -> Optional[Table]:
        """The report's raw-data table (the one CSV exports), if any."""
        for _, block in self.blocks("table"):
            if block.raw:
                return block
        return None


# -- what a section receives -------------------------------------------------


@attrs.frozen
class Scope:
    """What the analytics queries filter on: organisation, period, bots, channel."""

    org_id: Optional[str]
    period: Period
    bot_ids: tuple = ()
    channel: Optional[str] = None

    def with_period(self, period: Period) -> "Scope":
        return attrs.evolve(self, period=period)


@attrs.frozen
class SectionContext:
    """Everything ``Section.collect`` may use."""

    scope: Scope
    source: Any
    options: Mapping[str, Any]
    principal: Principal
    include_charts: bool = True
    reports: Any = None
    settings: Any = None
    #: The instant the report is computed as of (its ``generated_at``; the original one when a
    #: report is verified): a section that needs "now" reads it here, never from the clock.
    now: Optional[dt.datetime] = None
