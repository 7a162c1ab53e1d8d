"""`netops config`: show the effective configuration (secrets masked) and where each value came from."""

from __future__ import annotations

import click

from netops.cli.common import echo_json, pass_settings
from netops.config import FIELDS, Settings


@click.group(name="config")
def group() -> None:
    """Inspect the effective configuration."""


@group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_settings
def show(settings: Settings, as_json: bool) -> None:
    """Print every setting, its value (secrets masked) and its source (default, file, env)."""
    values = settings.public_dict()
    if as_json:
        echo_json({"config_file": settings.config_path,
                   "settings": {k: {"value": v, "source": settings.sources.get(k)} for k, v in values.items()}})
        return
    click.echo(f"config file: {settings.config_path or '(none)'}")
    for f in FIELDS:
        click.echo(f"  {f.env:<32} {_shown(values[f.name]):<40} [{settings.sources.get(f.name)}]")


def _shown(value: object) -> str:
    """A value as its variable is written: a list as `29,20` (NETOPS_CAMPUS_IDS), not `(29, 20)`."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "(none)"
    return str(value)
