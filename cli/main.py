"""Entry point of the ``foundation-node`` command."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="foundation-fabric")
def cli() -> None:
    """Run and operate Foundation fabric nodes."""


def main() -> None:
    """Console-script entry point."""
    cli()
