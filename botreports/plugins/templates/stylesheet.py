"""A template's stylesheet, checked as CSS tokens and written back so that it
cannot leave its ``<style>`` element: rules, selectors, at-rule preludes and
values are allow-listed, and the text printed into a page never holds ``<``."""
from __future__ import annotations

import base64
import binascii
import re
from typing import List, Optional

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
#: Functions a value may call (``url()`` is checked on its own).
VALUE_FUNCTIONS = {"rgb", "rgba", "hsl", "hsla", "calc", "min", "max", "clamp", "linear-gradient",
                   "radial-gradient", "repeating-linear-gradient", "repeating-radial-gradient"}
#: Pseudo-classes with arguments a selector may use.
SELECTOR_FUNCTIONS = {"not", "is", "where", "nth-child", "nth-last-child", "nth-of-type", "nth-last-of-type"}
SELECTOR_LITERALS = {".", "*", ">", "+", "~", ",", ":", "|", "=", "~=", "|=", "^=", "$=", "*=", "-"}
VALUE_LITERALS = {",", "/", "+", "-", "*", "!"}
#: The margin boxes of a page, the only rules ``@page`` may hold.
MARGIN_BOXES = {f"{edge}-{place}" for edge in ("top", "bottom") for place in ("left", "center", "right")} | {
    f"{edge}-{place}" for edge in ("left", "right") for place in ("top", "middle", "bottom")} | {
    "top-left-corner", "top-right-corner", "bottom-left-corner", "bottom-right-corner"}
#: Pictures a stylesheet may embed: raster ``data:`` URLs only (an SVG may reference other files).
DATA_IMAGE = re.compile(r"^data:image/(png|jpeg|gif|webp);base64,([A-Za-z0-9+/=\s]*)$", re.I)
#: Largest picture a stylesheet or a logo may embed, in pixels (a small file can declare a huge image).
MAX_IMAGE_PIXELS = 4096 * 4096


def check_css(css: str) -> List[str]:
    """Problems with a stylesheet, each with its line (empty list if it is acceptable)."""
    import tinycss2

    problems = [f"line {number}: '<' is not allowed in a stylesheet"
                for number, line in enumerate(css.splitlines() or [""], start=1) if "<" in line]
    for rule in tinycss2.parse_stylesheet(css, skip_comments=True, skip_whitespace=True):
        problems += _check_rule(rule, inside=None)
    return problems


def _check_rule(rule, inside: Optional[str]) -> List[str]:
    import tinycss2

    line = f"line {rule.source_line}"
    if rule.type == "error":
        return [f"{line}: {rule.message}"]
    if rule.type == "qualified-rule":
        if inside == "page":
            return [f"{line}: @page may hold declarations and margin boxes only"]
        return _check_selector(rule.prelude, line) + _check_declarations(rule.content, allow_rules=False)
    if rule.type != "at-rule":
        return []
    name = rule.lower_at_keyword
    if inside == "page":
        if name not in MARGIN_BOXES:
            return [f"{line}: @{rule.at_keyword} is not allowed inside @page"]
        return _check_declarations(rule.content or [], allow_rules=False)
    if inside is not None or name not in ("media", "page"):
        return [f"{line}: @{rule.at_keyword} is not allowed"]
    if rule.content is None:
        return [f"{line}: @{rule.at_keyword} needs a {{}} block"]
    if name == "page":
        return _check_page_prelude(rule.prelude, line) + _check_declarations(rule.content, allow_rules=True)
    problems = _check_media_prelude(rule.prelude, line)
    for nested in tinycss2.parse_rule_list(rule.content, skip_comments=True, skip_whitespace=True):
        problems += _check_rule(nested, inside="media")
    return problems


def _check_selector(tokens, line: str) -> List[str]:
    for token in tokens:
        kind = token.type
        if kind in ("whitespace", "comment", "ident", "hash", "number", "dimension"):
            continue
        if kind == "literal" and token.value in SELECTOR_LITERALS:
            continue
        if kind == "[] block":
            if all(t.type in ("whitespace", "comment", "ident", "string")
                   or (t.type == "literal" and t.value in SELECTOR_LITERALS) for t in token.content):
                continue
        elif kind == "function" and token.lower_name in SELECTOR_FUNCTIONS:
            problems = _check_selector(token.arguments, line)
            if problems:
                return problems
            continue
        return [f"{line}: {_shown(token)} is not allowed in a selector"]
    return []


def _check_page_prelude(tokens, line: str) -> List[str]:
    words = [t for t in tokens if t.type not in ("whitespace", "comment")]
    if all(t.type == "ident" or (t.type == "literal" and t.value == ":") for t in words):
        return []
    return [f"{line}: @page may only name a page (:first, :left, :right)"]


