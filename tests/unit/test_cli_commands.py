"""The root command's lazy table (netops.cli.COMMANDS): every entry loads the command it names,
and a command imports only what it uses."""

from __future__ import annotations

import subprocess
import sys

import click

from netops.cli import COMMANDS, cli


def test_every_listed_command_loads_under_its_name() -> None:
    ctx = click.Context(cli)
    assert cli.list_commands(ctx) == sorted(COMMANDS)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command) and command.name == name
    assert cli.get_command(ctx, "nope") is None


def test_a_backlog_worker_does_not_import_the_api_client() -> None:
    """`backlog run` makes no call when the payload came with the listing; before COMMANDS it
    imported requests and tenacity anyway (through the sync group), about half its start-up."""
    code = ("import sys\nfrom netops.cli import cli\n"
            "try:\n    cli.main(['backlog', 'run', '--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('requests', 'tenacity', 'netops.api.client', 'netops.pipeline.stable.sync') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
