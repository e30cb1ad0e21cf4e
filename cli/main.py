"""Entry point of the ``foundation-node`` command.

The CLI parses, calls the library and renders; it holds no logic of its own. Exit codes: 0 success,
1 a command failed (one-line error on stderr), 2 usage error (click).
"""

from __future__ import annotations

import asyncio
import logging
import sys

import click

from fabric.demo import run_demo
from fabric.errors import FabricError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="foundation-fabric")
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Run and operate Foundation fabric nodes."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@cli.command()
@click.option("--bulk-mib", default=8, show_default=True, type=click.IntRange(1, 256), help="Size of the bulk transfer.")
def demo(bulk_mib: int) -> None:
    """Start a three-node cluster on 127.0.0.1 and exchange messages on every channel kind."""
    try:
        asyncio.run(run_demo(click.echo, bulk_mib=bulk_mib))
    except (FabricError, TimeoutError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":
    main()
