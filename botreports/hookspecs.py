"""The hook specifications of botreports: markers and specs, nothing else.

Every concrete part of botreports (report types, sections, exporters, data
sources, templates, delivery channels, authentication) is a plugin that
implements some of these hooks with ``@botreports.hookimpl``.
"""
import pluggy

hookspec = pluggy.HookspecMarker("botreports")
hookimpl = pluggy.HookimplMarker("botreports")


@hookspec
def register_report_types():
    """Return a ``ReportType`` or a list of them.

    Called once per ``Reports`` instance at start-up, on every plugin. A report
    type names its default sections and its raw-data section. A name already
    registered by another plugin stops start-up with an error naming both.
    """


@hookspec
def register_sections():
    """Return a ``Section`` or a list of them.

    Called once at start-up on every plugin. A section declares the options it
    accepts and a ``collect(ctx)`` callable that returns a list of document
    blocks (``Kpis``, ``Table``, ``Chart``, ``Text``). Duplicate names fail.
    """


@hookspec
def register_exporters():
    """Return an ``Exporter`` or a list of them.

    Called once at start-up on every plugin. An exporter owns one format name,
    its file extension and media type, and ``export(document, stream, options)``
    which writes the rendered ``ReportDocument`` to a binary stream.
    """


@hookspec
def register_data_sources():
    """Return a ``DataSourceFactory`` or a list of them.

    Called once at start-up on every plugin. A factory maps a URL scheme
    (``sqlite``, ``postgresql``) to a callable that opens a data source object
    answering the section queries for that URL. Duplicate schemes fail.
    """


@hookspec
def register_templates():
    """Return a ``Template`` or a list of them.

    Called once at start-up on every plugin. These are the built-in templates a
    plugin ships; they are visible to every organisation and read-only.
    """


@hookspec
def register_delivery_channels():
    """Return a ``DeliveryChannel`` or a list of them.

    Called once at start-up on every plugin. A channel (``email``,
    ``webhook``, ...) sends a finished report to its recipients.
    """


@hookspec(firstresult=True)
def authenticate(request, reports):
    """Turn a request into the ``Principal`` who is asking, or return None.

    ``request`` is a ``RequestInfo`` (method, path, headers, query, remote
    address), never an adapter's own object. The first plugin that returns a
    Principal wins; plugins registered later are asked first, so an embedding
    host can put its own session authentication in front of the built-ins.
    Raise ``Unauthorized`` to reject credentials that were given but are bad.
    """


@hookspec
def authorize(principal, action, resource, reports):
    """Allow or deny ``action`` (e.g. ``"report.delete"``) on ``resource``.

    Every implementation is called. Any ``False`` denies, else any ``True``
    allows, else (all None) the built-in permission table decides.
    ``resource`` is the object acted upon (a ``Report``, ``Schedule``,
    ``Template``) or None for actions on a collection.
    """


@hookspec
def report_finished(report, reports):
    """Called on every plugin after a report reached a final state.

    ``report`` is the stored ``Report`` (``completed`` or ``failed``). The
    return value is ignored; an exception is logged and does not fail the
    report. A host uses it to tell the user who asked that the file is ready.
    """


@hookspec
def startup(reports):
    """Called on every plugin once, after all registries are built.

    ``reports`` is the ``Reports`` facade. Use it to check configuration or
    warm caches; raising stops the start-up with that error.
    """
