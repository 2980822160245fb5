"""The hook specifications of botreports: markers and specs, nothing else.

Every concrete part of botreports (report types, sections, exporters, data
sources, templates, delivery channels, authentication) is a plugin that
implements some of these hooks with ``@botreports.hookimpl``. The types in the
signatures are those of ``botreports.plugin_api``; a ``register_*`` hook returns one
object or a sequence of them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence, Union

import pluggy

if TYPE_CHECKING:  # the specifications name the types; importing them here would be a cycle
    from .core.models import (DataSourceFactory, DeliveryChannel, Exporter, Principal, Report, ReportType,
                              RequestInfo, Section, Template)
    from .core.service import Reports

hookspec = pluggy.HookspecMarker("botreports")
hookimpl = pluggy.HookimplMarker("botreports")


@hookspec
def register_report_types() -> Union[ReportType, Sequence[ReportType], None]:
    """Return a ``ReportType`` or a list of them.

    Called once per ``Reports`` instance at start-up, on every plugin. A report
    type names its default sections and its raw-data section. A name already
    registered by another plugin stops start-up with an error naming both.
    """


@hookspec
def register_sections() -> Union[Section, Sequence[Section], None]:
    """Return a ``Section`` or a list of them.

    Called once at start-up on every plugin. A section declares the options it
    accepts and a ``collect(ctx)`` callable that returns a list of document
    blocks (``Kpis``, ``Table``, ``Chart``, ``Text``). Duplicate names fail.
    """


@hookspec
def register_exporters() -> Union[Exporter, Sequence[Exporter], None]:
    """Return an ``Exporter`` or a list of them.

    Called once at start-up on every plugin. An exporter owns one format name,
    its file extension and media type, and ``export(document, stream, options)``
    which writes the rendered ``ReportDocument`` to a binary stream.
    """


@hookspec
def register_data_sources() -> Union[DataSourceFactory, Sequence[DataSourceFactory], None]:
    """Return a ``DataSourceFactory`` or a list of them.

    Called once at start-up on every plugin. A factory maps a URL scheme
    (``sqlite``, ``postgresql``) to a callable that opens a data source object
    answering the section queries for that URL. Duplicate schemes fail.
    """


@hookspec
def register_templates() -> Union[Template, Sequence[Template], None]:
    """Return a ``Template`` or a list of them.

    Called once at start-up on every plugin. These are the built-in templates a
    plugin ships; they are visible to every organisation and read-only.
    """


@hookspec
def register_delivery_channels() -> Union[DeliveryChannel, Sequence[DeliveryChannel], None]:
    """Return a ``DeliveryChannel`` or a list of them.

    Called once at start-up on every plugin. A channel (``email``,
    ``webhook``, ...) sends a finished report to its recipients.
    """


@hookspec(firstresult=True)
def authenticate(request: RequestInfo, reports: Reports) -> Optional[Principal]:
    """Turn a request into the ``Principal`` who is asking, or return None.

    ``request`` is a ``RequestInfo`` (method, path, headers, query, remote
    address, and an embedding host's ``remote_user`` and ``identity``), never an
    adapter's own object. The first plugin that returns a Principal wins; plugins
    registered later are asked first, so an embedding host can put its own
    session authentication in front of the built-ins. Raise
    ``InvalidCredentials`` to reject credentials that were given but are bad
    (the address that sent them spends its failure budget).
    """


@hookspec
def authorize(principal: Principal, action: str, resource: object, reports: Reports) -> Optional[bool]:
    """Allow or deny ``action`` (e.g. ``"report.delete"``) on ``resource``.

    Every implementation is called. Any ``False`` denies, else any ``True``
    allows, else (all None) the built-in permission table decides.
    ``resource`` is the object acted upon (a ``Report``, ``Schedule``,
    ``Template``) or None for actions on a collection.
    """


@hookspec
def report_finished(report: Report, reports: Reports) -> None:
    """Called on every plugin after a report reached a final state.

    ``report`` is the stored ``Report`` (``completed`` or ``failed``). The
    return value is ignored; an exception is logged and does not fail the
    report. A host uses it to tell the user who asked that the file is ready.
    """


@hookspec
def startup(reports: Reports) -> None:
    """Called on every plugin once, after all registries are built.

    ``reports`` is the ``Reports`` facade. Use it to check configuration or
    warm caches; raising stops the start-up with that error.
    """
