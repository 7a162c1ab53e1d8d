"""Observability commands (status, logs, metrics, alerts, check, dashboard)."""

from __future__ import annotations

import click

commands: list[click.Command] = []
