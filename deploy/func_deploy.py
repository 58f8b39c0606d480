"""``python -m deploy.func_deploy <name>|all|all-in-one [func deploy flags]``: build, then `func deploy`.

Builds the self-contained context (deploy.build) and runs ``func deploy --path build/<name>``
with any further flags (``--registry ghcr.io/acme``, ...), for each function with ``all``.
Without the ``func`` CLI on PATH it stops before building, saying what to install.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence

from deploy.build import ALL_IN_ONE, FUNCTIONS, ROOT, build

__all__ = ["MISSING_FUNC", "main"]

MISSING_FUNC = """\
error: the Knative `func` CLI is not on PATH, so nothing was deployed.
Install the `func` binary from a knative/func release (https://knative.dev/docs/functions/install-func/),
make sure `kubectl` reaches the cluster, then run again:
    uv run task deploy FN={target}
or build and deploy by hand (`kn func deploy` works the same way):
    uv run task build FN={target} && func deploy --path {path}
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    targets = (*FUNCTIONS, "all", ALL_IN_ONE)
    if not args or args[0] not in targets:
        print(f"usage: python -m deploy.func_deploy <{'|'.join(targets)}> [func deploy flags]", file=sys.stderr)  # noqa: T201 - a command's output
        return 2
    target, flags = args[0], args[1:]
    func = shutil.which("func")
    if func is None:
        path = "build/<name>" if target == "all" else f"build/{target}"
        print(MISSING_FUNC.format(target=target, path=path), file=sys.stderr, end="")  # noqa: T201 - a command's output
        return 127
    for context in build(target):
        print(f"func deploy --path {context.relative_to(ROOT)} {' '.join(flags)}", flush=True)  # noqa: T201 - a command's output
        returncode = subprocess.run([func, "deploy", "--path", str(context), *flags], check=False).returncode  # noqa: S603
        if returncode != 0:
            return returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
