"""The production WSGI server of ``botreports serve``: waitress, set up once here
so that the service, its tests and its benchmark all run the same server."""
from __future__ import annotations

#: Bytes a response must hold before waitress's event loop sends it while the request's
#: thread is still running (the thread sends it itself when it finishes). With waitress's
#: default of 1, the loop tries to take each busy connection's output lock on every pass
#: and, with several connections open, keeps the interpreter lock from the threads doing
#: the work: on a 2-core machine a hello-world fell from about 6,500 to about 600 requests
#: a second at 10 connections, p99 from 3 ms to 70 ms. 18,000 was waitress's own default
#: before; larger bodies (downloads) are still sent as they are produced.
SEND_BYTES = 18000


def create_server(app, host: str = "127.0.0.1", port: int = 0, threads: int = 4, **adjustments):
    """A waitress server for ``app`` on ``host:port`` (0: any free port), not yet running."""
    from waitress.server import create_server as create_waitress

    server = create_waitress(app, host=host, port=port, threads=threads, **adjustments)
    # Set on the shared adjustments rather than as an argument: waitress warns that the
    # argument will go away, and the attribute is harmless once it has.
    if hasattr(server.adj, "send_bytes"):
        server.adj.send_bytes = SEND_BYTES
    return server
