"""`netops dashboard`: a live terminal view of the pipeline, built for an 80x24 terminal.

Everything on it comes from bookkeeping (sync_runs moves pages_done while a phase runs, api_calls
has one row per HTTP attempt) and catalogs, re-read every refresh. Gathering (`gather`) and
drawing (`render`) are separate so a frame can be rendered from fixed data in tests and printed
once with `--once` for pipes and cron mails.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import time
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from netops import stop
from netops.config import API_RATE_PER_HOUR, API_RATE_PER_SECOND, Settings
from netops.db.monitor_facts import ApiFacts, BacklogFacts, TableCount
from netops.monitor.facts import KeyRow, LastRun, PhaseFacts, iso
from netops.monitor.formatting import human_age, render_key_line

SPARK = "▁▂▃▄▅▆▇█"
#: bar glyphs: done and not done differ in shape, not only colour (a monochrome terminal, a
#: cron mail, a screen reader); UNKNOWN fills a bar whose total is not known yet
FULL, EMPTY, UNKNOWN = "█", "░", "▒"
#: what the dashboard is built for; a frame must fit it with room to spare (no wrapped line)
WIDTH, HEIGHT = 80, 24
#: a rule whose verdict says a job waits for API budget (its message is shown; the rule is
#: another helper's, see netops/monitor/evaluation.py): the wait is not a phase's work
BUDGET_WAIT_PREFIX = "api_budget"


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
    #: the evaluation's calls this hour (Facts.calls_this_hour): the figure status, metrics and
    #: the status page show; None unknown
    calls_this_hour: int | None = None
    #: "waiting for API budget: …" when the evaluation says a job waits (None: nobody waits)
    waiting: str | None = None
    freshness: dict[str, dict[str, Any]] | None = None   # issue 23: the evaluation's freshness_doc


def gather(settings: Settings, dsn: str | None) -> DashboardData:
    """One evaluation (netops/monitor/evaluation.py) per frame: the same facts and verdict as
    `netops status`; a database that is down is shown, not raised."""
    from netops.monitor.evaluation import evaluate, freshness_doc

    ev = evaluate(settings, dsn, check_services=False)
    f = ev.facts
    data = DashboardData(now=f.now, rate_per_second=f.budget.per_second, rate_per_hour=f.budget.per_hour,
                         state=ev.state, firing=[v.rule.name for v in ev.firing], keys=f.keys,
                         calls_this_hour=f.calls_this_hour)
    data.waiting = next((v.message for v in ev.firing if v.rule.name.startswith(BUDGET_WAIT_PREFIX)), None)
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


def bar(done: float, total: float | None, width: int, style: str = "") -> Text:
    """A bar of `width` cells: FULL for the done share, EMPTY for the rest (0 % is all EMPTY,
    100 % all FULL: readable without colour); UNKNOWN throughout when `total` is unknown."""
    if not total:
        return Text(UNKNOWN * width, style=style)
    n = max(0, min(width, round(width * done / total)))
    if 0 < done < total:  # never round a started bar to empty, nor an unfinished one to full
        n = max(1, min(width - 1, n))
    out = Text(FULL * n, style=style)
    out.append(EMPTY * (width - n), style="dim")
    return out


def line(*parts: tuple[str, str] | str) -> Text:
    """One frame line that never wraps: cut with an ellipsis at the frame's edge."""
    out = Text(no_wrap=True, overflow="ellipsis")
    for part in parts:
        if isinstance(part, tuple):
            out.append(*part)
        else:
            out.append(part)
    return out


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


def _gauge(label: str, used: float | None, budget: float, width: int) -> Text:
    if used is None:
        return line((f"{label:<12}", "bold"), (UNKNOWN * width, "dim"), " unknown (database unreachable)")
    pct = 100.0 * used / budget if budget else 0.0
    style = "green" if pct < 75 else "yellow" if pct <= 100 else "red"
    return line((f"{label:<12}", "bold"), bar(min(used, budget), budget, width, style),
                (f" {used:,.0f}/{budget:,.0f} ({pct:.0f}%)", style))


