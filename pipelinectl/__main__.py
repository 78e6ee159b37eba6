"""Allow `python -m pipelinectl`."""

from pipelinectl.cli import main

main(prog_name="pipelinectl")
