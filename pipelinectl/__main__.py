"""Allow `python -m pipelinectl`."""

from pipelinectl.cli import main

main()
