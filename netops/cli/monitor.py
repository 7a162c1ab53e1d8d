"""Observability commands: status, logs, metrics, alerts, check, dashboard.

Thin: each command reads settings, calls one function in netops.monitor / netops.db.quality and
renders text or --json. None of them calls the 42 API or starts the embedded database: a view
that changes what it looks at would hide the very problem it is asked about.
"""

from __future__ import annotations

import contextlib
import sys

import click

from netops.cli.common import echo_json, json_text, pass_settings, stoppable
from netops.config import Settings
from netops.db import SEARCH_PATH
from netops.errors import NetopsError


class CannotCheck(NetopsError):
    """The check could not run at all (as opposed to finding problems)."""

    exit_code = 2


def _dsn(settings: Settings) -> str:
    from netops.monitor.facts import monitor_dsn

    return monitor_dsn(settings)


# --- status ----------------------------------------------------------------------------------

@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (shape in docs/CONTRACTS.md).")
@click.option("--output", "output", type=click.Path(dir_okay=False), default=None,
              help="With --json: write the document to FILE (atomically, mode 0644) instead of stdout.")
@click.option("--history", "history_out", type=click.Path(dir_okay=False), default=None,
              help="Also write history.json to FILE from the same evaluation (what `netops metrics history "
                   "--output FILE` writes): the status-json cron job's one process for the status page's two "
                   "files. Database down: FILE is left as it was, said in one line per outage.")
@pass_settings
def status(settings: Settings, as_json: bool, output: str | None, history_out: str | None) -> None:
    """Health in one glance: services, last sync per phase, backlog, tables, disk, token.

    Exit 0 healthy, 1 warning, 2 critical. Reads bookkeeping and catalogs only; never the API
    (with --history it also stores one monitor sample and prunes, as `netops metrics history`).
    """
    from pathlib import Path

    from netops.monitor.evaluation import evaluate
    from netops.monitor.files import atomic_write
    from netops.monitor.status import EXIT_CODES, carry_last_known, render_text, status_document

    if output and not as_json:
        raise click.UsageError("--output writes the JSON document: give --json too")
    if history_out:
        from netops.monitor import history

        both = history.evaluate_with_history(settings, _dsn(settings))
        ev = both.evaluation
        hist_path = Path(history_out)
        if both.history is not None:
            atomic_write(hist_path, history.history_text(both.history))
            history.written_again(settings)
        elif history.first_failure(settings, both.unavailable or "unknown"):
            click.echo(f"netops status: history.json not written ({both.unavailable}): {hist_path} left as it "
                       "was until the database is back (said once per outage; status shows it)", err=True)
    else:
        ev = evaluate(settings, _dsn(settings))
    doc = status_document(ev)
    if output:
        carry_last_known(doc, _previous_document(output), ev)  # an outage keeps the last known alerts
        atomic_write(Path(output), json_text(doc) + "\n")
    elif as_json:
        echo_json(doc)
    else:
        click.echo(render_text(ev))
    sys.exit(EXIT_CODES[ev.state])


# --- logs ------------------------------------------------------------------------------------

@click.group("logs")
def logs() -> None:
    """List and tail the per-component log files."""


@logs.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_settings
def logs_list(settings: Settings, as_json: bool) -> None:
    """Every component's log file with its size and last change (missing ones shown as such)."""
    from netops.monitor.formatting import human_bytes
    from netops.monitor.logs import list_logs

    rows = list_logs(settings.log_path)
    if as_json:
        echo_json({"log_dir": str(settings.log_path), "files": rows})
        return
    click.echo(f"log dir: {settings.log_path}")
    click.echo(f"  {'component':<10}{'file':<32}{'size':>10}  modified")
    for r in rows:
        click.echo(f"  {r['component']:<10}{r['file']:<32}{human_bytes(r['size_bytes']) if r['exists'] else '-':>10}"
                   f"  {r['modified'] or '(not written yet)'}")


