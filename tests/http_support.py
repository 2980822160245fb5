"""A real HTTP server for the API tests: waitress on 127.0.0.1, an ephemeral port, a thread."""
from __future__ import annotations

import threading
import time

import requests

BASE = "/api/v1/reports"


class LiveServer:
    """The API of one ``Reports`` served by waitress until ``stop()``."""

    def __init__(self, reports, threads: int = 4):
        from botreports.adapters.wsgi_server import create_server

        self.reports = reports
        self.server = create_server(reports.wsgi_app(), host="127.0.0.1", port=0, threads=threads,
                                    clear_untrusted_proxy_headers=True)
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        self.session = requests.Session()

    def request(self, method: str, path: str, key: str = None, **kwargs) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if key is not None:
            headers["X-API-Key"] = key
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.url + path, headers=headers, **kwargs)

    def wait_for(self, report_id: str, key: str, timeout: float = 60.0) -> dict:
        """Poll the status endpoint as a bot script would, until the report is final."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            status = self.request("GET", f"{BASE}/{report_id}/status", key).json()
            seen.append(status["progress"])
            if status["state"] in ("completed", "failed", "expired"):
                status["progress_seen"] = seen
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"report {report_id} still {status['state']} after {timeout} s")
            time.sleep(0.05)

    def _serve(self) -> None:
        try:
            self.server.run()
        except OSError:
            # While stopping, the loop may still poll a descriptor that was just closed.
            if not self.stopping:
                raise

    def stop(self) -> None:
        from waitress import wasyncore

        self.stopping = True
        self.session.close()
        # Close every socket from inside the server's own loop, which then ends (closing
        # them from this thread would pull the descriptors from under its select()).
        try:
            self.server.trigger.pull_trigger(lambda: wasyncore.close_all(self.server._map, ignore_all=True))
        except OSError:  # the loop has already ended and closed its trigger
            pass
        self.thread.join(timeout=10)
        self.server.task_dispatcher.shutdown()


class RecordingQueue:
    """A queue that only remembers what was enqueued (requests are accepted, nothing runs)."""

    name = "recording"

    def __init__(self):
        self.enqueued = []

    def bind(self, reports):
        self.reports = reports

    def enqueue(self, report_id):
        self.enqueued.append(report_id)

    def start(self):
        return None

    def stop(self):
        return None


def make_token(secret: str, *, sub="ana", org="org-acme", roles=(), permissions=(), ttl=900,
               issuer="general-bots", audience="general-bots-api", **claims) -> str:
    """A botserver-style HS256 access token."""
    import jwt

    now = int(time.time())
    payload = {"sub": sub, "roles": list(roles), "permissions": list(permissions), "organization_id": org,
               "iss": issuer, "aud": audience, "iat": now, "exp": now + ttl, "session_id": "s-1", **claims}
    if org is None:
        payload.pop("organization_id")
    return jwt.encode(payload, secret, algorithm="HS256")


class ThreadQueue:
    """Runs reports on one background thread, so a client really polls a pending report."""

    name = "thread"

    def bind(self, reports):
        import queue

        self.reports = reports
        self.jobs = queue.Queue()
        self.thread = None

    def enqueue(self, report_id):
        self.jobs.put(report_id)

    def start(self):
        def work():
            while True:
                report_id = self.jobs.get()
                if report_id is None:
                    return
                self.reports.run_report(report_id, worker="test-thread")

        self.thread = threading.Thread(target=work, daemon=True)
        self.thread.start()

    def stop(self):
        if self.thread is not None:
            self.jobs.put(None)
            self.thread.join(timeout=30)
            self.thread = None
