"""A host web application with botreports embedded in-process.

The host (think botserver) has its own Bottle app, its own sign-in and its own
way of telling a user something. botreports plugs into each:

- its HTTP API answers under ``/api/v1/reports`` of the host's WSGI app, or under
  a mount point of the host's choosing (``--mount /analytics``), its contract at
  ``…/api/v1/reports/openapi.json``;
- the host signs its users in; its middleware hands who is asking to botreports
  (WSGI ``REMOTE_USER``), and an ``authenticate`` hook turns that into a
  ``Principal``, so no API key is needed in the browser or the bot;
- generation jobs run on worker threads started and stopped with the host
  (no signal handler of the host is touched: the host stops cleanly on SIGTERM
  or Ctrl-C, letting running reports finish);
- ``report_finished`` tells the user who asked that the report is ready.

Run it::

    botreports demo-data --data-dir ./data --days 30 --end-date 2025-01-31
    python examples/embed_in_host.py --data-dir ./data [--data postgresql://...]
    curl -c jar -d user=ana http://127.0.0.1:8080/login
    curl -b jar -H 'Content-Type: application/json' \\
         -d '{"type": "usage", "start_date": "2025-01-01", "end_date": "2025-01-31", "format": "json"}' \\
         http://127.0.0.1:8080/api/v1/reports/generate
    curl -b jar http://127.0.0.1:8080/notifications
    kill -TERM <pid>     # stops serving, lets running reports finish, exits 0
"""
from __future__ import annotations

import argparse
import logging
import secrets
import signal
import threading
from pathlib import Path
from typing import Dict, List, Optional

import bottle

from botreports import Principal, Reports, hookimpl
from botreports.adapters.queue import make_queue

log = logging.getLogger("host")
REPORTS_PREFIX = "/api/v1/reports"
SESSION_COOKIE = "host_session"


class HostAccounts:
    """The host's own users and sessions (botserver keeps these in its database)."""

    def __init__(self, users: Dict[str, dict]):
        self.users = users
        self.sessions: Dict[str, str] = {}
        self.notifications: Dict[str, List[dict]] = {}
        self.lock = threading.Lock()

    def sign_in(self, user: str) -> Optional[str]:
        if user not in self.users:
            return None
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.sessions[token] = user
        return token

    def user_of(self, token: Optional[str]) -> Optional[str]:
        with self.lock:
            return self.sessions.get(token or "")

    def notify(self, user: str, message: dict) -> None:
        with self.lock:
            self.notifications.setdefault(user, []).append(message)


class HostPlugin:
    """The host's side of the botreports plugin API: who is asking, and telling them it is done."""

    def __init__(self, accounts: HostAccounts):
        self.accounts = accounts

    @hookimpl
    def authenticate(self, request):
        """The user the host signed in (``REMOTE_USER``) -> a Principal with their organisation and role."""
        user = request.remote_user
        if user is None or user not in self.accounts.users:
            return None  # let the other ways in (API keys, bearer tokens) have their turn
        profile = self.accounts.users[user]
        return Principal(id=user, org_id=profile["org_id"], roles={profile["role"]}, name=user, via="host-session")

    @hookimpl
    def report_finished(self, report):
        """A finished report: the host tells the user who asked (a bot would send a chat message)."""
        self.accounts.notify(report.owner_id, {"report_id": report.id, "state": report.state,
                                               "title": report.title, "error": report.error})
        log.info("told %s that report %s is %s", report.owner_id, report.id, report.state)


def host_app(accounts: HostAccounts) -> bottle.Bottle:
    """The host's own routes: sign-in and the user's notifications."""
    app = bottle.Bottle()

    @app.post("/login")
    def login():
        token = accounts.sign_in(bottle.request.forms.get("user", ""))
        if token is None:
            bottle.response.status = 401
            return {"error": "unknown_user"}
        bottle.response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", path="/")
        return {"user": accounts.user_of(token)}

    @app.get("/notifications")
    def notifications():
        user = accounts.user_of(bottle.request.get_cookie(SESSION_COOKIE))
        if user is None:
            bottle.response.status = 401
            return {"error": "missing_session"}
        return {"notifications": accounts.notifications.get(user, [])}

    return app