@logs.command("tail")
@click.argument("component", required=False)
@click.option("-n", "--lines", "n", type=click.IntRange(min=0), default=20, show_default=True,
              help="Lines to show (per file when following).")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (survives log rotation).")
@pass_settings
def logs_tail(settings: Settings, component: str | None, n: int, follow: bool) -> None:
    """Last lines of COMPONENT's log (all components, merged by time, when omitted)."""
    import netops.monitor.logs

    try:
        components = list(netops.monitor.logs.iter_components(component))
    except netops.monitor.logs.UnknownComponent as exc:
        raise click.UsageError(str(exc)) from None
    prefix = len(components) > 1
    for c, line in netops.monitor.logs.tail(settings.log_path, components, n):
        click.echo(f"{c:<8} {line}" if prefix else line)
    if follow:
        with contextlib.suppress(KeyboardInterrupt):
            netops.monitor.logs.follow(settings.log_path, components,
                                       lambda c, line: click.echo(f"{c:<8} {line}" if prefix else line))


# --- metrics ---------------------------------------------------------------------------------

@click.group("metrics")
def metrics() -> None:
    """metrics_latest.json and Prometheus text format (netops_* gauges and counters)."""


@metrics.command("write")
@click.option("--loop", is_flag=True, help="Rewrite every BACKLOG_METRIC_INTERVAL seconds until stopped.")
@click.option("--iterations", type=click.IntRange(min=1), default=None, hidden=True,
              help="With --loop: stop after this many writes (tests).")
@pass_settings
@stoppable
def metrics_write(settings: Settings, loop: bool, iterations: int | None) -> None:
    """Atomically rewrite metrics_latest.json and metrics.prom in the metrics dir.

    Honours BACKLOG_ENABLE_METRICS (false: writes nothing, exits 0).
    """
    from netops.monitor.metrics import collect_snapshot, metrics_loop, write_metrics

    if not settings.backlog_enable_metrics:
        click.echo("metrics disabled (BACKLOG_ENABLE_METRICS=false): nothing written")
        return
    if loop:
        click.echo(f"writing metrics to {settings.metrics_path} every {settings.backlog_metric_interval}s "
                   "(Ctrl-C stops)")
        from netops import stop

        stop.set_left(lambda: "the metrics files hold the last complete write (each is replaced atomically)")
        metrics_loop(settings, lambda: _dsn(settings), iterations=iterations)
        return
    from netops.monitor.metrics import TextfileConflict

    snap = collect_snapshot(settings, _dsn(settings))
    try:
        paths = write_metrics(settings, snap)
    except TextfileConflict as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("wrote " + ", ".join(str(p) for p in paths))
    if not snap.facts.db_up:
        click.echo(f"warning: database unreachable ({snap.facts.db_error}); wrote netops_database_up 0",
                   err=True)


@metrics.command("export")
@click.option("--format", "fmt", type=click.Choice(["prometheus", "json"]), default="prometheus",
              show_default=True)
@click.option("--textfile-dir", type=click.Path(file_okay=False), default=None,
              help="Also write netops.prom here for node_exporter's textfile collector (one netops .prom "
                   "file per directory: refused next to another one, e.g. the metrics dir's metrics.prom).")
@pass_settings
def metrics_export(settings: Settings, fmt: str, textfile_dir: str | None) -> None:
    """Print a fresh snapshot to stdout (Prometheus text format or JSON)."""
    from pathlib import Path

    from netops.monitor.metrics import collect_snapshot, metrics_document, prometheus_text, write_textfile

    snap = collect_snapshot(settings, _dsn(settings))
    if textfile_dir:
        from netops.monitor.metrics import TextfileConflict

        try:
            path = write_textfile(Path(textfile_dir), snap)
        except TextfileConflict as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"wrote {path}", err=True)
    if fmt == "json":
        echo_json(metrics_document(snap))
    else:
        click.echo(prometheus_text(snap), nl=False)


