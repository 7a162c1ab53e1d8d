"""`netops backlog`: the backlog tables — detect changes, work the queue, and watch it.

Thin: each command parses, calls one function of netops.pipeline.{detect,backlog,queue,reconcile},
and renders text or JSON. Log: <log_dir>/backlog_worker.log.
"""

from __future__ import annotations

import re
import sys

import click

from netops import catalog
from netops.cli.common import echo_json, needs_api_keys, pass_settings
from netops.config import Settings
from netops.pipeline.backlog.resources import RESOURCES

_RESOURCE_CHOICE = click.Choice([r.name for r in RESOURCES] + [r.table for r in RESOURCES if r.table != r.name])
#: detect also walks the campus-scoped resources (locations, scale_teams + teams, events, exams)
_DETECT_CHOICE = click.Choice([*_RESOURCE_CHOICE.choices, *(s.name for s in catalog.CAMPUS_SCOPED)])
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """`7d`, `12h`, `30m`, `90s` or plain seconds -> seconds."""
    m = _DURATION.match(text or "")
    if not m:
        raise click.BadParameter(f"{text!r}: expected a duration such as 7d, 12h, 30m or 90s")
    return float(m.group(1)) * _UNIT[m.group(2)]


def _dsn(settings: Settings) -> str:
    from netops.db.server import resolve_dsn

    return resolve_dsn(settings)


@click.group(name="backlog")
def group() -> None:
    """Keep the backlog tables (users, project_users, achievements_users, coalitions_users) current:
    detect changed rows, queue them in PostgreSQL, load them with workers, reconcile drift."""


@group.command("detect")
@click.option("--resource", "resources", multiple=True, type=_DETECT_CHOICE,
              help="Only this resource (repeatable). Default: all, walked at once; the campus-scoped ones "
                   "(locations, scale_teams with teams and teams_users, events, exams) for NETOPS_CAMPUS_IDS.")
