"""`netops sync`: the stable tables (phases 01-08), one transaction per phase."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from netops.cli.common import echo_json, needs_api_keys, pass_settings
from netops.config import Settings
from netops.pipeline.stable.phases import PHASE_NAMES, Phase
from netops.pipeline.stable.sync import PhaseReport, Progress, SyncReport


class _RichProgress(Progress):
    """Progress bars on a terminal: one per phase, pages done of pages known (X-Total)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RP

        self.rp = RP(TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
                     TextColumn("{task.fields[rows]:>8,} rows"), TimeElapsedColumn(),
                     console=Console(stderr=True))
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> _RichProgress:
        self.rp.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.rp.stop()

    def phase_started(self, phase: Phase) -> None:
        self.tasks[phase.name] = self.rp.add_task(f"{phase.number:02d} {phase.label}", total=None, rows=0)

    def phase_total(self, phase: Phase, pages: int | None) -> None:
        if pages:
            self.rp.update(self.tasks[phase.name], total=pages)

    def phase_advanced(self, phase: Phase, pages: int, rows: int) -> None:
        self.rp.update(self.tasks[phase.name], completed=pages, rows=rows)

    def phase_finished(self, phase: Phase, report: PhaseReport) -> None:
        task = self.tasks[phase.name]
        total = self.rp.tasks[task].total or max(1, self.rp.tasks[task].completed)
        mark = "✓" if report.status == "success" else "✗"
        self.rp.update(task, total=total, completed=total, rows=report.rows,
                       description=f"{mark} {phase.number:02d} {phase.label}")


def _render(report: SyncReport) -> None:
    click.echo(f"{'phase':<24}{'rows':>9}{'+ins':>8}{'~upd':>8}{'-del':>8}{'skip':>7}{'calls':>7}{'secs':>7}")
    unchanged = {p.phase: p for p in report.unchanged}
    pulled = {p.phase: p for p in report.phases}
    # foreign-key order (the catalog's), the order the tables load in (names do not sort that way)
    order = {n: i for i, n in enumerate(PHASE_NAMES)}
    for name in sorted({*pulled, *unchanged}, key=lambda n: (order.get(n, len(order)), n)):
        if name in pulled:
            p = pulled[name]
            click.echo(f"{p.phase:<24}{p.rows:>9,}{p.inserted:>8,}{p.updated:>8,}{p.deleted:>8,}{p.skipped:>7,}"
                       f"{p.api_calls:>7}{p.seconds:>7.1f}")
        else:
            u = unchanged[name]
            click.echo(f"{u.phase:<24}{u.rows:>9,}{'unchanged (probe)':>31}{u.api_calls:>7}{'-':>7}")
    if report.probe is not None:
        click.echo(f"probe: {report.probe_calls} calls, {report.probe.seconds:.1f}s — "
                   f"{len(report.unchanged)} phase(s) unchanged and skipped, {len(report.phases)} pulled")
        for r in report.probe.results:
            click.echo(f"  {r.resource:<20}{'pull' if r.changed else 'skip':<6}{r.calls:>3} calls  {r.reason}")
    click.echo(f"total: {report.total_rows:,} rows, {report.api_calls} API calls "
               f"(minimum for this data: {report.min_calls}), {report.seconds:.1f}s")


