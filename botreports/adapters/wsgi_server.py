"""The production WSGI server of ``botreports serve``: waitress, set up once here
so that the service, its tests and its benchmark all run the same server, with
connection limits and idle timeouts that a few slow clients cannot use up."""
from __future__ import annotations

import logging
import queue
import threading
from typing import Iterable, Optional

log = logging.getLogger("botreports.server")

#: Bytes a response must hold before waitress's event loop sends it while the request's
#: thread is still running (the thread sends it itself when it finishes). With waitress's
#: default of 1, the loop tries to take each busy connection's output lock on every pass
#: and, with several connections open, keeps the interpreter lock from the threads doing
#: the work: on a 2-core machine a hello-world fell from about 6,500 to about 600 requests
#: a second at 10 connections, p99 from 3 ms to 70 ms. 18,000 was waitress's own default
#: before; larger bodies (downloads) are still sent as they are produced.
SEND_BYTES = 18000
#: Connections kept open at once, idle ones included (waitress's default is 100: a hundred
#: idle sockets locked every new client out, health checks included, for two minutes).
#: Past it, new clients wait in the listen backlog until a connection closes.
CONNECTION_LIMIT = 1000
#: Seconds a connection may send and receive nothing before it is closed (waitress: 120).
#: A connection in the middle of a request or a download is never idle.
IDLE_TIMEOUT = 30.0
#: File descriptors the process keeps for itself beyond the connections (databases, the
#: queue, report files, the listening socket).
SPARE_DESCRIPTORS = 64
HEALTH_PATHS = ("/api/v1/reports/health",)


class HealthLaneDispatcher:
    """waitress's thread pool, plus one thread of its own that answers health checks.

    A health check queued behind slow requests answered in 13 s under load; here a
    connection whose pending requests are all ``GET`` of a health path never waits for
    the pool, so monitors see the service alive while its threads are busy.
    """

    def __init__(self, threads: int, health_paths: Iterable[str] = HEALTH_PATHS):
        from waitress.task import ThreadedTaskDispatcher

        self.pool = ThreadedTaskDispatcher()
        self.pool.set_thread_count(threads)
        self.health_paths = frozenset(path.rstrip("/") for path in health_paths)
        self._lane: "queue.SimpleQueue" = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve_lane, name="waitress-health", daemon=True)
        self._thread.start()

    def is_health(self, task) -> bool:
        requests = list(getattr(task, "requests", None) or ())
        return bool(requests) and all(
            request.command in ("GET", "HEAD") and request.path.rstrip("/") in self.health_paths
            for request in requests)

    def add_task(self, task) -> None:
        if self.is_health(task):
            self._lane.put(task)
        else:
            self.pool.add_task(task)

    def _serve_lane(self) -> None:
        while True:
            task = self._lane.get()
            if task is None:
                return
            try:
                task.service()
            except BaseException:
                log.exception("health check failed on %r", task)

    def set_thread_count(self, count: int) -> None:
        self.pool.set_thread_count(count)

    def shutdown(self, cancel_pending: bool = True, timeout: float = 5) -> bool:
        self._lane.put(None)
        return self.pool.shutdown(cancel_pending, timeout)


def descriptors_for(connection_limit: int) -> int:
    """The connections this process can hold: raises its soft limit on open files towards
    ``connection_limit`` plus spares (up to the hard limit) and returns what fits."""
    try:
        import resource
    except ImportError:  # not on this platform: trust the setting
        return connection_limit
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connection_limit + SPARE_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < wanted:
        fitting = max(soft - SPARE_DESCRIPTORS, 16)
        log.warning("open-file limit %d holds %d connections, not %d; raise it (ulimit -n) for more",
                    soft, fitting, connection_limit)
        return fitting
    return connection_limit


def create_server(app, host: str = "127.0.0.1", port: int = 0, threads: int = 4,
                  connection_limit: int = CONNECTION_LIMIT, idle_timeout: float = IDLE_TIMEOUT,
                  health_paths: Iterable[str] = HEALTH_PATHS, **adjustments):
    """A waitress server for ``app`` on ``host:port`` (0: any free port), not yet running.

    ``connection_limit`` connections at most (the listening socket and waitress's own
    wake-up pipe count among them), each closed after ``idle_timeout`` seconds without
    traffic; requests to ``health_paths`` have a thread of their own.
    """
    from waitress.server import create_server as create_waitress

    limit = descriptors_for(int(connection_limit))
    # Idle connections are looked for every few seconds (waitress: every 30), so one closes
    # at most a few seconds after its timeout.
    idle = max(1, round(idle_timeout))  # waitress counts whole seconds
    cleanup = max(1, min(30, idle // 3))
    server = create_waitress(app, host=host, port=port, threads=threads, connection_limit=limit,
                             channel_timeout=idle, cleanup_interval=cleanup,
                             _dispatcher=HealthLaneDispatcher(threads, health_paths), **adjustments)
    # Set on the shared adjustments rather than as an argument: waitress warns that the
    # argument will go away, and the attribute is harmless once it has.
    if hasattr(server.adj, "send_bytes"):
        server.adj.send_bytes = SEND_BYTES
    return server


def proxy_adjustments(trusted_proxy) -> dict:
    """waitress settings that believe ``X-Forwarded-For`` and ``X-Forwarded-Proto`` from the one
    reverse proxy at ``trusted_proxy`` (and drop them from anyone else): the client's address
    then reaches the app as ``REMOTE_ADDR`` (logs, the failed-authentication limit) and its
    scheme as ``wsgi.url_scheme`` (links). Nothing without a proxy: every client's own headers
    are its to write."""
    if not trusted_proxy:
        return {}
    return {"trusted_proxy": trusted_proxy, "trusted_proxy_count": 1,
            "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto"}, "clear_untrusted_proxy_headers": True}
