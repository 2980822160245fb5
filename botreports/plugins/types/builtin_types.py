"""The built-in report types of the seed."""
from ... import hookimpl
from ...core.models import ReportType


@hookimpl
def register_report_types():
    return [
        ReportType("usage", "Usage", "Bot usage and activity metrics",
                   default_sections=("usage_summary", "daily_activity")),
        ReportType("custom", "Custom", "Custom report with user-defined metrics and sections",
                   requires_sections=True),
    ]
