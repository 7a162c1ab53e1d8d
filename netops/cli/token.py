"""`netops token`: placeholder group, filled by its issue."""

from __future__ import annotations

import click


@click.group(name="token")
def group() -> None:
    """(not built yet)"""
