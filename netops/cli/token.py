"""`netops token`: the OAuth2 application token (status, refresh)."""

from __future__ import annotations

import contextlib
import time

import click

from netops.cli.common import echo_json, needs_api_keys, pass_settings
from netops.config import ConfigError, Settings
from netops.credentials import DEFAULT_LABEL, ApiKey
from netops.errors import NetopsError


@click.group(name="token")
def group() -> None:
    """Inspect or refresh the API tokens: one per application key, stored 0600 in
    <state_dir>/token.json (the default key) and token-<label>.json (the others)."""


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


_KEY_HELP = ("Only the application key with this label (`netops status` lists them; the NETOPS_CLIENT_ID "
             "key is 'default'). Default: every configured key.")


def _selected_keys(settings: Settings, label: str | None) -> list[ApiKey | None]:
    """The keys a token command acts on: every configured key, or the one `--key` names. None
    stands for the one-key default when no key is configured at all (the command then says so
    as it always has: no token stored / NETOPS_CLIENT_ID is not set)."""
    keys: list[ApiKey | None] = list(settings.require_keys(required=False))
    if label is None:
        return keys or [None]
    chosen = [k for k in keys if k is not None and k.label == label]
    if not chosen:
        names = ", ".join(k.label for k in keys if k is not None) or "none"
        raise UnknownKey(f"--key {label}: no application key has that label (configured: {names}); "
                         "`netops status` lists the keys")
    return list(chosen)


def credential_problems(settings: Settings) -> list[str]:
    """Why no token can be had with this configuration (one line each), or [] when every key is
    complete: the same lines `netops status`'s credentials rule shows."""
    if settings.keys.problems:
        return list(settings.keys.problems)
    if not settings.keys.keys:
        try:
            settings.require_credentials()
        except ConfigError as exc:
            return [str(exc)]
    return []


class UnknownKey(NetopsError):
    exit_code = 2


def _emit(infos: list[dict], as_json: bool) -> None:
    """One key: the output as it always was. Several: one block per key (`key <label>:`), and in
    JSON the first key's fields at the top (as before) plus every key under "keys"."""
    if len(infos) == 1:
        _print(infos[0], as_json)
        return
    if as_json:
        echo_json({**infos[0], "keys": infos})
        return
    for n, info in enumerate(infos):
        if n:
            click.echo("")
        click.echo(f"key {info['key']}:")
        _print(info, False)


def _status_of(settings: Settings, key: ApiKey | None) -> dict:
    from netops.api.auth import (
        credential_fingerprint,
        load_token,
        load_token_file,
        read_store_file,
        token_ttl,
    )

    if key is None or key.label == DEFAULT_LABEL:
        tok = load_token(settings) or {}
        store, what = settings.token_file, "NETOPS_CLIENT_ID/NETOPS_CLIENT_SECRET"
    else:
        fp = credential_fingerprint(settings.api_url, key.client_id, key.secret)
        tok = load_token_file(key.token_file, settings.api_url, key.client_id, fp) or {}
        store, what = key.token_file, f"secret of key {key.label!r} ({key.source})"
    ttl = token_ttl(tok)
    info = {"key": key.label if key is not None else DEFAULT_LABEL, "api_url": settings.api_url, "ttl_seconds": ttl,
            "expires_at": tok.get("expires_at"), "secret_valid_until": tok.get("secret_valid_until"),
            "min_ttl": settings.token_min_ttl, "refused_at": tok.get("refused_at")}
    stored = read_store_file(store)
    if not tok and stored is not None:
        # say why a token that `netops status` counts is not this configuration's
        if stored.get("api_url") != settings.api_url:
            info["note"] = (f"the stored token is for {stored.get('api_url')}, not NETOPS_API_URL={settings.api_url}; "
                            "set NETOPS_API_URL as the job that stored it did")
        else:
            info["note"] = (f"the stored token was obtained with other credentials than the configured {what}; "
                            "`netops token refresh` replaces it")
    return info


@group.command("status")
@click.option("--key", "label", metavar="LABEL", help=_KEY_HELP)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_settings
def status(settings: Settings, label: str | None, as_json: bool) -> None:
    """Show each key's stored token TTL (no API call). Exit 2 (critical) when the credentials
    are missing or incomplete (no NETOPS_CLIENT_ID, a secret without its id, an unreadable
    secret file): no token can be had. Exit 1 when, for any key shown, none is stored for the
    configured API and credentials, it is below NETOPS_TOKEN_MIN_TTL, or the API has refused it
    (401)."""
    problems = credential_problems(settings)
    if problems:
        if as_json:
            echo_json({"state": "critical", "api_url": settings.api_url, "problems": problems})
        else:
            click.echo(f"api:        {settings.api_url}")
            for line in problems:
                click.echo(f"CRITICAL:   {line}")
        raise SystemExit(2)
    infos = [_status_of(settings, k) for k in _selected_keys(settings, label)]
    _emit(infos, as_json)
    if any(i["ttl_seconds"] is None or i["ttl_seconds"] < settings.token_min_ttl or i["refused_at"] for i in infos):
        raise SystemExit(1)


@group.command("refresh")
@click.option("--key", "label", metavar="LABEL", help=_KEY_HELP)
@click.option("--force", is_flag=True, help="Refresh even when the TTL is still above the minimum.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_settings
@needs_api_keys
def refresh(settings: Settings, label: str | None, force: bool, as_json: bool) -> None:
    """Refresh each key's token if its TTL is below NETOPS_TOKEN_MIN_TTL, the API has refused it
    (401), or it was obtained with other credentials (cron runs this hourly). Missing or incomplete
    credentials fail it at once (exit 2, naming the setting to fix). Logs the decision to
    42_token_refresh.log; the token requests are counted in netops.api_calls when the database is
    up (it is never started for this). A key whose secret is refused fails the command after the
    other keys were refreshed."""
    from netops.api.auth import TokenManager
    from netops.db.api_calls import CallRecorder
    from netops.db.server import resolve_dsn

    recorder = CallRecorder(resolve_dsn(settings, start=False))
    infos: list[dict] = []
    failed: list[NetopsError] = []
    try:
        for key in _selected_keys(settings, label):
            manager = TokenManager(settings, recorder=recorder,
                                   key=None if key is None or key.label == DEFAULT_LABEL else key)
            try:
                info = manager.check(force=force)
            except NetopsError as exc:
                failed.append(exc)
                continue
            infos.append({"key": key.label if key is not None else DEFAULT_LABEL, **info})
    finally:
        with contextlib.suppress(Exception):  # the database may be down: accounting is best effort here
            recorder.close()
    if infos:
        _emit(infos, as_json)
    if failed:
        raise failed[0] if len(failed) == 1 else NetopsError("; ".join(e.message for e in failed))
