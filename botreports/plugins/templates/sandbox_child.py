"""Child process of the template sandbox: reads ``{"kind": "layout", "source",
"context"}`` or ``{"kind": "markdown", "text"}`` JSON on stdin, writes the
rendered HTML on stdout, or ``layout error: ...`` on stderr."""
import json
import sys

from .sandbox import MAX_OUTPUT, environment
from .structure import structure_problem


def _layout(request) -> str:
    template = environment().from_string(request["source"])
    pieces, size = [], 0
    for piece in template.generate(**request["context"]):
        size += len(piece)
        if size > MAX_OUTPUT:
            raise ValueError(f"output above {MAX_OUTPUT // 1024:,} KB")
        pieces.append(piece)
    return "".join(pieces)


def _markdown(request) -> str:
    from .markdown_text import render_markdown

    return render_markdown(request["text"])


def main() -> int:
    request = json.loads(sys.stdin.buffer.read())
    try:
        html = (_markdown if request.get("kind") == "markdown" else _layout)(request)
        # Measured here, within this process's limits, before the service parses it at all.
        problem = structure_problem(html)
        if problem:
            sys.stderr.write(f"layout error: its output {problem}\n")
            return 1
    except MemoryError:
        sys.stderr.write("layout error: exceeded its memory limit\n")
        return 1
    except Exception as exc:  # every failure of untrusted code is reported, never raised
        message = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        sys.stderr.write(f"layout error: {type(exc).__name__}: {message}\n")
        return 1
    sys.stdout.write(html)
    return 0


if __name__ == "__main__":
    sys.exit(main())
