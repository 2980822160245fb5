"""Spreadsheet cell safety for CSV and XLSX: text that a spreadsheet would read
as a formula (``=``, ``+``, ``-``, ``@``, tab, CR or NUL first) gets a leading
``'``, so a bot user's message can never run as a formula on an analyst's desk.
Numbers are never touched: they stay numbers."""
from __future__ import annotations

import math

#: What makes Excel, LibreOffice or Google Sheets start a formula (or hide one after a control character).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\0")


def escape_text(text: str) -> str:
    """``text`` with a leading ``'`` when a spreadsheet could take it for a formula."""
    if text and text[0] in FORMULA_TRIGGERS:
        return "'" + text
    return text


def is_number(value) -> bool:
    """A real number (bool is not one: it is written as true/false)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def finite_or_none(value):
    """NaN and infinities have no spreadsheet form: they become empty cells."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
