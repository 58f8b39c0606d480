"""Serve one function directory with func-python's HTTP middleware, as ``func`` does in its image.

    LISTEN_ADDRESS=127.0.0.1:8081 python -m sandbox.serve functions/scheduler

func's Python scaffolding runs ``from function import new; serve(new)``; this does the same
from the function's own directory, so tests and the demo run the code that is deployed.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit("usage: python -m sandbox.serve <function directory>")
    sys.path.insert(0, str(Path(argv[1]).resolve()))
    from func_python.http import serve

    serve(importlib.import_module("function").new)


if __name__ == "__main__":
    main(sys.argv)
