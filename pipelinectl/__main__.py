"""`python -m pipelinectl`, and the `pipelinectl` console script (`run`)."""

from __future__ import annotations

import sys


def run() -> None:
    """`pipelinectl --version` is answered before click is imported (click is most of the
    start-up), in click's version_option form; anything else goes to the click app."""
    if sys.argv[1:] == ["--version"]:
        from pipelinectl import __version__

        print(f"pipelinectl, version {__version__}")
        return
    from pipelinectl.cli import main

    main(prog_name="pipelinectl")


if __name__ == "__main__":
    run()
