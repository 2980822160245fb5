"""The web console: pages for people over the same ``Reports`` facade as the JSON API, served
at ``/`` by the process that serves the API (``service_app``)."""
from __future__ import annotations

#: Paths that belong to the JSON API, whatever the console serves.
API_PREFIXES = ("/api/", "/openapi.json")


def build_console_app(reports):
    """The console as a ``bottle.Bottle`` WSGI app for ``reports``."""
    from .app import Console

    return Console(reports).app


def service_app(reports, api_app=None, console_app=None):
    """One WSGI app: the JSON API under ``/api/`` (and ``/openapi.json``), the console elsewhere."""
    api = api_app if api_app is not None else reports.wsgi_app()
    console = console_app if console_app is not None else build_console_app(reports)

    def dispatch(environ, start_response):
        path = environ.get("PATH_INFO") or "/"
        target = api if path.startswith(API_PREFIXES) else console
        return target(environ, start_response)

    dispatch.api = api
    dispatch.console = console
    return dispatch
