"""Checks a user's template must pass before it is stored: sizes, a restricted
stylesheet, Jinja syntax (with line numbers), the nesting and size of a layout's
and an intro's markup, a small PNG or SVG logo."""
from __future__ import annotations

import base64
import binascii
import re
from typing import Any, List, Mapping, Tuple

from .stylesheet import CSS_PROPERTIES, FONTS, check_css, image_problem  # noqa: F401 - names of this module

MAX_MARKDOWN = 20_000
MAX_CSS = 20_000
MAX_LAYOUT = 50_000
MAX_LOGO_BYTES = 100 * 1024

PRESENTATION_KEYS = ("intro_markdown", "css", "layout", "logo")
LOGO = re.compile(r"^data:(image/png|image/svg\+xml)(;base64)?,(.*)$", re.S)
#: SVG elements a logo may not hold: scripts, foreign content, and whatever loads or animates other content.
SVG_REFUSED = {"script", "foreignobject", "iframe", "use", "image", "feimage", "animate", "set",
               "animatemotion", "animatetransform"}
#: A reference that leaves the logo: url() to anything but an id inside it, or an @import.
SVG_OUTSIDE_REFERENCE = re.compile(r"url\(\s*['\"]?\s*(?!#)|@import", re.I)


def check_logo(value: str) -> List[str]:
    match = LOGO.match(value)
    if not match:
        return ["must be a data URL of a PNG or SVG image (data:image/png;base64,...)"]
    kind, is_base64, payload = match.groups()
    try:
        data = base64.b64decode(payload, validate=True) if is_base64 else payload.encode()
    except (binascii.Error, ValueError):
        return ["is not valid base64"]
    if len(data) > MAX_LOGO_BYTES:
        return [f"is {len(data):,} bytes; at most {MAX_LOGO_BYTES:,}"]
    if kind == "image/png" and not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return ["is not a PNG image"]
    if kind == "image/png":
        problem = image_problem(data, "png")
        return [problem] if problem else []
    if kind == "image/svg+xml":
        return _check_svg(data)
    return []


def _check_svg(data: bytes) -> List[str]:
    from lxml import etree

    try:
        root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False))
    except etree.XMLSyntaxError as exc:
        return [f"is not a valid SVG: {exc}"]
    if etree.QName(root).localname != "svg":
        return ["is not an SVG image"]
    tree = root.getroottree()
    if tree.docinfo.internalDTD is not None or tree.docinfo.doctype:
        return ["an SVG logo may not declare a DOCTYPE or entities"]
    for element in root.iter():
        if not isinstance(element.tag, str):
            if isinstance(element, etree._ProcessingInstruction):
                return ["an SVG logo may not hold processing instructions (xml-stylesheet)"]
            continue
        name = etree.QName(element).localname.lower()
        if name in SVG_REFUSED:
            return [f"an SVG logo may not contain <{name}>"]
        for attribute, value in element.attrib.items():
            local = etree.QName(attribute).localname.lower()
            if local.startswith("on") or (local == "href" and not value.startswith("#")):
                return [f"an SVG logo may not use the attribute {local!r}"]
            # url(#id) points inside the logo; any other url() would reach for another file.
            if SVG_OUTSIDE_REFERENCE.search(value):
                return [f"an SVG logo's attribute {local!r} may only refer inside the logo (url(#id))"]
        if name == "style" and SVG_OUTSIDE_REFERENCE.search("".join(element.itertext())):
            return ["an SVG logo's <style> may only refer inside the logo (url(#id))"]
    for sibling in (*root.itersiblings(preceding=True), *root.itersiblings()):
        if isinstance(sibling, etree._ProcessingInstruction):
            return ["an SVG logo may not hold processing instructions (xml-stylesheet)"]
    return []


def check_presentation(presentation: Any) -> Tuple[dict, List[Tuple[str, str]]]:
    """Validate the optional look of a template; returns ``(clean values, [(field, problem)])``."""
    from .sandbox import check_syntax
    from .structure import static_markup, structure_problem

    problems: List[Tuple[str, str]] = []
    values: dict = {}
    if not isinstance(presentation, Mapping):
        return {}, [("presentation", "must be an object")]
    for key, value in presentation.items():
        if key not in PRESENTATION_KEYS:
            problems.append((key, f"unknown field; accepted: {', '.join(PRESENTATION_KEYS)}"))
            continue
        if value is None:
            continue
        if not isinstance(value, str):
            problems.append((key, "must be a string"))
            continue
        if key == "intro_markdown":
            if len(value) > MAX_MARKDOWN:
                problems.append((key, f"is {len(value):,} characters; at most {MAX_MARKDOWN:,}"))
            elif value.strip():
                problems += [(key, p) for p in _check_intro(value)]
        elif key == "css":
            if len(value) > MAX_CSS:
                problems.append((key, f"is {len(value):,} characters; at most {MAX_CSS:,}"))
            else:
                problems += [(key, p) for p in check_css(value)]
        elif key == "layout":
            if len(value) > MAX_LAYOUT:
                problems.append((key, f"is {len(value):,} characters; at most {MAX_LAYOUT:,}"))
            else:
                error = check_syntax(value)
                if error:
                    problems.append((key, f"Jinja syntax error at {error}"))
                else:
                    shape = structure_problem(static_markup(value))
                    if shape:
                        problems.append((key, f"its markup {shape}"))
        elif key == "logo":
            problems += [(key, p) for p in check_logo(value)]
        values[key] = value
    return values, problems


def _check_intro(markdown: str) -> List[str]:
    """Render the intro as a report would (in the sandbox), so one that breaks a limit is refused now."""
    from .layout import intro_html
    from .sandbox import LayoutError

    try:
        intro_html(markdown)
    except LayoutError as exc:
        return [exc.message.removeprefix("the template intro_markdown").lstrip(": ")]
    return []
