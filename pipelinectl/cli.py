"""Command line entry point (being built)."""

import click

from pipelinectl import __version__


@click.group()
@click.version_option(__version__, prog_name="pipelinectl")
def main() -> None:
    """Provision and operate the transaction pipeline."""