def session_user(accounts: HostAccounts, environ: dict) -> Optional[str]:
    """The user of the host's session cookie in a WSGI environ, if it names a live session."""
    cookie = environ.get("HTTP_COOKIE", "")
    token = next((part.split("=", 1)[1] for part in (p.strip() for p in cookie.split(";"))
                  if part.startswith(f"{SESSION_COOKIE}=")), None)
    return accounts.user_of(token)


class PrefixDispatcher:
    """WSGI: the reports API to ``mounted``, everything else to ``host``; the host's sign-in for both.

    Without ``mount`` the paths under ``/api/v1/reports`` go to the reports app as
    they are (it serves its routes there itself). With ``mount="/analytics"``
    everything under it goes to the reports app the WSGI way: the mount point
    moves from ``PATH_INFO`` to ``SCRIPT_NAME``, and every URL the app makes
    (signed links, ``Location`` and ``Link`` headers, the OpenAPI ``servers``)
    starts with it. The signed-in user travels as ``REMOTE_USER``.
    """

    def __init__(self, host, mounted, accounts: HostAccounts, mount: str = ""):
        self.host, self.mounted, self.accounts = host, mounted, accounts
        self.mount = mount.rstrip("/")

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if self.mount:
            if not (path == self.mount or path.startswith(self.mount + "/")):
                return self.host(environ, start_response)
            environ = dict(environ, SCRIPT_NAME=environ.get("SCRIPT_NAME", "").rstrip("/") + self.mount,
                           PATH_INFO=path[len(self.mount):] or "/")
        elif not (path == REPORTS_PREFIX or path.startswith(REPORTS_PREFIX + "/")):
            return self.host(environ, start_response)
        environ = dict(environ)
        environ.pop("REMOTE_USER", None)  # only the host's own sign-in says who this is
        user = session_user(self.accounts, environ)
        if user is not None:
            environ["REMOTE_USER"] = user
        return self.mounted(environ, start_response)


class Host:
    """The host process: its WSGI app with botreports inside, started and stopped together."""

    def __init__(self, data_dir: Path, users: Dict[str, dict], data_source: Optional[str] = None,
                 workers: int = 2, mount: str = ""):
        self.accounts = HostAccounts(users)
        self.queue = make_queue(None, Path(data_dir), workers=workers)  # Huey on SQLite in the data dir
        self.reports = Reports(data_dir=data_dir, data_source=data_source, queue=self.queue,
                               plugins=[HostPlugin(self.accounts)])
        self.mount = mount.rstrip("/")
        self.app = PrefixDispatcher(host_app(self.accounts), self.reports.wsgi_app(), self.accounts, self.mount)
        self._server = None
        self._thread: Optional[threading.Thread] = None

    def start(self, host: str = "127.0.0.1", port: int = 8080) -> str:
        """Start the workers, then serve; returns the base URL."""
        from wsgiref.simple_server import WSGIRequestHandler, make_server

        class QuietHandler(WSGIRequestHandler):
            def log_message(self, *args):  # the reports app logs its own requests
                return None

        self.queue.start()  # worker threads in this process; the host keeps its signal handlers
        self._server = make_server(host, port, self.app, handler_class=QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="host-http", daemon=False)
        self._thread.start()
        return f"http://{host}:{self._server.server_port}"

    def stop(self) -> None:
        """Stop serving, let running reports finish, close the queue, the data source and the store."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = None
        self.reports.close()  # stops the Huey workers gracefully, then closes the pool and the store


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="A host app with botreports embedded.")
    parser.add_argument("--data-dir", default="./data")
    parser.add_argument("--data", help="analytics source URL (default: the data dir's SQLite file)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--mount", default="", help="serve the reports API under this path, e.g. /analytics")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    users = {"ana": {"org_id": "org-acme", "role": "report_creator"},
             "bruno": {"org_id": "org-globex", "role": "report_viewer"}}
    # The host's own signal handling (botreports installs none): SIGTERM from a service manager
    # and Ctrl-C both end the wait below, and the host stops in order.
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    host = Host(Path(args.data_dir), users, data_source=args.data, mount=args.mount)
    url = host.start(port=args.port)
    print(f"host listening on {url}; reports under {url}{host.mount}{REPORTS_PREFIX}", flush=True)
    try:
        while not stopping.wait(1.0):  # a timed wait lets the main thread run the signal handler
            pass
    except KeyboardInterrupt:
        pass
    finally:
        host.stop()
    print("host stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
