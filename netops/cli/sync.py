"""`netops sync`: the stable tables (phases 01-08), one transaction per phase."""

from __future__ import annotations

import sys
from typing import Any

import click

from netops.cli.common import echo_json, pass_settings
from netops.config import Settings
from netops.pipeline.stable import PHASE_NAMES, Phase
from netops.pipeline.sync import PhaseReport, Progress, SyncReport


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
    for p in report.phases:
        click.echo(f"{p.phase:<24}{p.rows:>9,}{p.inserted:>8,}{p.updated:>8,}{p.deleted:>8,}{p.skipped:>7,}"
                   f"{p.api_calls:>7}{p.seconds:>7.1f}")
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
@pass_settings
def stable(settings: Settings, phases: tuple[str, ...], as_json: bool, progress: bool | None) -> None:
    """Sync the eight stable tables: cursus, campuses, projects, coalitions, achievements,
    campus_projects, campus_achievements, project_sessions.

    Each table is fetched in pages of 100, staged with COPY and applied in one transaction
    (upsert + prune). A failing phase leaves its table unchanged and exits non-zero.
    Log: <log_dir>/nightly_stable_tables.log.
    """
    from netops.pipeline.sync import run_stable_sync

    show = sys.stderr.isatty() if progress is None else progress
    if show and not as_json:
        with _RichProgress() as bars:
            report = run_stable_sync(settings, phases or None, bars)
    else:
        report = run_stable_sync(settings, phases or None)
    if as_json:
        echo_json(report.as_dict())
    else:
        _render(report)
