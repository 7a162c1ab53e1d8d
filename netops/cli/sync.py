"""`netops sync`: placeholder group, filled by its issue."""

from __future__ import annotations

import click


@click.group(name="sync")
def group() -> None:
    """(not built yet)"""
