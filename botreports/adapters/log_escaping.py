"""Log lines that a request cannot forge: control characters from a path, a header or a
token's subject are written as escapes (``\\x0a``), so one record is always one line."""
from __future__ import annotations

import logging
import re
import traceback

from ..core.convert import UNSAFE_CHARACTERS

#: What is escaped: controls and bidirectional overrides, and the backslash itself, so that an
#: escape in the log always stands for a character that was escaped, never for one that was sent.
_ESCAPED = re.compile(UNSAFE_CHARACTERS.pattern[:-1] + r"\\]")


def _escape_one(found: re.Match) -> str:
    code = ord(found.group())
    if found.group() == "\\":
        return "\\\\"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with every control, bidirectional-override character and backslash escaped."""
    return _ESCAPED.sub(_escape_one, text)


class EscapeControlCharacters(logging.Filter):
    """A filter that escapes the message of each record, and the messages of the exceptions it
    carries (a traceback keeps its own line breaks, never the ones an exception quoted)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_controls_escaped", False):
            return True
        record.msg, record.args = escape_controls(record.getMessage()), ()
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = traceback_text(record.exc_info[1])
        record._controls_escaped = True
        return True


def traceback_text(error: BaseException) -> str:
    """The traceback ``logging`` would print for ``error`` and the exceptions it was raised
    from, with each exception's own message escaped."""
    parts: list = []
    seen: set = set()

    def walk(exc: traceback.TracebackException) -> None:
        if id(exc) in seen:
            return
        seen.add(id(exc))
        if exc.__cause__ is not None:
            walk(exc.__cause__)
            parts.append("\nThe above exception was the direct cause of the following exception:\n\n")
        elif exc.__context__ is not None and not exc.__suppress_context__:
            walk(exc.__context__)
            parts.append("\nDuring handling of the above exception, another exception occurred:\n\n")
        if exc.stack:
            parts.append("Traceback (most recent call last):\n")
            parts.extend(exc.stack.format())
        parts.append(escape_controls("".join(exc.format_exception_only()).rstrip("\n")) + "\n")

    walk(traceback.TracebackException.from_exception(error))
    return "".join(parts).rstrip("\n")
