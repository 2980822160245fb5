"""The built-in report types of the seed: usage, conversations, performance,
compliance, and custom (any catalog sections, listed in the request)."""
from ... import hookimpl
from ...core.models import ReportType


@hookimpl
def register_report_types():
    return [
        ReportType("usage", "Usage", "Bot usage and activity metrics",
                   default_sections=("usage_summary", "daily_activity", "peak_hours", "usage_by_bot",
                                     "usage_by_channel", "top_users"),
                   raw_data_section="usage_raw"),
        ReportType("conversations", "Conversations", "Conversation analysis and statistics",
                   default_sections=("conversation_summary", "conversation_outcomes", "top_conversations",
                                     "top_intents", "satisfaction_scores", "handoffs"),
                   raw_data_section="conversations_raw"),
        ReportType("performance", "Performance", "System performance metrics",
                   default_sections=("latency", "error_rates", "llm_performance", "throughput", "system_health"),
                   raw_data_section="performance_raw"),
        ReportType("compliance", "Compliance", "Compliance and audit reports",
                   default_sections=("audit_summary", "access_denials", "admin_actions", "data_retention",
                                     "report_access"),
                   raw_data_section="compliance_raw"),
        ReportType("custom", "Custom", "Custom report with user-defined metrics and sections",
                   requires_sections=True),
    ]