@metrics.command("history")
@click.option("--output", "output", type=click.Path(dir_okay=False), default=None,
              help="File to write (default: history.json in the metrics dir; the status-json cron job "
                   "writes it next to status.json with `netops status --history`).")
@click.option("--json", "as_json", is_flag=True, help="Also print the document to stdout.")
@pass_settings
def metrics_history(settings: Settings, output: str | None, as_json: bool) -> None:
    """Sample the backlog and table sizes, prune old rows, and write history.json: the last 24 h
    the status page draws (calls per hour, sync runs, backlog depth, rows per table).

    Database down: exit 2 and leave the previous file as it was (the page shows its age). Also
    prunes netops.api_calls to NETOPS_API_CALLS_KEEP_DAYS and the samples to 48 h."""
    from pathlib import Path

    from netops.monitor.files import atomic_write
    from netops.monitor.history import HISTORY_NAME, HistoryUnavailable, collect_history, history_text

    path = Path(output) if output else settings.metrics_path / HISTORY_NAME
    try:
        doc = collect_history(settings, _dsn(settings))
    except HistoryUnavailable as exc:
        raise CannotCheck(f"database unreachable ({exc}): {path} left as it was; start PostgreSQL or fix "
                          "NETOPS_DSN") from None
    atomic_write(path, history_text(doc))
    if as_json:
        echo_json(doc)
    else:
        click.echo(f"wrote {path}")


# --- alerts ----------------------------------------------------------------------------------

@click.group("alerts")
def alerts() -> None:
    """Threshold alerts with persisted state and a webhook per state change."""


@alerts.command("check")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (with --loop: one document per line).")
@click.option("--loop", is_flag=True,
              help="Check every --interval seconds until SIGINT/SIGTERM (stops within 2 s), printing only state "
                   "changes and errors; the deployed cron entry runs this under flock every minute, so a dead "
                   "loop is restarted within a minute. It exits when netops is reinstalled or its config file "
                   "changes, so cron restarts it on the new code and settings.")
@click.option("--interval", type=click.FloatRange(min=1.0), default=30.0, show_default=True,
              help="Seconds between checks with --loop (start to start).")
@click.option("--iterations", type=click.IntRange(min=1), default=None, help="With --loop: stop after N checks.")
@pass_settings
def alerts_check(settings: Settings, as_json: bool, loop: bool, interval: float, iterations: int | None) -> None:
    """Evaluate every alert; log firing ones; POST each state change once to the webhook
    (NETOPS_ALERT_WEBHOOK_URL, shaped by NETOPS_ALERT_WEBHOOK_FORMAT: json, discord or slack); ping
    NETOPS_ALERT_HEARTBEAT_URL (its /fail while a critical alert fires).

    Exit 0 none firing, 1 some firing (with --loop: 0 once stopped).
    """
    import json

    from netops.monitor.alerts import alert_loop, check_alerts, render_changes, render_text

    if loop:
        def emit(d: dict[str, object]) -> None:
            text = json.dumps(d, default=str) if as_json else render_changes(d)  # JSON Lines: one check a line
            if text:
                click.echo(text)

        click.echo(f"alert loop: a check every {interval:g}s until SIGINT/SIGTERM", err=True)
        why = alert_loop(settings, lambda: _dsn(settings), interval, emit, iterations=iterations)
        click.echo(f"alert loop ended: {why}", err=True)
        return
    doc = check_alerts(settings, _dsn(settings))
    if as_json:
        echo_json(doc)
    else:
        click.echo(render_text(doc))
    sys.exit(1 if doc["firing"] else 0)


@alerts.command("rules")
@click.option("--job", default="netops", show_default=True,
              help="Prometheus scrape job name of the netops targets (for the up/absent rules).")
@click.option("--for", "for_", default="1m", show_default=True,
              help="How long a condition holds before an alert fires (a Prometheus duration).")
