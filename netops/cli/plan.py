"""`netops plan`: what the configured schedule and scope cost against the API budget (issue 23)."""

from __future__ import annotations

import click

from netops.cli.common import echo_json, needs_api_keys, pass_settings
from netops.config import Settings
from netops.errors import DatabaseError, NetopsError

#: `plan --check` exit status when the schedule does not fit (1 stays "could not plan": API or
#: configuration trouble), so the role's preflight fails the play on a refusal only
REFUSED_EXIT = 3


class ScheduleRefused(NetopsError):
    exit_code = REFUSED_EXIT


@click.command(name="plan")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (the whole plan).")
@click.option("--check", is_flag=True,
              help=f"Print one line and exit {REFUSED_EXIT} when the schedule does not fit the budget "
                   "(naming the setting to change); exit 0 when it fits. The role's preflight runs it.")
@click.option("--sample-campuses", "sample", type=click.IntRange(1), default=None,
              help="Probe only this many of the campuses in scope (spread over campus_ids) and plan the others "
                   "at their mean: about 5 calls per campus probed instead of 5 per campus.")
@pass_settings
@needs_api_keys
def plan(settings: Settings, as_json: bool, check: bool, sample: int | None) -> None:
    """Plan the API budget of the configured schedule and scope.

    For each backlog resource: its rows and rows changed per hour (one `page[size]=1` call each
    gives `X-Total`; the database's observed change rate is used when higher), the calls per hour
    its detect passes need every `schedule_backlog_minutes`, and the freshness it will have (the
    interval + settle + the time a pass takes at the pace left). The campus-scoped resources
    (locations, scale_teams, events, exams) are planned per campus in `campus_ids`: locations
    re-read their lookback and open sessions every pass. Then the sum, with the nightly stable
    sync and a scheduled reconcile, against the keys' summed budget. Costs two calls per backlog
    resource, one per stable listing and five per campus probed.
    """
    from netops.db.server import looking_dsn
    from netops.pipeline.plan import make_plan

    try:
        dsn: str | None = looking_dsn(settings)
    except DatabaseError:
        dsn = None  # no database yet (a first deploy): the API's change rates alone
    result = make_plan(settings, dsn, sample)
    if as_json:
        echo_json(result.as_json())
    elif not check:
        _render(result)
    if check:
        if not result.fits:
            raise ScheduleRefused(result.problems[0])
        if not as_json:
            click.echo(f"plan: fits: {result.calls_per_hour:,.0f} of {result.budget_per_hour:,} calls/hour "
                       f"({result.budget_share:.0%}) every {result.schedule_backlog_minutes} min")


def _render(result: object) -> None:
    from netops.pipeline.plan import Plan

    assert isinstance(result, Plan)
    click.echo(f"schedule: backlog every {result.schedule_backlog_minutes} min, stable daily, reconcile "
               f"{'every ' + str(result.schedule_reconcile_minutes) + ' min' if result.schedule_reconcile_minutes else 'not scheduled'}; "
               f"budget {result.budget_per_hour:,} calls/hour, {result.budget_per_second:g}/s ({result.keys} key(s))")
    click.echo(f"{'resource':<20} {'scopes':>6} {'rows':>10} {'changed/h':>10} {'calls/pass':>10} "
               f"{'calls/h':>8} {'freshness':>10} {'target':>8}")
    for r in result.resources:
        rows = "?" if r.rows is None else f"{r.rows:,}"
        mark = "" if r.meets_target else "  over target"
        click.echo(f"{r.resource:<20} {r.scopes:>6} {rows:>10} {r.changed_per_hour:>10,.1f} {r.calls_per_pass:>10} "
                   f"{r.calls_per_hour:>8,.0f} {_dur(r.freshness_seconds):>10} {_dur(r.target_seconds):>8}{mark}")
    click.echo(f"{'stable sync':<20} {'':>6} {'':>10} {'':>10} {result.stable_calls_per_day:>10} "
               f"{result.stable_calls_per_hour:>8,.1f}   (once a day)")
    if result.reconcile_calls_per_hour:
        click.echo(f"{'reconcile':<20} {'':>6} {'':>10} {'':>10} {'':>10} {result.reconcile_calls_per_hour:>8,.0f}")
    click.echo(f"total: {result.calls_per_hour:,.0f} calls/hour of {result.budget_per_hour:,} "
               f"({result.budget_share:.0%}); one backlog pass: {result.pass_calls} calls, "
               f"{result.pass_seconds:,.0f} s (this plan's probes: {result.probe_calls} calls)")
    for line in result.problems:
        click.echo(f"does not fit: {line}")


def _dur(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min"
