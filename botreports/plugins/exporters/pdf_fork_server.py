"""The process PDFs are laid out in: it loads and warms WeasyPrint once, then
forks one short-lived child per PDF; the child limits its own memory and CPU
time, renders the page it is sent and exits, giving all its memory back.

Started by ``pdf_renderer`` with one end of a socket pair as its control
channel: each request there carries a fresh socket (SCM_RIGHTS) and the
limits; the answer is the child's pid, so the service can kill it. The child
reads ``length + JSON {html, max_pages}`` from its socket and answers ``O`` and
the PDF bytes, or ``E`` and a reason that may be shown to the user.
"""
import json
import os
import resource
import signal
import socket
import struct
import sys

REQUEST = struct.Struct("!QQ")  # memory bytes, CPU seconds
PID = struct.Struct("!q")
LENGTH = struct.Struct("!Q")


def _warm_up() -> None:
    """Load WeasyPrint and lay out a small report with every kind of block (the fonts of each
    weight, a chart's SVG, a table, the page boxes), so a forked child starts with it all ready."""
    import datetime as dt

    from ...core.models import (Chart, Column, Kpi, Kpis, Period, ReportDocument, SectionResult, Series,
                                Table, Text)
    from .document_html import render_html
    from .pdf_exporter import weasyprint_pdf

    utc = dt.timezone.utc
    blocks = [Kpis([Kpi("messages", "Messages", 1200, previous=1000)]),
              Chart("Per day", "bar", ["Mon", "Tue"], [Series("Messages", [3, 5])]),
              Chart("Trend", "line", ["Mon", "Tue"], [Series("Latency", [1.5, 2.0])]),
              Table("Per bot", [Column("bot", "Bot", "text"), Column("n", "Messages", "integer")], [["b", 1]]),
              Text("Warm **up** `code`")]
    document = ReportDocument("Warm-up", "custom", Period(dt.datetime(2025, 1, 1, tzinfo=utc),
                                                         dt.datetime(2025, 1, 2, tzinfo=utc), "UTC"),
                              dt.datetime(2025, 1, 2, tzinfo=utc), {}, [SectionResult("warm", "Warm", blocks)])
    weasyprint_pdf(render_html(document, max_rows=10, media="print"), 10)


def _receive_exactly(conn: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = conn.recv(min(left, 1 << 20))
        if not chunk:
            raise EOFError("the request ended early")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _render(conn: socket.socket, memory_bytes: int, cpu_seconds: int) -> bytes:
    """In the forked child: limits first, then the request, then WeasyPrint. Returns the answer."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # the renderer writes no files
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    from ...core.errors import ReportFailed
    from .pdf_exporter import weasyprint_pdf

    try:
        request = json.loads(_receive_exactly(conn, LENGTH.unpack(_receive_exactly(conn, LENGTH.size))[0]))
        return b"O" + weasyprint_pdf(request["html"], request["max_pages"])
    except ReportFailed as exc:
        reason = exc.message
    except MemoryError:
        reason = f"the PDF renderer exceeded its memory limit ({memory_bytes // 2**20:,} MB)"
    except RecursionError:
        reason = "the document nests its elements too deeply to lay out"
    except Exception as exc:  # every failure is the report's, with its reason
        text = str(exc).splitlines()[0][:300] if str(exc) else ""
        reason = f"the PDF renderer failed: {type(exc).__name__}: {text}"
    return b"E" + reason.encode("utf-8", "replace")


def _child(conn: socket.socket, control: socket.socket, memory_bytes: int, cpu_seconds: int) -> None:
    control.close()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        answer = _render(conn, memory_bytes, cpu_seconds)
        conn.sendall(answer)
        conn.close()
    finally:
        os._exit(0)  # never back into the server's loop


def serve(control: socket.socket) -> None:
    """Fork a child per request until the service closes the control socket."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the system
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the service stops us by closing the socket
    while True:
        try:
            message, fds, _flags, _address = socket.recv_fds(control, REQUEST.size, 1)
        except OSError:
            return
        if not message or not fds:
            return
        memory_bytes, cpu_seconds = REQUEST.unpack(message)
        conn = socket.socket(fileno=fds[0])
        pid = os.fork()
        if pid == 0:
            _child(conn, control, memory_bytes, cpu_seconds)
        conn.close()
        control.sendall(PID.pack(pid))


def main(argv) -> int:
    control = socket.socket(fileno=int(argv[0]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _warm_up()
    control.sendall(b"R")  # ready
    serve(control)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