def _phase_state(f: PhaseFacts, now: datetime, waiting: bool) -> tuple[Text, Text, str, Text]:
    """(bar, state, pages, delta) of one phase."""
    age = human_age((now - f.finished_at).total_seconds()) if f.finished_at else "-"
    if f.in_run:  # a live sync reads it ahead or has not reached it: not its previous run's `ok`
        return (bar(0, None, 16, "cyan"), Text(f.in_run, style="cyan"), "-", Text("-", style="dim"))
    if f.last_status == "running":
        state = "waiting for budget" if waiting else f"run {human_age(f.duration_seconds)}"
        return (bar(f.pages_done, f.pages_total, 16, "cyan"), Text(state, style="bold cyan"),
                f"{f.pages_done}/{f.pages_total or '?'}", Text(f"{f.rows_fetched} read", style="cyan"))
    if f.last_status == "unchanged":  # `sync stable --if-changed`: skipped, its probe saw no change
        return (bar(1, 1, 16, "green"), Text(f"unchanged (probe) {age}", style="green"), "-",
                Text("+0 ~0", style="dim"))
    if f.last_status == "interrupted":
        return (bar(f.pages_done, f.pages_total or max(f.pages_done, 1), 16, "yellow"),
                Text(f"interrupted {age}", style="yellow"),
                f"{f.pages_done}/{f.pages_total if f.pages_total is not None else '?'}", Text("+0 ~0", style="dim"))
    if f.last_status in ("success", "failed"):
        ok = f.last_status == "success"
        total = f.pages_total or f.pages_done or 1
        net = f.rows_inserted - f.rows_deleted
        return (bar(total if ok else f.pages_done, total, 16, "green" if ok else "red"),
                Text(f"ok {age}" if ok else f"FAIL {age}", style="green" if ok else "bold red"),
                f"{f.pages_done}/{f.pages_total if f.pages_total is not None else f.pages_done}",
                Text(f"{net:+d} ~{f.rows_updated}", style="green" if net > 0 else "red" if net < 0 else "dim"))
    return bar(0, 1, 16), Text("never", style="dim"), "-", Text("-", style="dim")


def _phase_row(f: PhaseFacts, tables: dict[str, TableCount], now: datetime, waiting: bool = False) -> list[Any]:
    cells, state, pages, delta = _phase_state(f, now, waiting)
    tc = tables.get(f.table)
    rows = "-" if tc is None else (f"{tc.rows}" if tc.exact else f"~{tc.rows}")
    return [Text(f.phase, no_wrap=True, overflow="ellipsis"), cells, pages, rows, delta, state]


def _alerts_line(d: DashboardData) -> Text:
    """`alerts (4) a, b, c, d` on one line: cut at the edge, never wrapped."""
    if not d.firing:
        return line(("alerts      ", "bold"), ("none firing", "green"))
    return line((f"alerts ({len(d.firing)}) ", "bold"), (", ".join(d.firing), "bold red"))


def render(d: DashboardData, interval: float | None = None) -> Group:
    """One frame. Fits 80x24 with room: every line but the tables' is one line, cut not wrapped."""
    alerts = _alerts_line(d)
    if not d.db_ok:
        return Group(_head(d), alerts, line((d.db_error or "PostgreSQL unreachable", "red")),
                     line(("Start it (`netops db up`) or fix NETOPS_DSN; retrying.", "dim")))
    keys = [_key_line(k) for k in d.keys]
    live = _live_rows(d)
    parts: list[Any] = [_head(d), alerts, _phase_table(d), *_gauges(d), *keys, _api_line(d), _backlog_line(d)]
    parts += [line(("waiting    ", "bold"), (f" {d.waiting}", "bold yellow"))] if d.waiting else []
    parts += [_freshness_line(d)] if d.freshness else []
    parts += [live] if live is not None else []
    if interval:
        parts.append(line((f"refresh {interval:g}s · q or Ctrl-C quits", "dim")))
    return Group(*parts)


def _key_line(k: KeyRow) -> Text:
    """One key, compact enough for 80 columns (the long form is status's render_key_line)."""
    if k.error is not None or k.calls_last_hour is None:
        return line((render_key_line(k), "bold red" if k.error else ""))
    ttl = "none" if k.token_ttl_seconds is None else human_age(k.token_ttl_seconds)
    state = " SET ASIDE" if k.set_aside else " blocked (429)" if k.blocked_until else ""
    return line((f"key {k.label:<7}", "bold"),
                f" token {ttl} · {k.calls_last_second}/{k.per_second:g} this s · "
                f"{k.calls_last_hour:,}/{k.per_hour:,} this h · {k.rate_limited_last_hour}×429",
                (state, "bold red"))


def _head(d: DashboardData) -> Text:
    head = line(("netops ", "bold"), ((iso(d.now) or "")[11:], "dim"), "  db ")
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
    table.add_column("state", no_wrap=True, overflow="ellipsis")
    for f in d.phases:
        table.add_row(*_phase_row(f, d.tables, d.now, waiting=d.waiting is not None))
    return table


