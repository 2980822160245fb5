"""botreports: analytics reports about chat bots, generated, scheduled and exported.

Embed it (``Reports``), extend it (``hookimpl``), or run it (``botreports serve``).
"""
from .hookspecs import hookimpl
from .core.errors import (BotReportsError, Conflict, InvalidCredentials, NotFound, PayloadTooLarge,
                          PermissionDenied, PluginError, RateLimited, ReportFailed, Unauthorized,
                          ValidationError)
from .core.models import (Chart, Column, DataSourceFactory, DeliveryChannel, Exporter, Kpi, Kpis, Option,
                          Period, Principal, Report, ReportDocument, ReportType, RequestInfo, Schedule,
                          Scope, Section, SectionContext, SectionResult, Series, Table, Template, Text)
from .core.service import Reports
from .plugin_api import PLUGIN_API, TransientError

__version__ = "0.1.0"

__all__ = [
    "Reports", "hookimpl", "__version__", "PLUGIN_API",
    "BotReportsError", "Conflict", "InvalidCredentials", "NotFound", "PayloadTooLarge", "PermissionDenied",
    "PluginError", "RateLimited", "ReportFailed", "TransientError", "Unauthorized", "ValidationError",
    "Chart", "Column", "DataSourceFactory", "DeliveryChannel", "Exporter", "Kpi", "Kpis", "Option", "Period",
    "Principal", "Report", "ReportDocument", "ReportType", "RequestInfo", "Schedule", "Scope", "Section",
    "SectionContext", "SectionResult", "Series", "Table", "Template", "Text",
]
