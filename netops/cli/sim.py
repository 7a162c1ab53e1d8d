"""`netops sim`: run the 42 API simulator, and ask a running one what a mirror should hold.

The simulator needs no settings file: everything is an option, so tests, the demo and
benchmarks can start one with exactly the knobs they need.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from typing import Any

import click

from netops.config import API_RATE_PER_HOUR, API_RATE_PER_SECOND, SIM_HOST, SIM_PORT, SIM_URL


def _page_caps(values: tuple[str, ...]) -> dict[str, int]:
    caps: dict[str, int] = {}
    for item in values:
        template, sep, n = item.rpartition("=")
        if not sep or not template.startswith("/") or not n.isdigit() or int(n) < 1:
            raise click.BadParameter(f"expected TEMPLATE=N (e.g. /v2/campus/:id/achievements=50), got {item!r}",
                                     param_hint="--page-cap")
        caps[template] = int(n)
    return caps


@click.group(name="sim")
def group() -> None:
    """Run the 42 API simulator (real HTTP, realistic data, limits and faults)."""


@group.command("serve")
@click.option("--host", default=SIM_HOST, show_default=True,
              help="Address to bind. Keep loopback: the control API (/_sim/) has no auth.")
@click.option("--port", default=SIM_PORT, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port; 0 picks a free one (read it from the ready line or --ready-file).")
@click.option("--seed", default=42, show_default=True, type=int,
              help="Data seed: the same seed always serves the same data.")
@click.option("--client-id", default="sim-client", show_default=True, envvar="NETOPS_SIM_CLIENT_ID",
              help="OAuth client id accepted by POST /oauth/token (env NETOPS_SIM_CLIENT_ID).")
@click.option("--client-secret", default="sim-secret", envvar="NETOPS_SIM_CLIENT_SECRET",
              help="OAuth client secret accepted (env NETOPS_SIM_CLIENT_SECRET, so it need not be on argv). "
                   "Default: sim-secret.")
@click.option("--token-ttl", default=7200, show_default=True, type=click.IntRange(1),
              help="Seconds an access token lives (expires_in).")
@click.option("--secret-valid-days", default=30.0, show_default=True, type=float,
              help="Days until the application secret expires (secret_valid_until).")
@click.option("--rate-per-second", default=int(API_RATE_PER_SECOND), show_default=True, type=click.IntRange(0),
              help="Requests per second per application, sliding window; 0 = unlimited.")
@click.option("--rate-per-hour", default=API_RATE_PER_HOUR, show_default=True, type=click.IntRange(0),
              help="Requests per hour per application, sliding window; 0 = unlimited.")
@click.option("--latency", default=0.0, show_default=True, type=click.FloatRange(0),
              help="Seconds added to every /v2 answer (benchmarks use ~1.1); concurrent calls overlap.")
@click.option("--churn", default=0.0, show_default=True, type=click.FloatRange(0),
              help="Backlog rows (users, projects_users, ...) changed, added or deleted per minute.")
@click.option("--backlog-scale", "--live-scale", "backlog_scale", default=1.0, show_default=True,
              type=click.FloatRange(0),
              help="Size of the backlog tables relative to the real ~40,300 cursus-21 users "
                   "(--live-scale: the same, its former name).")
@click.option("--fault", "faults", multiple=True, metavar="SPEC",
              help="Inject a fault, repeatable: KIND[@ENDPOINT][,rate=R|,count=N][,after=K][,seconds=S]"
                   "[,field=F][,to=G][,delta=D]. Kinds: 429 500 502 503 slow reset token_revoked "
                   "malformed_json truncated html_200 extra_field missing_field renamed_field wrong_type "
                   "null_id duplicate_id shift lying_total.")
@click.option("--page-cap", "page_caps", multiple=True, metavar="TEMPLATE=N",
              help="Cap the page size of one endpoint (e.g. /v2/campus/:id/achievements=50), repeatable.")
@click.option("--no-control", is_flag=True, help="Disable the test/demo control API under /_sim/.")
@click.option("--ready-file", type=click.Path(dir_okay=False), default=None,
              help="Write the base URL to this file once the server accepts connections.")
@click.option("--log-requests", is_flag=True, help="Log every request to stderr.")
def serve(host: str, port: int, seed: int, client_id: str, client_secret: str, token_ttl: int,
          secret_valid_days: float, rate_per_second: int, rate_per_hour: int, latency: float, churn: float,
          backlog_scale: float, faults: tuple[str, ...], page_caps: tuple[str, ...], no_control: bool,
          ready_file: str | None, log_requests: bool) -> None:
    """Serve the simulated 42 API until SIGTERM/SIGINT.

    Prints exactly one line when ready: `netops-sim listening on http://HOST:PORT`.
    """
    from netops.sim import FaultSpecError, SimConfig, SimServer, parse_spec

    for spec in faults:
        try:
            parse_spec(spec)
        except FaultSpecError as exc:
            raise click.BadParameter(str(exc), param_hint="--fault") from None
    config = SimConfig(host=host, port=port, seed=seed, client_id=client_id, client_secret=client_secret,
                       token_ttl=token_ttl, secret_valid_days=secret_valid_days,
                       rate_per_second=rate_per_second, rate_per_hour=rate_per_hour, latency=latency,
                       churn_per_minute=churn, backlog_scale=backlog_scale, faults=list(faults),
                       control=not no_control, page_caps=_page_caps(page_caps), log_requests=log_requests)
    if host not in ("127.0.0.1", "localhost", "::1") and not no_control:
        click.echo(f"warning: binding {host} exposes the unauthenticated control API (/_sim/); "
                   "use --no-control or keep 127.0.0.1", err=True)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server = SimServer(config).start()
    except OSError as exc:
        raise click.ClickException(f"cannot bind {host}:{port}: {exc.strerror or exc}") from None
    try:
        if ready_file:
            tmp = f"{ready_file}.tmp"
            with open(tmp, "w") as fh:
                fh.write(server.url + "\n")
            os.replace(tmp, ready_file)
        click.echo(f"netops-sim listening on {server.url}")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        # Free the data set now, while it is cheap: left to interpreter teardown, hundreds of
        # thousands of rows take over a second to die and a supervisor's SIGTERM looks ignored.
        server.release()


@group.command("expected")
@click.option("--url", default=SIM_URL, show_default=True, envvar="NETOPS_API_URL",
              help="Base URL of a running simulator (its control API must be on).")
@click.option("--table", default=None, help="Print the sorted primary keys of this table instead of counts.")
def expected(url: str, table: str | None) -> None:
    """Print what a correct mirror holds right now, as JSON: row counts per table (or one table's keys)."""
    from netops.sim import SimControl

    ctl = SimControl(url)
    started = time.monotonic()
    try:
        data = ctl.expected_table(table, values=False) if table else ctl.expected()
    except Exception as exc:  # connection refused, control disabled, ...
        raise click.ClickException(f"cannot read expected state from {url}/_sim/: {exc}") from None
    click.echo(json.dumps(data, indent=2))
    if table is None:
        click.echo(f"# {sum(data.values())} rows in {len(data)} tables ({time.monotonic() - started:.2f}s)", err=True)
