"""The public API for plugin authors: everything a plugin imports comes from here.

``from botreports.plugin_api import hookimpl, Section, Kpis, Kpi, ...``. What lives under
``botreports.core`` and ``botreports.plugins`` is private and may change between releases;
the names below only ever gain members (``PLUGIN_API`` counts their versions).
"""
from .core.artifact_stream import ArtifactStream
from .core.datasource import AnalyticsSource
from .core.errors import (BotReportsError, ExportFailed, InvalidCredentials, PermissionDenied, PluginError,
                          ReportFailed, TransientError, Unauthorized, ValidationError)
from .core.models import (CHART_KINDS, COLUMN_TYPES, NOT_RECORDED, Chart, Column, DataSourceFactory, DeliveryChannel,
                          Exporter, Kpi, Kpis, Option, Period, Principal, Refused, Report, ReportDocument, ReportType,
                          RequestInfo, Scope, Section, SectionContext, SectionResult, Series, Table, Template, Text)
from .hookspecs import hookimpl

#: The version of the plugin API: hook signatures only ever gain arguments.
PLUGIN_API = 1

__all__ = [
    "PLUGIN_API", "hookimpl",
    # what register_* hooks return
    "ReportType", "Section", "Option", "Exporter", "DataSourceFactory", "DeliveryChannel", "Template", "Refused",
    # the document a section builds and an exporter renders
    "ReportDocument", "SectionResult", "Period", "Kpis", "Kpi", "Table", "Column", "Chart", "Series", "Text",
    "COLUMN_TYPES", "CHART_KINDS", "NOT_RECORDED",
    # what hooks and sections receive
    "SectionContext", "Scope", "Principal", "RequestInfo", "Report", "AnalyticsSource", "ArtifactStream",
    # errors a plugin raises or meets
    "BotReportsError", "ValidationError", "Unauthorized", "InvalidCredentials", "PermissionDenied", "PluginError",
    "ReportFailed", "ExportFailed", "TransientError",
]