@click.option("--settle", default=None, metavar="DURATION",
              help="Read only changes at least this old by the API's clock, e.g. 60s (default: "
                   "BACKLOG_DETECT_SETTLE_SECONDS). Covers rows committed after their updated_at.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_settings
@needs_api_keys
def detect_cmd(settings: Settings, resources: tuple[str, ...], settle: str | None, as_json: bool) -> None:
    """Queue rows updated since each resource's high-water mark (the whole table on the first run).

    Only changes older than the settle delay are read, so each change is read once and a row
    committed a little after its updated_at is not skipped. Changed rows come 100 to a call with their full payload, so the worker needs no refetch.
    """
    from netops.pipeline.backlog.detect import detect

    settle_seconds = None if settle is None else parse_duration(settle)
    results = detect(settings, _dsn(settings), resources or None, settle_seconds=settle_seconds)
    if as_json:
        echo_json([r.as_dict() for r in results])
    else:
        for r in results:
            if r.error:
                click.echo(f"{r.resource:<20} FAILED (mark unchanged): {r.error}")
            else:
                verb = "written" if hasattr(r, "applied") else "queued"   # campus resources: applied by detect
                click.echo(f"{r.resource:<20} {r.calls:>5} calls {r.seen:>8,} seen {r.enqueued:>8,} {verb:<8} "
                           f"mark {r.mark or '-'}")
    if any(r.error for r in results):
        sys.exit(1)


@group.command("run")
@click.option("--once", "mode", flag_value="once", default=True,
              help="Drain the queue, then exit (default).")
@click.option("--loop", "mode", flag_value="loop", help="Keep working; poll every BACKLOG_POLL_INTERVAL s.")
@click.option("--max-batches", type=click.IntRange(min=1), default=None, help="Stop after this many batches.")
@click.option("--wait-for-stable-sync", "wait_for_stable", is_flag=True,
              help="While the stable tables are empty (before the first `netops sync stable`), log one "
                   "line saying so and exit 0, leaving the queue alone: every row would fail its foreign "
                   "keys. The cron job uses it.")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
@pass_settings
@needs_api_keys
def run_cmd(settings: Settings, mode: str, max_batches: int | None, wait_for_stable: bool, as_json: bool) -> None:
    """Claim BACKLOG_FETCH_BATCH_SIZE items at a time, fetch what has no payload, load, mark done.

    Several workers may run at once (FOR UPDATE SKIP LOCKED); a killed worker's items come back
    after BACKLOG_VISIBILITY_TIMEOUT seconds. Exits 1 when items failed for good in this run.
    """
    from netops.pipeline.backlog.worker import run_backlog

    summary = run_backlog(settings, _dsn(settings), loop=mode == "loop", max_batches=max_batches,
                          wait_for_stable=wait_for_stable)
    if as_json:
        echo_json(summary.as_dict())
    else:
        rpc = "n/a" if summary.rows_per_call is None else f"{summary.rows_per_call:.1f}"
        click.echo(f"{summary.items:,} items done in {summary.seconds:.1f}s: {summary.inserted:,} inserted, "
                   f"{summary.updated:,} updated, {summary.deleted:,} deleted, {summary.failed:,} failed, "
                   f"{summary.retried:,} to retry; changed rows per API call: {rpc}")
    if summary.failed:
        sys.exit(1)


@group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@pass_settings
def status_cmd(settings: Settings, as_json: bool) -> None:
    """Queue depth, failures (newest first, with error and attempts), throughput and API budget."""
    from netops.db import connect
    from netops.db.queue import status
    from netops.db.server import looking_dsn

    conn = connect(looking_dsn(settings))  # a view: never starts the embedded server
    try:
        with conn, conn.cursor() as cur:
            total = settings.budget
            st = status(cur, total.per_hour)
            st["api_keys"] = total.keys
    finally:
        conn.close()
    if as_json:
        echo_json(st)
        return
    pt = st["processing_seconds"]

    def fmt(v: float | None, unit: str = "s") -> str:
        return "-" if v is None else f"{v:.2f}{unit}"

    click.echo(f"pending:      {st['pending']:,}")
    click.echo(f"processing:   {st['processing']:,}")
    click.echo(f"failed:       {st['failed']:,} (all time; {st['failed_today']:,} today)")
    click.echo(f"done today:   {st['done_today']:,}")
    rate = st["success_rate_pct"]
    if rate is not None and st["failed_today"] and rate >= 99.95:
        shown = ">99.9%"  # rounding must not print 100% beside a failure
    else:
        shown = "-" if rate is None else f"{rate:.1f}%"
    click.echo(f"success rate: {shown} today ({st['done_today']:,} done, {st['failed_today']:,} failed since "
               "00:00 UTC)")
    click.echo(f"processing:   mean {fmt(pt['mean'])}  p50 {fmt(pt['p50'])}  p95 {fmt(pt['p95'])}")
    click.echo(f"oldest pending: {fmt(st['oldest_pending_age_seconds'])}")
    keys = st.get("api_keys", 1)
    per_key = f" ({keys} keys × {st['api_budget_per_hour'] // keys:,})" if keys > 1 else ""
    click.echo(f"API calls this hour: {st['api_calls_this_hour']:,}/{st['api_budget_per_hour']:,}{per_key}")
    for name, m in st["marks"].items():
        click.echo(f"mark {name:<20} {m['high_water'] or '-'}")
    if st["failures"]:
        click.echo("failures (newest first):")
        for f in st["failures"]:
            click.echo(f"  #{f['id']} {f['resource']} {f['entity_id']} attempts={f['attempts']} "
                       f"at {f['failed_at']}: {f['error']}")


@group.command("retry")
@click.option("--failed", is_flag=True, help="Also give failed items a fresh set of attempts.")
@pass_settings
def retry_cmd(settings: Settings, failed: bool) -> None:
    """Make items waiting on a backoff due now (and, with --failed, retry failed items)."""
    from netops.db import connect
    from netops.db.queue import retry

    conn = connect(_dsn(settings))
    try:
        with conn, conn.cursor() as cur:
            out = retry(cur, failed)
    finally:
        conn.close()
    click.echo(f"{out['made_due']:,} waiting item(s) made due now"
               + (f", {out['failed_requeued']:,} failed item(s) queued again" if failed else ""))


@group.command("purge")
@click.option("--done", is_flag=True, help="Delete done items.")
@click.option("--failed", is_flag=True, help="Delete failed items.")
@click.option("--older-than", "older_than", default="7d", show_default=True,
              help="Only items finished longer ago than this (7d, 12h, 30m, 90s).")
@pass_settings
def purge_cmd(settings: Settings, done: bool, failed: bool, older_than: str) -> None:
    """Delete finished items' history (pending and processing items are never touched)."""
    from netops.db import connect
    from netops.db.queue import purge

    if not done and not failed:
        raise click.UsageError("say what to purge: --done and/or --failed")
    seconds = parse_duration(older_than)
    conn = connect(_dsn(settings))
    try:
        with conn, conn.cursor() as cur:
            n = purge(cur, seconds, done=done, failed=failed)
    finally:
        conn.close()
    click.echo(f"{n:,} item(s) purged")


@group.command("reconcile")
@click.option("--resource", "resources", multiple=True, type=_RESOURCE_CHOICE,
              help="Only this resource (repeatable). Default: all four, users first.")
@click.option("--max-calls", type=click.IntRange(min=1), default=None,
              help="Spend at most this many calls (still within the hourly share).")
@click.option("--restart", is_flag=True, help="Start a new pass from id 0 instead of resuming.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_settings
@needs_api_keys
def reconcile_cmd(settings: Settings, resources: tuple[str, ...], max_calls: int | None, restart: bool,
                  as_json: bool) -> None:
    """Full pull of the backlog tables within BACKLOG_RECONCILE_BUDGET_SHARE of the hourly budget:
    fixes values that changed without `updated_at`, prunes rows the API no longer returns.
    Resumes where the last run stopped when the budget ran out."""
    from netops.pipeline.backlog.reconcile import reconcile

    results = reconcile(settings, _dsn(settings), resources or None, max_calls=max_calls, restart=restart)
    if as_json:
        echo_json([r.as_dict() for r in results])
    else:
        for r in results:
            if r.error:
                click.echo(f"{r.resource:<20} STOPPED (resumes at id {r.cursor or 0}): {r.error}")
                continue
            state = "complete" if r.complete else (f"paused at id {r.cursor}" if r.calls else "not started")
            click.echo(f"{r.resource:<20} {r.calls:>5} calls {r.rows_seen:>8,} checked  +{r.inserted} "
                       f"~{r.updated} -{r.deleted}  queued {r.queued}  {state}")
    if any(r.error for r in results):
        sys.exit(1)