@click.group(name="sync", invoke_without_command=True)
@click.pass_context
def group(ctx: click.Context) -> None:
    """Mirror the API into PostgreSQL. Plain `netops sync` runs `netops sync stable`."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(stable)


@group.command("stable")
@click.option("--phase", "phases", multiple=True, type=click.Choice(PHASE_NAMES),
              help="Only this table (repeatable). Default: all eight, in foreign-key order.")
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON.")
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: on a terminal).")
@click.option("--if-changed", "if_changed", is_flag=True,
              help="Probe first: one page[size]=1 call per resource (count, and newest updated_at or "
                   "highest id; campus_projects, project_sessions and campus_achievements follow the "
                   "listing they are read from) compared with the mirror; pull only the resources that moved (a failed probe, a failed last pull, or a parent pulled "
                   "more recently means pull). A probe cannot see edits "
                   "to resources without updated_at (campuses, coalitions, achievements), values the "
                   "server computes without moving updated_at, a delete balanced by an insert that "
                   "reuses an older id on a count-only resource, or nested edits (a project's campus "
                   "links or sessions) if the API does not move the project's updated_at. Use it for "
                   "frequent runs; keep the nightly run a full pull (without this flag).")
@pass_settings
@needs_api_keys
def stable(settings: Settings, phases: tuple[str, ...], as_json: bool, progress: bool | None,
           if_changed: bool) -> None:
    """Sync the eight stable tables: cursus, campuses, projects, coalitions, achievements,
    campus_projects, campus_achievements, project_sessions.

    Each table is fetched in pages of 100, staged with COPY and applied in one transaction
    (upsert + prune). campus_projects and project_sessions come from the projects' nested
    lists, campus_achievements from the achievements' `campus` name lists (exact name match to
    the mirrored campuses; see `netops sync verify-links`): a full sync costs only the pages of
    the five listings plus the cursus object. A failing phase leaves its table unchanged and exits non-zero.
    With --if-changed, phases whose probe saw no change are skipped and recorded as
    "unchanged" (see --if-changed below for what a probe cannot see).
    Log: <log_dir>/nightly_stable_tables.log.
    """
    from netops.pipeline.stable.sync import SyncInterrupted, run_stable_sync

    show = sys.stderr.isatty() if progress is None else progress
    try:
        if show and not as_json:
            with _RichProgress() as bars:
                report = run_stable_sync(settings, phases or None, bars, if_changed=if_changed)
        else:
            report = run_stable_sync(settings, phases or None, if_changed=if_changed)
    except SyncInterrupted as exc:
        # The run's end is already recorded and logged. Exit now: a worker thread may still sit in
        # an HTTP read for up to NETOPS_HTTP_TIMEOUT, and the interpreter would wait for it.
        click.echo(f"error: {exc.message}", err=True)   # log lines are flushed as written (netops/log.py)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exc.exit_code)
    if as_json:
        echo_json(report.as_dict())
    else:
        _render(report)


@group.command("verify-links")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@click.option("--limit", default=20, show_default=True,
              help="Disagreeing links listed per direction in the text output (--json lists all).")
@pass_settings
@needs_api_keys
def verify_links(settings: Settings, as_json: bool, limit: int) -> None:
    """Check phase 07's derivation against the API's per-campus listings.

    campus_achievements is derived from each /v2/achievements object's `campus` list of campus
    names, matched to the mirrored campuses by exact name (no call of its own). This command
    derives the links from the API now, pages /v2/campus/:id/achievements for every mirrored
    campus now (96 calls on the default data set: 11 + 85), and reports every link the two sources
    disagree on. Writes nothing. Exit 0 when they agree, 1 when they do not.
    """
    from netops.pipeline.stable.links import verify_links as run_check

    check = run_check(settings)
    if as_json:
        echo_json(check.as_dict())
    else:
        click.echo(f"campuses: {check.campuses}  derived from /v2/achievements: {check.derived:,} links "
                   f"({check.skipped_names:,} names of campuses not mirrored skipped)  per-campus listings: "
                   f"{check.listed:,} links  ({check.calls} API calls, {check.seconds:.1f}s)")
        for title, rows in (("only in the achievements' campus lists", check.only_derived),
                            ("only in the per-campus listings", check.only_listed)):
            if rows:
                click.echo(f"{title}: {len(rows)}")
                for cid, name, aid in rows[:limit]:
                    click.echo(f"  campus {cid} ({name!r}) - achievement {aid}")
                if len(rows) > limit:
                    click.echo(f"  ... {len(rows) - limit} more (--json lists all)")
        click.echo("agree: every link is in both sources" if check.agree
                   else "DISAGREE: the sources differ on the links above")
    if not check.agree:
        sys.exit(1)


@group.command("verify-logtime")
@click.option("--sample", default=10, show_default=True, type=click.IntRange(1, 1000),
              help="People compared (picked at random among those with mirrored sessions); one API call each.")
@click.option("--tolerance", default=60.0, show_default=True, type=click.FloatRange(0),
              help="Seconds a day may differ (rounding, overlapping sessions) before it counts as a mismatch.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@pass_settings
@needs_api_keys
def verify_logtime(settings: Settings, sample: int, tolerance: float, as_json: bool) -> None:
    """Check logtime_daily (derived from locations) against the API's /v2/users/:id/locations_stats.

    For a sample of people with mirrored sessions at the campuses in scope (NETOPS_CAMPUS_IDS),
    compares their seconds per local day over the days the mirror fully knows (after the backfill
    horizon, before the locations' last applied window). Writes nothing. Exit 0 when every day
    agrees within the tolerance, 1 when one does not.
    """
    from netops.pipeline.backlog.logtime import verify_logtime as run_check

    check = run_check(settings, sample, tolerance)
    if as_json:
        echo_json(check.as_dict())
    else:
        click.echo(f"people: {check.users}  days compared: {check.days_compared:,} ({check.first_day} .. "
                   f"{check.last_day})  tolerance: {check.tolerance:g}s  ({check.calls} API calls, "
                   f"{check.seconds:.1f}s)")
        for m in check.mismatches[:20]:
            click.echo(f"  user {m['user_id']} {m['day']}: mirror {m['mirror_seconds']} s, API {m['api_seconds']} s")
        if len(check.mismatches) > 20:
            click.echo(f"  ... {len(check.mismatches) - 20} more (--json lists all)")
        click.echo("agree: every day within the tolerance" if check.agree
                   else f"DISAGREE: {len(check.mismatches)} day(s) beyond the tolerance")
    if not check.agree:
        sys.exit(1)
