"""The built-in plugins. Each is a plain module of ``@hookimpl`` functions,
registered through the same hooks a third-party plugin uses."""

#: Registered first, in this order, by every ``Reports`` instance.
DEFAULT_PLUGINS = (
    "botreports.plugins.sources.sqlite",
    "botreports.plugins.sources.botserver_pg",
    "botreports.plugins.sections.usage",
    "botreports.plugins.sections.conversations",
    "botreports.plugins.sections.performance",
    "botreports.plugins.sections.compliance",
    "botreports.plugins.sections.custom_metric",
    "botreports.plugins.types.builtin_types",
    "botreports.plugins.exporters.json_exporter",
    "botreports.plugins.exporters.html_exporter",
    "botreports.plugins.exporters.pdf_exporter",
    "botreports.plugins.exporters.xlsx_exporter",
    "botreports.plugins.exporters.csv_exporter",
    "botreports.plugins.auth.api_keys",
    "botreports.plugins.delivery.email",
    "botreports.plugins.delivery.webhook",
    "botreports.plugins.auth.bearer_tokens",
    "botreports.plugins.templates.catalog",
)
