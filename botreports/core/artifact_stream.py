"""The file object an exporter writes a report's artifact to: a write-only binary stream
over the artifact's temporary file that hashes and counts every byte on the way."""
from __future__ import annotations

import hashlib
import io
import os
import threading
from typing import Optional


def sync_data(fd: int) -> None:
    """Ask the system to put what the file holds so far on disk (waits without the interpreter lock)."""
    getattr(os, "fdatasync", os.fsync)(fd)


class ArtifactStream(io.RawIOBase):
    """A real, write-only binary file object (``io.RawIOBase``) for ``Exporter.export``.

    What a library that writes files expects of one behaves as on a file opened ``"wb"``:
    ``write`` (bytes-like; a ``str`` is written as UTF-8), ``writelines``, ``tell`` (bytes
    written so far), ``flush``, ``close``, ``closed``, ``writable()``. It is sequential:
    ``seekable()`` is False and ``seek`` raises ``io.UnsupportedOperation``, so a writer that
    wants to go back (``zipfile``) writes forward instead, and every byte is hashed once as
    it passes. An exporter may close it (pyarrow and ``io.TextIOWrapper`` do when they are
    done); the artifact itself is finished by the pipeline, not by ``close``.

    A large artifact is handed to the disk as it grows: every ``SYNC_EVERY`` bytes a thread
    asks the system to write what the file holds so far, so the fsync that ends the
    artifact waits only for its tail instead of for all of it.
    """

    SYNC_EVERY = 32 << 20
    mode = "wb"

    def __init__(self, raw, name: str = ""):
        super().__init__()
        self._raw = raw
        self.name = name
        self.digest = hashlib.sha256()
        self.size = 0
        self._unsynced = 0
        self._syncing: Optional[threading.Thread] = None

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        """Write all of ``data``; returns its length in bytes."""
        if self.closed:
            raise ValueError("I/O operation on closed file")
        if isinstance(data, str):  # text exporters may hand UTF-8 text straight in
            data = data.encode("utf-8")
        size = memoryview(data).nbytes
        self._raw.write(data)
        self.digest.update(data)
        self.size += size
        self._unsynced += size
        if self._unsynced >= self.SYNC_EVERY and not (self._syncing and self._syncing.is_alive()):
            self._raw.flush()
            self._syncing = threading.Thread(target=sync_data, args=(self._raw.fileno(),),
                                             name="botreports-artifact-sync", daemon=True)
            self._syncing.start()
            self._unsynced = 0
        return size

    def readinto(self, buffer) -> int:
        raise io.UnsupportedOperation("the artifact stream is write-only")

    def tell(self) -> int:
        """Bytes written so far (the position of a file written from its start)."""
        if self.closed:
            raise ValueError("I/O operation on closed file")
        return self.size

    def flush(self) -> None:
        super().flush()  # ValueError once closed, as on a file
        if not self._raw.closed:
            self._raw.flush()

    def settle(self) -> None:
        """Wait for the write to disk in progress, if any."""
        if self._syncing is not None:
            self._syncing.join()
