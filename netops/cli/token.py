"""`netops token`: the OAuth2 application token (status, refresh)."""

from __future__ import annotations

import time

import click

from netops.cli.common import echo_json, pass_settings
from netops.config import Settings


@click.group(name="token")
def group() -> None:
    """Inspect or refresh the API token (stored 0600 in <state_dir>/token.json)."""


def _print(info: dict, as_json: bool) -> None:
    if as_json:
        echo_json(info)
        return
    ttl = info.get("ttl_seconds")
    click.echo(f"api:        {info.get('api_url')}")
    click.echo(f"token TTL:  {'none stored' if ttl is None else f'{ttl}s'}")
    svu = info.get("secret_valid_until")
    if svu:
        days = (float(svu) - time.time()) / 86400
        click.echo(f"secret:     valid {days:.1f} more days")
    if "refreshed" in info:
        click.echo(f"refreshed:  {'yes' if info['refreshed'] else 'no'}")


@group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_settings
def status(settings: Settings, as_json: bool) -> None:
    """Show the stored token's TTL (no API call). Exit 1 when none is stored or it is below
    NETOPS_TOKEN_MIN_TTL."""
    from netops.api.auth import load_token, token_ttl

    tok = load_token(settings) or {}
    ttl = token_ttl(tok)
    info = {"api_url": settings.api_url, "ttl_seconds": ttl, "expires_at": tok.get("expires_at"),
            "secret_valid_until": tok.get("secret_valid_until"), "min_ttl": settings.token_min_ttl}
    _print(info, as_json)
    if ttl is None or ttl < settings.token_min_ttl:
        raise SystemExit(1)


@group.command("refresh")
@click.option("--force", is_flag=True, help="Refresh even when the TTL is still above the minimum.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_settings
def refresh(settings: Settings, force: bool, as_json: bool) -> None:
    """Refresh the token if its TTL is below NETOPS_TOKEN_MIN_TTL (cron runs this hourly).
    Logs the decision to 42_token_refresh.log."""
    from netops.api.auth import TokenManager

    _print(TokenManager(settings).check(force=force), as_json)
