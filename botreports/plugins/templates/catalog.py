"""The built-in template catalog: one standard template per report type, an
executive summary and a weekly operations review."""
from ... import hookimpl
from ...core.errors import PluginError
from ...core.models import Template

EXECUTIVE_SECTIONS = ("usage_summary", "conversation_summary", "satisfaction_scores", "latency")
WEEKLY_SECTIONS = ("usage_summary", "daily_activity", "conversation_outcomes", "handoffs", "latency",
                   "error_rates", "system_health")


def _standard(kind, title, description):
    return Template(id=f"tpl-{kind}-standard", name=f"{title} (standard)", description=description,
                    type=kind, format="pdf", builtin=True, defaults={"period": "last_30_days"})


TEMPLATES = (
    _standard("usage", "Usage", "Conversations, messages, users, tokens and cost, per day, bot and channel."),
    _standard("conversations", "Conversations",
              "Conversation length, outcomes, intents, satisfaction and hand-offs to humans."),
    _standard("performance", "Performance",
              "Reply latency percentiles, error rates, LLM models, throughput and system health."),
    _standard("compliance", "Compliance",
              "Audit events, access denials, administrative actions, data retention and report access."),
    Template(id="tpl-executive-summary", name="Executive summary",
             description="One page for leadership: usage, conversations, satisfaction and latency.",
             type="custom", sections=[{"type": name} for name in EXECUTIVE_SECTIONS], format="pdf",
             builtin=True, defaults={"period": "previous_month", "title": "Executive summary"}),
    Template(id="tpl-weekly-operations", name="Weekly operations",
             description="Last week's activity, outcomes, hand-offs, latency, errors and system health.",
             type="custom", sections=[{"type": name} for name in WEEKLY_SECTIONS], format="pdf",
             builtin=True, defaults={"period": "previous_week", "title": "Weekly operations"}),
)


@hookimpl
def register_templates():
    return list(TEMPLATES)


@hookimpl
def startup(reports):
    # A catalog entry naming a section or type nobody registered is a packaging error: say so at start.
    for template in TEMPLATES:
        if template.type not in reports.report_types:
            raise PluginError(f"built-in template {template.id} needs report type {template.type!r}")
        for section in template.sections:
            if section["type"] not in reports.sections:
                raise PluginError(f"built-in template {template.id} needs section {section['type']!r}")
