"""Arrange a report with a template's layout.

The layout positions trusted pieces (the rendered sections, the intro, the
logo) through placeholders it can print but not alter: each placeholder is a
random token that survives autoescaping. The layout's own output is sanitized
with nh3 before the trusted pieces replace their tokens, so a layout can add
headings and wrappers but never scripts, styles, links to files or fetches.
"""
from __future__ import annotations

import secrets
from typing import Mapping

from .markdown_text import sanitize_html
from .sandbox import render_layout

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
    html = sanitize_html(render_layout(layout, variables), extra_tags=LAYOUT_TAGS,
                         extra_attributes=LAYOUT_ATTRIBUTES)
    for name, token in tokens.items():
        if token in html:
            html = html.replace(token, fragments[name])
        elif name not in ("intro", "logo"):
            html += fragments[name]
    return html
