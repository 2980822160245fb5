"""Markdown to HTML that is safe to embed: rendered with Python-Markdown, then
sanitized with nh3 (no scripts, no event handlers, only http(s) and mailto links)."""
from __future__ import annotations

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b", "i", "u", "s", "del",
    "code", "pre", "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td",
    "sup", "sub", "span", "small", "mark", "abbr",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "abbr": {"title"}, "th": {"align"}, "td": {"align"}}
URL_SCHEMES = {"http", "https", "mailto"}


def sanitize_html(html: str, extra_tags=(), extra_attributes=None) -> str:
    """Keep only harmless tags and attributes; drop scripts and ``javascript:`` links."""
    import nh3

    attributes = {tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()}
    for tag, names in (extra_attributes or {}).items():
        attributes.setdefault(tag, set()).update(names)
    return nh3.clean(html, tags=ALLOWED_TAGS | set(extra_tags), attributes=attributes,
                     url_schemes=URL_SCHEMES, link_rel="noopener noreferrer nofollow",
                     clean_content_tags={"script", "style"})


def _html_of(text: str) -> str:
    """Markdown -> HTML as Python-Markdown writes it (not yet sanitized)."""
    import markdown

    return markdown.markdown(text or "", extensions=["tables", "sane_lists"], output_format="html")


def render_markdown(text: str) -> str:
    """Markdown -> sanitized HTML."""
    return sanitize_html(_html_of(text))


def markdown_as_text(text: str) -> str:
    """Markdown as the plain text a reader of it sees (``**12**`` as ``12``, a link as its
    words), for places that show no formatting, such as a spreadsheet cell."""
    import html

    import nh3

    return html.unescape(nh3.clean(_html_of(text), tags=set())).strip()
