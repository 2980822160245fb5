"""Child process of the layout sandbox: reads ``{"source", "context"}`` JSON on
stdin, writes the rendered HTML on stdout, or ``layout error: ...`` on stderr."""
import json
import sys

from .sandbox import MAX_OUTPUT, environment


def main() -> int:
    request = json.loads(sys.stdin.buffer.read())
    try:
        template = environment().from_string(request["source"])
        pieces, size = [], 0
        for piece in template.generate(**request["context"]):
            size += len(piece)
            if size > MAX_OUTPUT:
                raise ValueError(f"output above {MAX_OUTPUT // 1024:,} KB")
            pieces.append(piece)
    except MemoryError:
        sys.stderr.write("layout error: the template layout exceeded its memory limit\n")
        return 1
    except Exception as exc:  # every failure of untrusted code is reported, never raised
        message = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        sys.stderr.write(f"layout error: {type(exc).__name__}: {message}\n")
        return 1
    sys.stdout.write("".join(pieces))
    return 0


if __name__ == "__main__":
    sys.exit(main())
