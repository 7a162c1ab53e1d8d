"""`netops dashboard`: a live terminal view of the pipeline, built for an 80x24 terminal.

Everything on it comes from bookkeeping (sync_runs moves pages_done while a phase runs, api_calls
has one row per HTTP attempt) and catalogs, re-read every refresh. Gathering (`gather`) and
drawing (`render`) are separate so a frame can be rendered from fixed data in tests and printed
once with `--once` for pipes and cron mails.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich import box
from rich.columns import Columns
from rich.console import Console, Group
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from netops.config import API_RATE_PER_HOUR, API_RATE_PER_SECOND, Settings
from netops.db.monitor_facts import ApiFacts, BacklogFacts, TableCount
from netops.monitor.facts import KeyRow, LastRun, PhaseFacts, iso
from netops.monitor.formatting import human_age, render_key_line

SPARK = "▁▂▃▄▅▆▇█"


@dataclass
class DashboardData:
    now: datetime
    db_ok: bool = False
    db_error: str | None = None
    phases: list[PhaseFacts] = field(default_factory=list)
    last_run: LastRun = field(default_factory=LastRun)
    api: ApiFacts = field(default_factory=ApiFacts)
    backlog: BacklogFacts = field(default_factory=BacklogFacts)
    tables: dict[str, TableCount] = field(default_factory=dict)
    rate_per_second: float = API_RATE_PER_SECOND
    rate_per_hour: int = API_RATE_PER_HOUR
    state: str = "ok"            # the one evaluation's verdict, as `netops status` says it
    firing: list[str] = field(default_factory=list)
    keys: list[KeyRow] = field(default_factory=list)
    freshness: dict[str, dict[str, Any]] | None = None   # issue 23: the evaluation's freshness_doc


def gather(settings: Settings, dsn: str | None) -> DashboardData:
    """One evaluation (netops/monitor/evaluation.py) per frame: the same facts and verdict as
    `netops status`; a database that is down is shown, not raised."""
    from netops.monitor.evaluation import evaluate, freshness_doc

    ev = evaluate(settings, dsn, check_services=False)
    f = ev.facts
    data = DashboardData(now=f.now, rate_per_second=f.budget.per_second, rate_per_hour=f.budget.per_hour,
                         state=ev.state, firing=[v.rule.name for v in ev.firing], keys=f.keys)
    if f.db_up and f.schema and f.db_error is None:
        data.db_ok = True
        data.phases = f.phases or []
        data.last_run = f.run or LastRun()
        data.api = f.api or ApiFacts()
        data.backlog = f.backlog or BacklogFacts()
        data.tables = f.tables or {}
        data.freshness = freshness_doc(f, settings)
    elif f.db_up:  # reachable, but not migrated yet (or a query failed)
        data.db_error = (f"PostgreSQL error: {f.db_error} (is the schema migrated? `netops db migrate`)"
                         if f.db_error else "PostgreSQL: no netops schema yet; run `netops db migrate`")
    else:
        data.db_error = f"PostgreSQL unreachable: {f.db_error}"
    return data


def sparkline(values: list[int]) -> Text:
    """One cell per value; zero is a dim floor so an error-free day reads as a flat line."""
    top = max(values) if values else 0
    out = Text()
    for v in values:
        if v <= 0 or top == 0:
            out.append(SPARK[0], style="dim green")
        else:
            idx = 1 + round((len(SPARK) - 2) * v / top)
            out.append(SPARK[min(idx, len(SPARK) - 1)], style="bold red")
    return out


def _gauge(label: str, used: float, budget: float, width: int, suffix: str) -> Table:
    pct = 100.0 * used / budget if budget else 0.0
    style = "green" if pct < 75 else "yellow" if pct <= 100 else "red"
    t = Table.grid(padding=(0, 1))
    t.add_column(width=11, no_wrap=True)
    t.add_column(width=width, no_wrap=True)
    t.add_column(no_wrap=True)
    t.add_row(Text(label, style="bold"),
              ProgressBar(total=max(budget, 1e-9), completed=min(used, budget), width=width,
                          complete_style=style, finished_style=style),
              Text(f"{suffix} ({pct:.0f}%)", style=style))
    return t


def _phase_row(f: PhaseFacts, tables: dict[str, TableCount], now: datetime) -> list[Any]:
    if f.last_status == "running":
        total = f.pages_total or 0
        bar = ProgressBar(total=total or None, completed=f.pages_done, width=16,
                          complete_style="cyan", pulse_style="cyan")
        pages = f"{f.pages_done}/{total or '?'}"
        state = Text(f"run {human_age(f.duration_seconds)}", style="bold cyan")
        delta = Text(f"{f.rows_fetched} read", style="cyan")
    elif f.last_status == "unchanged":  # `sync stable --if-changed`: skipped, its probe saw no change
        bar = ProgressBar(total=1, completed=1, width=16, complete_style="green", finished_style="green")
        pages = "-"
        age = human_age((now - f.finished_at).total_seconds()) if f.finished_at else "-"
        state = Text(f"unchanged (probe) {age}", style="green")
        delta = Text("+0 ~0", style="dim")
    elif f.last_status == "interrupted":
        bar = ProgressBar(total=f.pages_total or 1, completed=f.pages_done, width=16,
                          complete_style="yellow", finished_style="yellow")
        pages = f"{f.pages_done}/{f.pages_total if f.pages_total is not None else '?'}"
        age = human_age((now - f.finished_at).total_seconds()) if f.finished_at else "-"
        state = Text(f"interrupted {age}", style="yellow")
        delta = Text("+0 ~0", style="dim")
    elif f.last_status in ("success", "failed"):
        ok = f.last_status == "success"
        total = f.pages_total or f.pages_done or 1
        bar = ProgressBar(total=total, completed=total if ok else f.pages_done, width=16,
                          complete_style="green" if ok else "red", finished_style="green" if ok else "red")
        pages = f"{f.pages_done}/{f.pages_total if f.pages_total is not None else f.pages_done}"
        age = human_age((now - f.finished_at).total_seconds()) if f.finished_at else "-"
        state = Text(f"ok {age}" if ok else f"FAIL {age}", style="green" if ok else "bold red")
        net = f.rows_inserted - f.rows_deleted
        delta = Text(f"{net:+d} ~{f.rows_updated}", style="green" if net > 0 else "red" if net < 0 else "dim")
    else:
        bar = ProgressBar(total=1, completed=0, width=16)
        pages, state, delta = "-", Text("never", style="dim"), Text("-", style="dim")
    tc = tables.get(f.table)
    rows = "-" if tc is None else (f"{tc.rows}" if tc.exact else f"~{tc.rows}")
    return [Text(f.phase, no_wrap=True, overflow="ellipsis"), bar, pages, rows, delta, state]


def render(d: DashboardData, interval: float | None = None) -> Group:
    """One frame. Fits 80 columns; about 20 lines with eight phases."""
    alerts = Text()
    alerts.append("alerts     ", style="bold")
    alerts.append(" " + (", ".join(d.firing) or "none firing"), style="bold red" if d.firing else "green")
    if not d.db_ok:
        return Group(_head(d), alerts, Text(d.db_error or "PostgreSQL unreachable", style="red"),
                     Text("Start it (`netops db up`) or fix NETOPS_DSN; retrying.", style="dim"))
    keys = [Text(render_key_line(k), style="bold red" if k.set_aside else "") for k in d.keys]
    live = _live_rows(d)
    parts: list[Any] = [_head(d), alerts, _phase_table(d), *_gauges(d), *keys, *_api_lines(d), _backlog_line(d)]
    parts += [_freshness_line(d)] if d.freshness else []
    parts += [live] if live is not None else []
    if interval:
        parts.append(Text(f"refresh {interval:g}s · Ctrl-C quits", style="dim"))
    return Group(*parts)


def _head(d: DashboardData) -> Text:
    head = Text()
    head.append("netops ", style="bold")
    head.append(iso(d.now) or "", style="dim")
    head.append("  db ")
    head.append("ok" if d.db_ok else "DOWN", style="bold green" if d.db_ok else "bold red")
    head.append("  ")
    head.append(d.state.upper(), style={"ok": "bold green", "warning": "bold yellow"}.get(d.state, "bold red"))
    run = d.last_run
    if run.status:
        style = {"success": "green", "failed": "red", "running": "cyan", "interrupted": "yellow"}.get(run.status, "")
        head.append("  last sync ")
        head.append(run.status, style=style)
        if run.status == "running":
            head.append(f" for {human_age(run.duration_seconds)}")
        else:
            if run.finished_at:
                head.append(f" {human_age((d.now - run.finished_at).total_seconds())} ago")
            if run.duration_seconds is not None:
                head.append(f", took {human_age(run.duration_seconds)}")
    return head


def _phase_table(d: DashboardData) -> Table:
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, show_edge=False, expand=False)
    table.add_column("phase", no_wrap=True, max_width=22)
    table.add_column("progress", no_wrap=True, width=16)
    table.add_column("pages", justify="right", no_wrap=True)
    table.add_column("rows", justify="right", no_wrap=True)
    table.add_column("Δ prev", justify="right", no_wrap=True)
    table.add_column("state", no_wrap=True)
    for f in d.phases:
        table.add_row(*_phase_row(f, d.tables, d.now))
    return table


def _gauges(d: DashboardData) -> list[Table]:
    a = d.api
    per_min_budget = d.rate_per_second * 60
    return [
        _gauge("calls/min", a.calls_1m, per_min_budget, 30, f"{a.calls_1m}/{per_min_budget:g}"),
        _gauge("calls/hour", a.calls_1h, d.rate_per_hour, 30, f"{a.calls_1h}/{d.rate_per_hour}"),
    ]


def _api_lines(d: DashboardData) -> list[Text]:
    """Errors over 24 hours, and what the API says is left."""
    a = d.api
    err = Text()
    err.append("errors 24h  ", style="bold")
    err.append_text(sparkline(a.errors_by_hour))
    total_err = sum(a.errors_by_hour)
    err.append(f" {total_err}", style="bold red" if total_err else "green")
    err.append(f"  401:{a.unauthorized_1h} 429:{a.rate_limited_1h} (1h)")
    rem = Text()
    rem.append("API left   ", style="bold")
    rem.append(f" {a.hourly_remaining if a.hourly_remaining is not None else '-'}/h "
               f"{a.secondly_remaining if a.secondly_remaining is not None else '-'}/s")
    rem.append(f"   last call {human_age((d.now - a.last_call_at).total_seconds())} ago" if a.last_call_at
               else "   no calls recorded")
    return [err, rem]


def _backlog_line(d: DashboardData) -> Text:
    b = d.backlog
    bl = Text()
    bl.append("backlog    ", style="bold")
    if b.available:
        bl.append(f" pending {b.pending}", style="yellow" if b.pending else "green")
        bl.append(f"  processing {b.processing}")
        bl.append(f"  failed {b.failed}", style="bold red" if b.failed else "green")
        if b.oldest_pending_at:
            bl.append(f"  oldest {human_age((d.now - b.oldest_pending_at).total_seconds())}")
    else:
        bl.append(" not installed (backlog tables absent)", style="dim")
    return bl


def _freshness_line(d: DashboardData) -> Text:
    """Issue 23: each resource's age / its target; red past the target (the resource_stale rule)."""
    line = Text()
    line.append("freshness  ", style="bold")
    for name, doc in (d.freshness or {}).items():
        age = "never" if doc["seconds"] is None else human_age(doc["seconds"])
        line.append(f" {name} {age}/{human_age(doc['target_seconds'])}",
                    style="bold red" if (doc["ratio"] or 0) > 1 else "green" if doc["ratio"] is not None else "dim")
    return line