def _check_media_prelude(tokens, line: str) -> List[str]:
    for token in tokens:
        if token.type in ("whitespace", "comment", "ident") or (token.type == "literal" and token.value == ","):
            continue
        if token.type == "() block" and all(
                t.type in ("whitespace", "comment", "ident", "number", "dimension", "percentage")
                or (t.type == "literal" and t.value == ":") for t in token.content):
            continue
        return [f"{line}: {_shown(token)} is not allowed in a media query"]
    return []


def _check_declarations(tokens, allow_rules: bool) -> List[str]:
    import tinycss2

    problems = []
    for item in tinycss2.parse_blocks_contents(tokens, skip_comments=True, skip_whitespace=True):
        if item.type == "declaration":
            problems += _check_declaration(item)
        elif item.type == "at-rule" and allow_rules:
            problems += _check_rule(item, inside="page")
        elif item.type == "error":
            problems.append(f"line {item.source_line}: {item.message}")
        else:
            problems.append(f"line {item.source_line}: a rule may not be nested here")
    return problems


def _check_declaration(declaration) -> List[str]:
    import tinycss2

    line = f"line {declaration.source_line}"
    name = declaration.lower_name
    if name not in CSS_PROPERTIES:
        return [f"{line}: property {name!r} is not allowed"]
    problems = _check_value(declaration.value, line)
    if name == "font-family" and not problems:
        families = [f.strip().strip("'\"").lower() for f in tinycss2.serialize(declaration.value).split(",")]
        for family in families:
            if family and family not in FONTS:
                problems.append(f"{line}: font {family!r} is not bundled; use one of {', '.join(sorted(FONTS))}")
    return problems


def _check_value(tokens, line: str) -> List[str]:
    import tinycss2

    for token in tokens:
        kind = token.type
        if kind in ("whitespace", "comment", "ident", "hash", "number", "percentage", "dimension", "string"):
            continue
        if kind == "literal" and token.value in VALUE_LITERALS:
            continue
        if kind == "url" or (kind == "function" and token.lower_name == "url"):
            target = token.value if kind == "url" else tinycss2.serialize(token.arguments).strip("'\" ")
            problem = check_data_image(target)
            if problem:
                return [f"{line}: url() {problem}"]
            continue
        if kind == "function" and token.lower_name in VALUE_FUNCTIONS:
            problems = _check_value(token.arguments, line)
            if problems:
                return problems
            continue
        if kind == "() block":
            problems = _check_value(token.content, line)
            if problems:
                return problems
            continue
        what = f"{token.name}()" if kind == "function" else _shown(token)
        return [f"{line}: {what} is not allowed in a value"]
    return []


def _shown(token) -> str:
    import tinycss2

    text = tinycss2.serialize([token]).replace("<", "\\3c ")
    return repr(text if len(text) <= 40 else text[:40] + "…")


def check_data_image(url: str) -> Optional[str]:
    """None for a PNG, JPEG, GIF or WebP ``data:`` URL of a picture of sensible size, else the problem."""
    match = DATA_IMAGE.match(url.strip())
    if not match:
        return "may only hold a base64 data:image URL of a PNG, JPEG, GIF or WebP picture"
    try:
        data = base64.b64decode(re.sub(r"\s", "", match.group(2)), validate=True)
    except (binascii.Error, ValueError):
        return "holds data:image that is not valid base64"
    return image_problem(data, match.group(1).lower())


def image_problem(data: bytes, kind: str) -> Optional[str]:
    """None if ``data`` is a picture of type ``kind`` of at most ``MAX_IMAGE_PIXELS``, else the problem."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            found, (width, height) = (image.format or "").lower(), image.size
    except (UnidentifiedImageError, OSError, ValueError):
        return f"is not a {kind.upper()} picture"
    if found != kind:
        return f"is not a {kind.upper()} picture"
    if width * height > MAX_IMAGE_PIXELS:
        return f"is a {width:,}x{height:,} picture; at most {MAX_IMAGE_PIXELS:,} pixels"
    return None


def safe_stylesheet(css: str) -> str:
    """``css`` written back from its tokens, without comments, ``<`` escaped as ``\\3c ``.

    Stylesheets are checked when their template is stored; this is what keeps
    one inside its ``<style>`` element whatever it holds (a template stored under
    older rules, a store edited by hand): an HTML parser only leaves a style
    element at ``</style``, and no ``<`` is left to start it.
    """
    import tinycss2

    rules = tinycss2.parse_stylesheet(css, skip_comments=True, skip_whitespace=False)
    text = tinycss2.serialize(_without_comments(rules))
    return text.replace("<", "\\3c ")


def _without_comments(nodes):
    kept = []
    for node in nodes:
        if node.type in ("comment", "error"):
            continue
        for attribute in ("prelude", "content", "arguments", "value"):
            children = getattr(node, attribute, None)
            if isinstance(children, list):
                setattr(node, attribute, _without_comments(children))
        kept.append(node)
    return kept
