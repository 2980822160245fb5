"""Arrange a report with a template's layout.

The layout positions trusted pieces (the rendered sections, the intro, the
logo) through placeholders it can print but not alter: each placeholder is a
random token that survives autoescaping. The layout's own output is sanitized
with nh3 before the trusted pieces replace their tokens, so a layout can add
headings and wrappers (the elements of ``LAYOUT_TAGS`` with their ``class``) but never
links, images, scripts, styles or fetches.
A template's intro is rendered in the sandbox as well and checked the same way.
"""
from __future__ import annotations

import secrets
from typing import Mapping

from .markdown_text import sanitize_html
from .sandbox import LayoutError, render_intro, render_layout
from .structure import structure_problem

LAYOUT_TAGS = {"div", "section", "header", "footer", "article", "aside", "main", "nav", "figure",
               "figcaption", "h1", "h2", "h3", "h4", "h5", "h6", "p", "span", "small", "strong", "em"}
LAYOUT_ATTRIBUTES = {tag: {"class"} for tag in LAYOUT_TAGS}


def apply_layout(layout: str, context: Mapping, fragments: Mapping[str, str]) -> str:
    """Render ``layout`` with ``context`` plus one placeholder per trusted HTML fragment.

    ``fragments`` maps names to trusted HTML. In the layout, ``sections`` is a
    list of ``{name, title, placeholder}``; ``intro`` and ``logo`` are
    placeholders too. Fragments the layout does not place are appended at the
    end, so no section is ever lost by a layout.
    """
    nonce = secrets.token_hex(8)
    tokens = {name: f"BRSLOT{nonce}{index}X" for index, name in enumerate(fragments)}
    # Sections are keyed by ``key`` (unique in a report) and shown by ``name`` (a section may repeat).
    sections = [{"name": item["name"], "title": item.get("title", ""),
                 "placeholder": tokens[item.get("key", item["name"])]}
                for item in context.get("sections", ()) if item.get("key", item["name"]) in tokens]
    variables = {**context, "sections": sections,
                 "intro": tokens.get("intro", ""), "logo": tokens.get("logo", "")}
    html = sanitized_markup(render_layout(layout, variables), "the template layout", _layout_only)
    for name, token in tokens.items():
        if token in html:
            html = html.replace(token, fragments[name])
        elif name not in ("intro", "logo"):
            html += fragments[name]
    return html


def _layout_only(html: str) -> str:
    """Only the layout's wrapper elements with their ``class``: no links, images, tables or styles."""
    import nh3

    return nh3.clean(html, tags=LAYOUT_TAGS, attributes=LAYOUT_ATTRIBUTES, url_schemes=set(),
                     clean_content_tags={"script", "style"}, link_rel=None)


def sanitized_markup(html: str, what: str, sanitize=sanitize_html) -> str:
    """``html`` from the sandbox, measured and sanitized here again (the child's word is not taken).

    Measured before the sanitizer sees it (whose time grows with the square of
    the nesting) and after (whose tree building may add elements).
    """
    problem = structure_problem(html)
    if problem is None:
        html = sanitize(html)
        problem = structure_problem(html)
    if problem:
        raise LayoutError(f"{what}: its output {problem}")
    return html


def intro_html(markdown: str) -> str:
    """A template's intro Markdown as sanitized HTML, rendered in the sandbox and measured."""
    return sanitized_markup(render_intro(markdown), "the template intro_markdown")