def _live_rows(d: DashboardData) -> Table | None:
    """Rows of the tables no stable phase shows; None when there are none."""
    phase_tables = {f.table for f in d.phases}
    others = [Text(f"{name} {tc.rows if tc.exact else f'~{tc.rows}'}") for name, tc in d.tables.items()
              if name not in phase_tables]
    if not others:
        return None
    live = Table.grid(padding=(0, 1))
    live.add_column(width=11, no_wrap=True)
    live.add_column()
    # Columns wraps whole "name count" cells, never a name away from its count
    live.add_row(Text("backlog rows", style="bold"), Columns(others, padding=(0, 2)))
    return live


def print_once(settings: Settings, dsn: str | None, console: Console | None = None) -> DashboardData:
    console = console or Console()
    data = gather(settings, dsn)
    console.print(render(data))
    return data


def run_backlog(settings: Settings, dsn: str | None, interval: float, console: Console | None = None) -> None:
    """Redraw every `interval` seconds on the alternate screen until Ctrl-C."""
    from rich.live import Live

    console = console or Console()
    try:
        with Live(render(gather(settings, dsn), interval), console=console, screen=True,
                  auto_refresh=False, transient=True) as live:
            while True:
                time.sleep(interval)
                live.update(render(gather(settings, dsn), interval), refresh=True)
    except KeyboardInterrupt:
        return
