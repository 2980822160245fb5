"""Reading ahead: the items of an iterator produced on a thread of its own while the
caller works on the ones before, for producers that spend their time in the database
(which releases the interpreter lock) and consumers that spend theirs in Python."""
from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

_DONE = object()


def read_ahead(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """The items of ``items`` in order, at most ``depth`` of them made ahead of the caller.

    An error in the producer reaches the caller at the item it would have been. A caller
    that stops early (an error of its own, a closed generator) stops the producer, which
    then closes ``items`` on its own thread, so nothing is left running or holding a
    connection.
    """
    ready: "queue.Queue" = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        source = iter(items)
        try:
            for item in source:
                if not offer((item, None)):
                    return
            offer((_DONE, None))
        except BaseException as error:  # handed to the caller, raised there
            offer((_DONE, error))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="botreports-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item, error = ready.get()
            if item is _DONE:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        worker.join()
