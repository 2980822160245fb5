"""PDFs laid out outside the service's process, under time and memory limits.

WeasyPrint holds the interpreter lock while it lays out a page and keeps the
memory it grew to, so a hostile or huge document rendered in the service would
stall every request and leave the process bloated. Each PDF is therefore laid
out by a child forked from a warm fork server (``pdf_fork_server``): the child
has an address-space and CPU-time limit, is killed at the wall-clock limit, and
returns all of its memory to the system when it exits. Forking from a process
that has already loaded WeasyPrint and its fonts costs milliseconds, where a
fresh interpreter would spend more than a second before its first page.

The fork server is a plain ``python -m`` process of ours rather than
``multiprocessing``'s, whose children import the host's main module again: an
embedding application's script must not run twice.
"""
from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Optional, Tuple

from ...core.errors import ReportFailed
from .pdf_fork_server import LENGTH, PID, REQUEST

#: ``BOTREPORTS_PDF_TIMEOUT``: seconds one PDF may take to lay out (wall clock; also its CPU time).
DEFAULT_SECONDS = 60.0
#: ``BOTREPORTS_PDF_MEMORY_MB``: address space of the process laying out one PDF.
DEFAULT_MEMORY_MB = 1024
#: Seconds the fork server may take to load WeasyPrint when it (re)starts.
START_SECONDS = 120.0
#: What the renderer inherits from our environment: what Python and fontconfig need, no secrets.
PASSED_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "XDG_CACHE_HOME",
                      "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_DATA_DIRS", "FONTCONFIG_FILE", "FONTCONFIG_PATH")


def limits() -> Tuple[float, int]:
    """``(seconds, memory bytes)`` from the environment, read at each render."""
    values = []
    for name, default, cast in (("BOTREPORTS_PDF_TIMEOUT", DEFAULT_SECONDS, float),
                                ("BOTREPORTS_PDF_MEMORY_MB", DEFAULT_MEMORY_MB, int)):
        text = os.environ.get(name, "").strip()
        try:
            value = cast(text) if text else default
        except ValueError:
            raise ReportFailed(f"{name}={text!r} is not a number") from None
        if value <= 0:
            raise ReportFailed(f"{name} must be above 0")
        values.append(value)
    seconds, memory_mb = values
    return seconds, memory_mb * 2**20


def _receive_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise EOFError("the PDF renderer closed its control channel")
        data += chunk
    return data


class ForkServer:
    """The warm process PDF children are forked from; started on first use, restarted if it dies."""

    def __init__(self):
        self.lock = threading.Lock()
        self.process: Optional[subprocess.Popen] = None
        self.control: Optional[socket.socket] = None
        self.owner_pid = os.getpid()

    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        environment = {name: os.environ[name] for name in PASSED_ENVIRONMENT if name in os.environ}
        environment["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "botreports.plugins.exporters.pdf_fork_server", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            start_new_session=True, env=environment)
        theirs.close()
        self.control = ours
        self.owner_pid = os.getpid()
        ours.settimeout(START_SECONDS)
        try:
            ready = ours.recv(1)
        except OSError:
            ready = b""
        ours.settimeout(None)
        if ready != b"R":
            self.stop()
            raise ReportFailed("the PDF renderer could not start")

    def spawn(self, memory_bytes: int, cpu_seconds: int) -> Tuple[socket.socket, int]:
        """A connected socket to a new child with these limits, and the child's pid."""
        with self.lock:
            for attempt in (1, 2):
                if self.process is None or self.process.poll() is not None or self.owner_pid != os.getpid():
                    self.stop()
                    self._start()
                ours, theirs = socket.socketpair()
                try:
                    socket.send_fds(self.control, [REQUEST.pack(memory_bytes, cpu_seconds)], [theirs.fileno()])
                    pid = PID.unpack(_receive_exactly(self.control, PID.size))[0]
                except (OSError, EOFError):
                    ours.close()
                    self.stop()  # it died between two PDFs: start a new one, once
                    if attempt == 2:
                        raise ReportFailed("the PDF renderer could not start") from None
                    continue
                finally:
                    theirs.close()
                return ours, pid
        raise AssertionError("unreachable")

    def is_ours(self, pid: int) -> bool:
        """Whether ``pid`` is still a child of the fork server (not a reused pid)."""
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            return False
        return self.process is not None and int(fields[1]) == self.process.pid

    def stop(self) -> None:
        """Close the control channel; the server exits when it sees that."""
        if self.control is not None:
            self.control.close()
            self.control = None
        process, self.process = self.process, None
        if process is not None and self.owner_pid == os.getpid():
            try:
                process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


_SERVER = ForkServer()
atexit.register(_SERVER.stop)
# A process forked from the service (a worker pool) starts its own server instead of sharing ours.
os.register_at_fork(after_in_child=lambda: globals().__setitem__("_SERVER", ForkServer()))


def render_pdf_in_child(html: str, max_pages: int) -> bytes:
    """Lay ``html`` out as PDF bytes in a limited child; a child that overruns fails the report."""
    seconds, memory_bytes = limits()
    conn, pid = _SERVER.spawn(memory_bytes, max(1, int(seconds + 0.999)))
    payload = json.dumps({"html": html, "max_pages": max_pages}).encode("utf-8")
    deadline = time.monotonic() + seconds
    chunks = []
    try:
        conn.settimeout(seconds)
        conn.sendall(LENGTH.pack(len(payload)) + payload)
        while True:
            conn.settimeout(max(deadline - time.monotonic(), 0.001))
            chunk = conn.recv(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    except (socket.timeout, TimeoutError):
        if _SERVER.is_ours(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        raise ReportFailed(f"the PDF took longer than {seconds:g} s to lay out (BOTREPORTS_PDF_TIMEOUT); "
                           "its renderer was stopped") from None
    except OSError:
        chunks = []  # the child died before it read the whole page
    finally:
        conn.close()
    answer = b"".join(chunks)
    if answer[:1] == b"O":
        return answer[1:]
    if answer[:1] == b"E":
        raise ReportFailed(answer[1:].decode("utf-8", "replace"))
    raise ReportFailed(f"the PDF renderer was stopped by its limits (CPU time {seconds:g} s, memory "
                       f"{memory_bytes // 2**20:,} MB: BOTREPORTS_PDF_TIMEOUT, BOTREPORTS_PDF_MEMORY_MB)")
