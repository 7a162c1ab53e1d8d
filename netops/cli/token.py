"""`netops token`: the OAuth2 application token (status, refresh)."""

from __future__ import annotations

import contextlib
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
    if info.get("note"):
        click.echo(f"note:       {info['note']}")
    if info.get("refused_at"):
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(info["refused_at"])))
        click.echo(f"REFUSED:    the API answered 401 to this token at {at}; run `netops token refresh`")
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
    """Show the stored token's TTL (no API call). Exit 1 when none is stored for the configured
    API and credentials, it is below NETOPS_TOKEN_MIN_TTL, or the API has refused it (401)."""
    from netops.api.auth import load_token, read_store, token_ttl

    tok = load_token(settings) or {}
    ttl = token_ttl(tok)
    info = {"api_url": settings.api_url, "ttl_seconds": ttl, "expires_at": tok.get("expires_at"),
            "secret_valid_until": tok.get("secret_valid_until"), "min_ttl": settings.token_min_ttl,
            "refused_at": tok.get("refused_at")}
    stored = read_store(settings)
    if not tok and stored is not None:
        # say why a token that `netops status` counts is not this configuration's
        if stored.get("api_url") != settings.api_url:
            info["note"] = (f"the stored token is for {stored.get('api_url')}, not NETOPS_API_URL={settings.api_url}; "
                            "set NETOPS_API_URL as the job that stored it did")
        else:
            info["note"] = ("the stored token was obtained with other credentials than the configured "
                            "NETOPS_CLIENT_ID/NETOPS_CLIENT_SECRET; `netops token refresh` replaces it")
    _print(info, as_json)
    if ttl is None or ttl < settings.token_min_ttl or info["refused_at"]:
        raise SystemExit(1)


@group.command("refresh")
@click.option("--force", is_flag=True, help="Refresh even when the TTL is still above the minimum.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_settings
def refresh(settings: Settings, force: bool, as_json: bool) -> None:
    """Refresh the token if its TTL is below NETOPS_TOKEN_MIN_TTL, the API has refused it (401),
    or it was obtained with other credentials (cron runs this hourly). Logs the decision to
    42_token_refresh.log; the token request is counted in netops.api_calls when the database is up
    (it is never started for this)."""
    from netops.api.auth import TokenManager
    from netops.db.api_calls import CallRecorder
    from netops.db.server import resolve_dsn

    recorder = CallRecorder(resolve_dsn(settings, start=False))
    try:
        info = TokenManager(settings, recorder=recorder).check(force=force)
    finally:
        with contextlib.suppress(Exception):  # the database may be down: accounting is best effort here
            recorder.close()
    _print(info, as_json)
