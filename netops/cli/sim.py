"""`netops sim`: placeholder group, filled by its issue."""

from __future__ import annotations

import click


@click.group(name="sim")
def group() -> None:
    """(not built yet)"""
