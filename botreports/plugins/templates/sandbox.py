"""The sandbox a user's layout and intro render in.

A layout is untrusted Jinja2. It renders in an ``ImmutableSandboxedEnvironment``
whose ``**`` and ``*`` are bounded, inside a child process with CPU time,
memory, wall time and output size limits, so a hostile template fails its own
report with a clear reason and never harms the service. Its output is then
measured (nesting, element count) and sanitized; the report's sections are
inserted afterwards, as placeholders the layout positions but cannot alter.
A template's intro Markdown is rendered in the same kind of child: some short
Markdown texts cost Python-Markdown minutes of CPU.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from typing import Mapping

from ...core.errors import ReportFailed

MAX_POWER = 1_000_000  # largest result magnitude of ** we compute
MAX_REPEAT = 200_000  # longest string or list that * may build
CPU_SECONDS = 2
MEMORY_BYTES = 512 * 1024 * 1024
WALL_SECONDS = 8
MAX_OUTPUT = 2 * 1024 * 1024


class LayoutError(ReportFailed):
    """A layout or intro that is invalid or broke a limit; the message is safe to show."""


def environment():
    """A sandboxed Jinja2 environment with bounded arithmetic and autoescaping."""
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class BoundedEnvironment(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset(["**", "*"])

        def call_binop(self, context, operator, left, right):
            if operator == "**":
                if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right)):
                    raise SecurityError("** works on numbers only")
                # log10 of the result decides before anything huge is computed
                if abs(left) > 1 and right * math.log10(abs(left)) > math.log10(MAX_POWER) or abs(right) > 64:
                    raise SecurityError(f"** limited to results below {MAX_POWER:,}")
                return left ** right
            if operator == "*":
                for seq, times in ((left, right), (right, left)):
                    if isinstance(seq, (str, list, tuple)) and isinstance(times, int):
                        if len(seq) * max(times, 0) > MAX_REPEAT:
                            raise SecurityError(f"* may build at most {MAX_REPEAT:,} items")
                return left * right
            return super().call_binop(context, operator, left, right)

    return BoundedEnvironment(autoescape=True)


def check_syntax(source: str):
    """None if the layout parses, else ``"line N: message"``."""
    from jinja2 import TemplateSyntaxError

    try:
        environment().parse(source)
    except TemplateSyntaxError as exc:
        return f"line {exc.lineno}: {exc.message}"
    return None


def _limit_child():
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS + 1))
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # the child writes no files
    os.setsid()


def render_layout(source: str, context: Mapping) -> str:
    """Render ``source`` with JSON-able ``context`` in a limited child process; returns HTML."""
    return _in_child({"kind": "layout", "source": source, "context": context}, "the template layout")


def render_intro(markdown: str) -> str:
    """A template's intro Markdown as sanitized HTML, rendered in a limited child process."""
    return _in_child({"kind": "markdown", "text": markdown}, "the template intro_markdown")


def _in_child(request: dict, what: str) -> str:
    payload = json.dumps(request, default=str)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "botreports.plugins.templates.sandbox_child"],
            input=payload.encode(), capture_output=True, timeout=WALL_SECONDS, preexec_fn=_limit_child,
            # No secrets of ours in the child's environment: only what Python needs to import us.
            env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        )
    except subprocess.TimeoutExpired:
        raise LayoutError(f"{what} took longer than {WALL_SECONDS} s") from None
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
        last = reason[-1] if reason else ""
        if done.returncode < 0 or "MemoryError" in last or not last.startswith("layout error:"):
            raise LayoutError(f"{what} exceeded its CPU time or memory limit"
                              if done.returncode < 0 or "MemoryError" in last
                              else f"{what} failed to render")
        raise LayoutError(f"{what}: {last.removeprefix('layout error: ')}")
    if len(done.stdout) > MAX_OUTPUT:
        raise LayoutError(f"{what} produced more than {MAX_OUTPUT // 1024:,} KB")
    return done.stdout.decode("utf-8")
