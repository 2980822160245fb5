"""How deep and how large the markup a template adds to a report may be.

A layout that nests 20,000 elements is 120 KB of text, yet the PDF renderer
spends minutes and gigabytes on it before it gives up: the markup of a layout
and of an intro is measured (depth of nesting, number of elements) when the
template is stored and again on what it renders to, and refused above limits.
"""
from __future__ import annotations

from html.parser import HTMLParser
from typing import Optional

#: Deepest nesting of elements a layout or an intro may produce (the report's own markup excluded).
MAX_DEPTH = 40
#: Most elements a layout or an intro may produce (the sections it places excluded).
MAX_ELEMENTS = 5_000
#: Elements that never hold others.
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
#: An open element of this kind ends where another of the same kind starts (an HTML parser does so).
SELF_CLOSING_SIBLINGS = {"p", "li", "dt", "dd", "tr", "td", "th", "option"}


class _Over(Exception):
    pass


class _Measure(HTMLParser):
    """Counts elements and tracks the open ones, stopping at the first limit crossed."""

    def __init__(self, max_depth: int, max_elements: int):
        super().__init__(convert_charrefs=False)
        self.max_depth, self.max_elements = max_depth, max_elements
        self.open, self.elements, self.deepest = [], 0, 0

    def handle_starttag(self, tag, attrs):
        self._count()
        if tag in VOID:
            return
        if tag in SELF_CLOSING_SIBLINGS and self.open and self.open[-1] == tag:
            self.open.pop()
        self.open.append(tag)
        self.deepest = max(self.deepest, len(self.open))
        if len(self.open) > self.max_depth:
            raise _Over(f"nests elements more than {self.max_depth:,} deep (the limit)")

    def handle_startendtag(self, tag, attrs):
        self._count()

    def handle_endtag(self, tag):
        if tag in self.open:
            while self.open.pop() != tag:
                pass

    def _count(self):
        self.elements += 1
        if self.elements > self.max_elements:
            raise _Over(f"has more than {self.max_elements:,} elements (the limit)")


def structure_problem(html: str, max_depth: int = MAX_DEPTH, max_elements: int = MAX_ELEMENTS) -> Optional[str]:
    """None if ``html`` stays within the limits, else what is wrong with it."""
    measure = _Measure(max_depth, max_elements)
    try:
        measure.feed(html)
        measure.close()
    except _Over as exc:
        return str(exc)
    return None


def static_markup(source: str) -> str:
    """The literal markup of a Jinja layout (its text outside tags and expressions), in order.

    This is what a layout produces at the least, so a layout whose own text is
    already too deep is refused when it is stored; what loops build is measured
    on the rendered output.
    """
    from jinja2 import nodes

    from .sandbox import environment

    tree = environment().parse(source)
    return "".join(node.data for node in tree.find_all(nodes.TemplateData))