def _gauges(d: DashboardData) -> list[Text]:
    """Calls in the last minute vs the per-second budget, and the hour's calls (the evaluation's
    one figure, Facts.calls_this_hour) vs the hourly budget."""
    return [_gauge("calls/min", d.api.calls_1m, d.rate_per_second * 60, 30),
            _gauge("calls/hour", d.calls_this_hour, d.rate_per_hour, 30)]


def _api_line(d: DashboardData) -> Text:
    """Errors over 24 hours, this hour's 401s and 429s, and the last call's age. The API's own
    X-RateLimit-Remaining is not shown: a header of the last answer, stale between calls and
    counting other clients, it was a second figure for the hour's calls."""
    a = d.api
    total_err = sum(a.errors_by_hour)
    last = (f"  last call {human_age((d.now - a.last_call_at).total_seconds())} ago" if a.last_call_at
            else "  no calls")
    out = line(("errors 24h  ", "bold"))
    out.append_text(sparkline(a.errors_by_hour))
    out.append(f" {total_err}", style="bold red" if total_err else "green")
    out.append(f"  401:{a.unauthorized_1h} 429:{a.rate_limited_1h} (1h){last}")
    return out


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
    """Each resource's age / its target, stalest first; red past the target (the resource_stale
    rule). One line, cut at the edge: `netops status` lists them all."""
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append("freshness  ", style="bold")
    docs = sorted((d.freshness or {}).items(), key=lambda kv: -(kv[1]["ratio"] if kv[1]["ratio"] is not None
                                                                 else float("inf")))
    for name, doc in docs:
        age = "never" if doc["seconds"] is None else human_age(doc["seconds"])
        line.append(f" {name} {age}/{human_age(doc['target_seconds'])}",
                    style="bold red" if (doc["ratio"] or 0) > 1 else "green" if doc["ratio"] is not None else "dim")
    return line


def _live_rows(d: DashboardData) -> Text | None:
    """Rows of the tables no stable phase shows; None when there are none."""
    phase_tables = {f.table for f in d.phases}
    others = [(name, tc) for name, tc in d.tables.items() if name not in phase_tables]
    if not others:
        return None
    # most rows first, on one line cut at the edge (the frame stays 80x24; `netops status` lists all)
    others.sort(key=lambda nt: -nt[1].rows)
    cells = "  ".join(f"{name} {'' if tc.exact else '~'}{_compact(tc.rows)}" for name, tc in others)
    return line(("rows       ", "bold"), f" {cells}")


def _compact(n: int) -> str:
    """1234 -> 1.2k, 4500000 -> 4.5M: a row count in a few columns."""
    for size, unit in ((1_000_000, "M"), (1_000, "k")):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def print_once(settings: Settings, dsn: str | None, console: Console | None = None) -> DashboardData:
    console = console or Console()
    data = gather(settings, dsn)
    console.print(render(data))
    return data


def run_backlog(settings: Settings, dsn: str | None, interval: float, console: Console | None = None) -> None:
    """Redraw every `interval` seconds on the alternate screen until `q` (or Ctrl-C)."""
    from rich.live import Live

    console = console or Console()
    try:
        with _keys() as pressed, Live(render(gather(settings, dsn), interval), console=console, screen=True,
                                      auto_refresh=False, transient=True) as live:
            # `q`, or SIGINT/SIGTERM (netops/stop.py), end it at once
            while pressed(interval) not in ("q", "Q") and not stop.requested():
                live.update(render(gather(settings, dsn), interval), refresh=True)
    except KeyboardInterrupt:
        return


@contextlib.contextmanager
def _keys() -> Iterator[Callable[[float], str | None]]:
    """`pressed(timeout)`: the key typed within `timeout` seconds, or None. The terminal is in
    cbreak mode meanwhile (a key needs no Enter; Ctrl-C still interrupts) and restored after."""
    fd = sys.stdin.fileno() if sys.stdin is not None and sys.stdin.isatty() else None
    saved = termios.tcgetattr(fd) if fd is not None else None

    def pressed(timeout: float) -> str | None:
        if fd is None:
            stop.wait(timeout)
            return None
        deadline = time.monotonic() + timeout
        while not stop.requested():  # short slices: a stop signal is seen within 0.2 s
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], min(left, 0.2))
            if ready:
                return os.read(fd, 1).decode(errors="replace")
        return None

    try:
        if fd is not None:
            tty.setcbreak(fd)
        yield pressed
    finally:
        if fd is not None and saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
