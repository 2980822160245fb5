"""Arrange a report with a template's layout.

The layout positions trusted pieces (the rendered sections, the intro, the
logo) through placeholders it can print but not alter: each placeholder is a
random token that survives autoescaping. The layout's own output is sanitized
with nh3 before the trusted pieces replace their tokens, so a layout can add
headings and wrappers but never scripts, styles, links to files or fetches.
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
    html = sanitized_markup(render_layout(layout, variables), "the template layout",
                            extra_tags=LAYOUT_TAGS, extra_attributes=LAYOUT_ATTRIBUTES)
    for name, token in tokens.items():
        if token in html:
            html = html.replace(token, fragments[name])
        elif name not in ("intro", "logo"):
            html += fragments[name]
    return html


def sanitized_markup(html: str, what: str, **allowed) -> str:
    """``html`` from the sandbox, measured and sanitized here again (the child's word is not taken).

    Measured before the sanitizer sees it (whose time grows with the square of
    the nesting) and after (whose tree building may add elements).
    """
    problem = structure_problem(html)
    if problem is None:
        html = sanitize_html(html, **allowed)
        problem = structure_problem(html)
    if problem:
        raise LayoutError(f"{what}: its output {problem}")
    return html


def intro_html(markdown: str) -> str:
    """A template's intro Markdown as sanitized HTML, rendered in the sandbox and measured."""
    return sanitized_markup(render_intro(markdown), "the template intro_markdown")
