"""Checks a user's template must pass before it is stored: sizes, a restricted
stylesheet, Jinja syntax (with line numbers), a small PNG or SVG logo."""
from __future__ import annotations

import base64
import binascii
import re
from typing import Any, List, Mapping, Tuple

MAX_MARKDOWN = 20_000
MAX_CSS = 20_000
MAX_LAYOUT = 50_000
MAX_LOGO_BYTES = 100 * 1024

#: The fonts shipped with the service (fonts-dejavu-core) and the generic families.
FONTS = {"dejavu sans", "dejavu serif", "dejavu sans mono", "sans-serif", "serif", "monospace"}
#: What a template's stylesheet may set: colours, fonts, spacing, borders, alignment.
CSS_PROPERTIES = {
    "color", "background", "background-color", "font-family", "font-size", "font-weight", "font-style",
    "line-height", "letter-spacing", "text-align", "text-transform", "text-decoration", "margin",
    "margin-top", "margin-right", "margin-bottom", "margin-left", "padding", "padding-top", "padding-right",
    "padding-bottom", "padding-left", "border", "border-top", "border-right", "border-bottom", "border-left",
    "border-color", "border-width", "border-style", "border-radius", "border-collapse", "width", "max-width",
    "min-width", "height", "display", "page-break-before", "page-break-after", "page-break-inside",
    "break-before", "break-after", "break-inside", "vertical-align", "opacity", "white-space",
}
PRESENTATION_KEYS = ("intro_markdown", "css", "layout", "logo")
LOGO = re.compile(r"^data:(image/png|image/svg\+xml)(;base64)?,(.*)$", re.S)


def check_css(css: str) -> List[str]:
    """Problems with a stylesheet (empty list if it is acceptable)."""
    import tinycss2

    problems = []
    rules = tinycss2.parse_stylesheet(css, skip_comments=True, skip_whitespace=True)
    for rule in rules:
        if rule.type == "error":
            problems.append(f"line {rule.source_line}: {rule.message}")
        elif rule.type == "at-rule":
            if rule.lower_at_keyword not in ("media", "page"):
                problems.append(f"line {rule.source_line}: @{rule.at_keyword} is not allowed")
            elif rule.content is not None:
                problems += _check_declarations(rule.content)
        elif rule.type == "qualified-rule":
            problems += _check_declarations(rule.content)
    return problems


def _check_declarations(tokens) -> List[str]:
    import tinycss2

    problems = []
    for item in tinycss2.parse_blocks_contents(tokens, skip_comments=True, skip_whitespace=True):
        if item.type == "qualified-rule":  # nested rules inside @media
            problems += _check_declarations(item.content)
            continue
        if item.type == "error":
            problems.append(f"line {item.source_line}: {item.message}")
            continue
        if item.type != "declaration":
            continue
        name = item.lower_name
        if name not in CSS_PROPERTIES:
            problems.append(f"line {item.source_line}: property {name!r} is not allowed")
            continue
        problems += _check_value(item, name)
    return problems


def _check_value(declaration, name) -> List[str]:
    import tinycss2

    problems = []
    line = declaration.source_line
    for token in _walk(declaration.value):
        if token.type == "url" or (token.type == "function" and token.lower_name == "url"):
            target = token.value if token.type == "url" else tinycss2.serialize(token.arguments).strip("'\" ")
            if not target.startswith("data:image/"):
                problems.append(f"line {line}: url() may only hold a data:image URL")
        elif token.type == "function" and token.lower_name in ("expression", "image-set", "element"):
            problems.append(f"line {line}: {token.name}() is not allowed")
        elif token.type == "ident" and token.lower_value.startswith(("javascript", "-moz-binding")):
            problems.append(f"line {line}: {token.value!r} is not allowed")
    if name == "font-family":
        families = [f.strip().strip("'\"").lower() for f in tinycss2.serialize(declaration.value).split(",")]
        for family in families:
            if family and family not in FONTS:
                problems.append(f"line {line}: font {family!r} is not bundled; use one of "
                                f"{', '.join(sorted(FONTS))}")
    return problems


def _walk(tokens):
    for token in tokens:
        yield token
        if getattr(token, "arguments", None):
            yield from _walk(token.arguments)
        if getattr(token, "content", None) and isinstance(token.content, list):
            yield from _walk(token.content)


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
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        name = etree.QName(element).localname.lower()
        if name in ("script", "foreignobject", "iframe", "use", "image"):
            return [f"an SVG logo may not contain <{name}>"]
        for attribute, value in element.attrib.items():
            local = etree.QName(attribute).localname.lower()
            if local.startswith("on") or (local == "href" and not value.startswith("#")):
                return [f"an SVG logo may not use the attribute {local!r}"]
    return []


def check_presentation(presentation: Any) -> Tuple[dict, List[Tuple[str, str]]]:
    """Validate the optional look of a template; returns ``(clean values, [(field, problem)])``."""
    from .sandbox import check_syntax

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
        if key == "intro_markdown" and len(value) > MAX_MARKDOWN:
            problems.append((key, f"is {len(value):,} characters; at most {MAX_MARKDOWN:,}"))
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
        elif key == "logo":
            problems += [(key, p) for p in check_logo(value)]
        values[key] = value
    return values, problems
