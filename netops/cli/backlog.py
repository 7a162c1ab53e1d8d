"""`netops backlog`: placeholder group, filled by its issue."""

from __future__ import annotations

import click


@click.group(name="backlog")
def group() -> None:
    """(not built yet)"""