@click.option("--keep-firing-for", default="3m", show_default=True,
              help="How long a netops alert keeps firing once its series are not seen (a scrape gap must not "
                   "resolve and re-page it); 0s turns it off. Needs Prometheus >= 2.42.")
@pass_settings
def alerts_rules(settings: Settings, job: str, for_: str, keep_firing_for: str) -> None:
    """Print the equivalent Prometheus alerting and recording rules (YAML).

    Thresholds are read at evaluation time from the exported netops_alert_threshold gauges, so
    the file does not change when a NETOPS_ALERT_* setting does."""
    import re

    from netops.monitor.alerts import prometheus_rules

    for name, value in (("--for", for_), ("--keep-firing-for", keep_firing_for)):
        if not re.fullmatch(r"(\d+(ms|s|m|h|d))+", value):
            raise click.BadParameter(f"{value!r} is not a Prometheus duration; use e.g. 30s, 1m, 3m", param_hint=name)
    click.echo(prometheus_rules(settings, job=job, for_=for_, keep_firing_for=keep_firing_for), nl=False)


# --- check -----------------------------------------------------------------------------------

@click.command("check")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--strict", is_flag=True, help="Count soft-reference orphans as violations too.")
@click.option("--deep", is_flag=True, help="Scan keys even where a unique index already enforces them.")
@pass_settings
def check(settings: Settings, as_json: bool, strict: bool, deep: bool) -> None:
    """Data quality: FK violations, NULL primary keys, duplicates, orphans, rows per table.

    Exit 0 clean, 1 violations found, 2 could not check. The result is stored for status,
    metrics and alerts.
    """
    import psycopg2

    from netops.db.quality import render_text, run_checks

    try:
        conn = psycopg2.connect(_dsn(settings), connect_timeout=5, application_name="netops-check",
                                options=SEARCH_PATH)
    except psycopg2.OperationalError as exc:
        first = (str(exc).strip().splitlines() or ["no answer"])[0]
        raise CannotCheck(f"cannot connect to PostgreSQL ({first}); run `netops db up` or fix NETOPS_DSN") from None
    try:
        conn.autocommit = True
        doc = run_checks(conn, strict=strict, deep=deep)
    except psycopg2.Error as exc:
        raise CannotCheck(f"check failed: {str(exc).strip().splitlines()[0]}; is the schema migrated "
                          "(`netops db migrate`)?") from None
    finally:
        conn.close()
    if as_json:
        echo_json(doc)
    else:
        click.echo(render_text(doc))
    sys.exit(0 if doc["ok"] else 1)


def _previous_document(path: str) -> dict | None:
    """The status.json an --output run replaces, or None (absent, unreadable, not JSON)."""
    import json
    from pathlib import Path

    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


# --- dashboard -------------------------------------------------------------------------------

@click.command("dashboard")
@click.option("--interval", type=click.FloatRange(min=0.2), default=2.0, show_default=True,
              help="Seconds between refreshes.")
@click.option("--once", is_flag=True, help="Print one frame to stdout and exit (pipes, tests, cron mail).")
@click.option("--width", type=click.IntRange(min=40), default=None, help="Force the frame width (with --once).")
@pass_settings
@stoppable
def dashboard(settings: Settings, interval: float, once: bool, width: int | None) -> None:
    """Live terminal view: phase progress, errors over 24 h, call rate vs budget, backlog.
    `q` (or Ctrl-C) quits.

    Into a pipe or a file (stdout not a terminal) it prints one frame and exits, as with --once:
    a live view there would print nothing and never end. Exit 0 when the database answers, else 2.
    """
    from rich.console import Console

    from netops.monitor.dashboard import print_once, run_backlog

    if once or not sys.stdout.isatty():
        data = print_once(settings, _dsn(settings), Console(width=width) if width else None)
        sys.exit(0 if data.db_ok else 2)
    from netops import stop

    stop.set_left(lambda: "the dashboard only reads: nothing left behind")
    run_backlog(settings, _dsn(settings), interval)


