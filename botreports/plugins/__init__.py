"""The built-in plugins. Each is a plain module of ``@hookimpl`` functions,
registered through the same hooks a third-party plugin uses."""

#: Registered first, in this order, by every ``Reports`` instance.
DEFAULT_PLUGINS = (
    "botreports.plugins.sources.sqlite",
    "botreports.plugins.sections.usage",
    "botreports.plugins.types.builtin_types",
    "botreports.plugins.exporters.json_exporter",
    "botreports.plugins.auth.api_keys",
    "botreports.plugins.auth.bearer_tokens",
)
