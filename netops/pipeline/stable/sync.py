"""Runs the stable phases: fetch -> COPY into delta -> one transaction (upsert, prune) per phase.

Each phase commits alone, in foreign-key order, so a failure leaves that table (and every later
one) exactly as before while the earlier phases keep their fresh data. A session-level advisory
lock makes a second concurrent sync exit at once instead of interleaving with the first.
Bookkeeping (`netops.sync_runs`, `netops.api_calls`) is written on a separate autocommit
connection: it survives a rolled-back phase and is visible to the dashboard while a phase runs.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from netops import stop
from netops.api.client import ApiClient
from netops.api.paging import PageInfo, endpoint_template, object_problem
from netops.catalog import DerivedLinks, Listing, NestedList, Single
from netops.config import Settings
from netops.db import connect, locks, mirror
from netops.db.loader import ApplyResult, Policy, count_rows, load
from netops.db.migrate import require_schema
from netops.db.server import resolve_dsn
from netops.db.sync_runs import Bookkeeping
from netops.errors import ApiError, NetopsError, SyncError
from netops.log import get_logger
from netops.pipeline.stable.links import (
    CampusListError,
    Derived,
    campus_names,
    derive,
    name_index,
    unmatched_summary,
)
from netops.pipeline.stable.phases import BY_TABLE, PHASES, MappingError, Phase, followers, nested_rows
from netops.pipeline.stable.probe import (
    ProbeReport,
    phase_history,
    probe_stable,
    record_unchanged,
    select_phases,
)


class SyncBusy(NetopsError):
    """Another sync holds the lock."""

    exit_code = 75  # EX_TEMPFAIL: cron wrappers may retry later


class SyncInterrupted(NetopsError):
    """SIGINT/SIGTERM stopped the run; its unfinished phase was marked 'interrupted'."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum  # what a shell reports for a process ended by that signal


class _Stop(BaseException):
    """Raised in the main thread by the SIGINT/SIGTERM handler. A BaseException, so the phase's
    `except Exception` (which records a *failed* phase) cannot mistake a stop for a failure."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """While a run holds the lock, SIGINT and SIGTERM raise _Stop in the main thread (once: a second
    Ctrl-C during the cleanup is ignored, so the cleanup that records the end always finishes).
    Outside the main thread (tests, embedding) signals cannot be caught and nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = threading.Event()

    def handler(signum: int, _frame: Any) -> None:
        stop.request(signum)  # every thread's waits end too (the limiter's, the pagers': netops/stop.py)
        if fired.is_set():
            return
        fired.set()
        raise _Stop(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@dataclass
class PhaseReport:
    phase: str
    table: str
    status: str = "running"
    rows: int = 0
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    skipped: int = 0
    api_calls: int = 0
    min_calls: int = 0
    seconds: float = 0.0
    error: str | None = None


@dataclass
class SyncReport:
    run_id: str
    phases: list[PhaseReport] = field(default_factory=list)
    seconds: float = 0.0
    api_calls: int = 0
    min_calls: int = 0
    ok: bool = True
    # --if-changed: what the probe saw, and the phases it skipped (status "unchanged"; their
    # api_calls are the probe calls attributed to them, already counted in `probe_calls`)
    probe: ProbeReport | None = None
    unchanged: list[PhaseReport] = field(default_factory=list)

    @property
    def probe_calls(self) -> int:
        return self.probe.calls if self.probe is not None else 0

    @property
    def total_rows(self) -> int:
        return sum(p.rows for p in self.phases) + sum(p.rows for p in self.unchanged)

    def as_dict(self) -> dict[str, Any]:
        out = {
            "run_id": self.run_id, "ok": self.ok, "seconds": round(self.seconds, 3),
            "api_calls": self.api_calls, "min_calls": self.min_calls, "total_rows": self.total_rows,
            "phases": [p.__dict__ for p in self.phases],
        }
        if self.probe is not None:
            out.update(probe=self.probe.as_dict(), probe_calls=self.probe_calls,
                       skipped_phases=[p.phase for p in self.unchanged],
                       unchanged=[p.__dict__ for p in self.unchanged])
        return out


class Progress:
    """Receives progress events; the CLI renders them as rich progress bars on a terminal."""

    def phase_started(self, phase: Phase) -> None: ...
    def phase_total(self, phase: Phase, pages: int | None) -> None: ...
    def phase_advanced(self, phase: Phase, pages: int, rows: int) -> None: ...
    def phase_finished(self, phase: Phase, report: PhaseReport) -> None: ...
    def budget_wait(self, line: str | None) -> None:
        """`waiting for API budget: ...` while the run waits for budget (None: the wait ended)."""


class _PhaseFetch:
    """Counts pages/rows of one phase while its rows stream into COPY (thread-safe: the client
    fetches a listing's later pages from a thread pool)."""

    def __init__(self, on_progress: Callable[[int, int | None, int], None]) -> None:
        self.pages = 0
        self.pages_total: int | None = None
        self.rows = 0
        self.min_calls = 0
        self._on_progress = on_progress
        self._lock = threading.Lock()

    def info(self, pi: PageInfo) -> None:
        with self._lock:
            pages = max(pi.pages or 0, 1)  # an empty listing still costs its first call
            self.min_calls += pages
            self.pages_total = (self.pages_total or 0) + max(pages, 0)
            self._on_progress(self.pages, self.pages_total, self.rows)

    def page(self, n_rows: int) -> None:
        with self._lock:
            self.pages += 1
            self.rows += n_rows
            self._on_progress(self.pages, self.pages_total, self.rows)


class _Relay:
    """Stands in for a phase's _PhaseFetch while the phase is fetched ahead (in a prefetch
    thread): progress events are queued and replayed on the real one when the phase runs."""

    def __init__(self, q: queue.SimpleQueue[tuple[str, Any]]) -> None:
        self._q = q

    def info(self, pi: PageInfo) -> None:
        self._q.put(("info", pi))

    def page(self, n_rows: int) -> None:
        self._q.put(("page", n_rows))


class _Prefetch:
    """Fetches every API phase of a run at once, each in its own thread, through the run's one
    pacer, and queues its mapped rows until the phase's turn to load comes.

    Why: the phases must *load* one after another (foreign-key order, one transaction each),
    but their API reads do not depend on each other. Read in phase order, each phase's first page
    is a sequential round trip, and the API budget idles while a table loads (phases 06, 07 and 08
    make no call at all).
    Read at once, the pacer alone spaces the calls and the budget stays busy. Rows are queued
    already mapped (small tuples, not JSON). A phase that fails stops the rest: every thread
    checks `stop` between rows and closes its page iterator (in-flight pages are cancelled).
    Per-phase call counts stay exact: each phase fetches through its own `client.fork()`.
    """

    CHUNK = 500

    def __init__(self, sync: StableSync, client: ApiClient, phases: Sequence[Phase]) -> None:
        self.stop = threading.Event()
        self.queues: dict[str, queue.SimpleQueue[tuple[str, Any]]] = {}
        self.clients: dict[str, ApiClient] = {}
        self._sync = sync
        todo = [p for p in phases if isinstance(p.source, (Single, Listing))]
        for phase in todo:
            self.queues[phase.name] = queue.SimpleQueue()
            self.clients[phase.name] = client.fork()
        self._threads = [threading.Thread(target=self._fetch, args=(p,), daemon=True,
                                          name=f"netops-prefetch-{p.name}") for p in todo]
        for t in self._threads:
            t.start()

    def _fetch(self, phase: Phase) -> None:
        q = self.queues[phase.name]
        rows: Iterator[Sequence[Any]] | None = None
        try:
            rows = self._sync._rows(phase, self.clients[phase.name], _Relay(q))  # type: ignore[arg-type]
            chunk: list[Sequence[Any]] = []
            for row in rows:
                if self.stop.is_set():
                    return
                chunk.append(row)
                if len(chunk) >= self.CHUNK:
                    q.put(("rows", chunk))
                    chunk = []
            q.put(("rows", chunk))
            q.put(("done", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the phase that consumes this queue
            q.put(("error", exc))
        finally:
            if rows is not None and hasattr(rows, "close"):
                rows.close()  # stops the page iterator: pages still in flight are cancelled

    def rows(self, phase: Phase, fetch: _PhaseFetch) -> Iterator[Sequence[Any]]:
        """The phase's rows, in the order fetched; replays its progress events on `fetch`."""
        q = self.queues[phase.name]
        while True:
            kind, value = q.get()
            if kind == "rows":
                yield from value
            elif kind == "info":
                fetch.info(value)
            elif kind == "page":
                fetch.page(value)
            elif kind == "error":
                raise value
            else:
                return

    def close(self, wait: float = 5.0) -> None:
        """Stop fetching ahead (a failed phase ends the run) and give the threads `wait` seconds
        to notice: each stops at its next row, so the call recorder is not closed under them."""
        self.stop.set()
        deadline = time.monotonic() + wait
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))


class StableSync:
    """One `netops sync stable` run."""

    def __init__(self, settings: Settings, progress: Progress | None = None, if_changed: bool = False) -> None:
        self.settings = settings
        self.progress = progress or Progress()
        self.if_changed = if_changed  # probe first, pull only what moved (netops/pipeline/stable/probe.py)
        self.log = get_logger("stable", settings.log_path)
        # per parent object (projects) only the nested lists its follower phases load
        # (`nested_rows`), not the raw objects: their nested campus objects are most of their
        # size (~30 of ~46 MB here). Keyed by the parent table's name.
        self._nested: dict[str, list[dict[str, list[dict[str, Any]]]]] = {}
        self._nested_skipped_fetch = False
        self._prefetch: _Prefetch | None = None
        # per achievement only its id and `campus` names (or the problem with them): the derived
        # links' source (netops/pipeline/stable/links.py), kept from the parent's listing; keyed by it
        self._link_names: dict[str, list[tuple[Any, tuple[str, ...] | str]]] = {}
        self._derived: Derived | None = None

    # -- sources ----------------------------------------------------------------------------
    @staticmethod
    def _campus_names(obj: Any) -> tuple[Any, tuple[str, ...] | str]:
        """(id, campus names) of one achievement; a bad `campus` value is kept as its problem
        so that phase 05 still loads and phase 07 fails naming the row."""
        if not isinstance(obj, dict):
            return None, ()
        try:
            return obj.get("id"), campus_names(obj)
        except CampusListError as exc:
            return obj.get("id"), str(exc)

    def _rows(self, phase: Phase, client: ApiClient, fetch: _PhaseFetch) -> Iterator[Sequence[Any]]:
        src = phase.source
        if isinstance(src, Single):
            path = src.path
            fetch.info(PageInfo(1, 1, 1))
            obj = client.get_json(path, validate=object_problem)
            fetch.page(1)
            yield phase.row(obj, endpoint_template(path))
        elif isinstance(src, Listing):
            path, params = src.path, src.params
            keep = any(isinstance(f.source, NestedList) for f in followers(phase.name))
            links = any(isinstance(f.source, DerivedLinks) for f in followers(phase.name))
            if keep:
                self._nested[phase.name] = []
            if links:
                self._link_names[phase.name] = []
            for page in client.iter_pages(path, params, on_info=fetch.info):
                fetch.page(len(page))
                for obj in page:
                    if keep and isinstance(obj, dict):
                        self._nested[phase.name].append(nested_rows(obj, phase.name))
                    if links:
                        self._link_names[phase.name].append(self._campus_names(obj))
                    yield phase.row(obj, endpoint_template(path))
        elif isinstance(src, NestedList):
            parent = BY_TABLE[src.parent]
            assert isinstance(parent.source, Listing)
            if src.parent not in self._nested:  # --phase without its parent: fetch it, load nothing else
                kept: list[dict[str, list[dict[str, Any]]]] = []
                for page in client.iter_pages(parent.source.path, parent.source.params, on_info=fetch.info):
                    fetch.page(0)
                    kept.extend(nested_rows(o, src.parent) for o in page if isinstance(o, dict))
                self._nested[src.parent] = kept
            endpoint = endpoint_template(parent.source.path) + f" (nested {src.list_key})"
            for nested in self._nested[src.parent]:
                for obj in nested[phase.name]:
                    fetch.rows += 1
                    yield phase.row(obj, endpoint)
            fetch.page(0)
        elif isinstance(src, DerivedLinks):
            raise ValueError("derived phases read the mirror: use _derived_rows")  # pragma: no cover
        else:  # pragma: no cover - a programming error in the catalog
            raise ValueError(f"unknown source {src!r}")

    # -- the run ----------------------------------------------------------------------------
    def run(self, only: Sequence[str] | None = None) -> SyncReport:
        started = time.monotonic()
        # Missing credentials are a configuration error (exit 2, like every command that needs
        # them), found before anything is recorded: not a "failed phase" in the history.
        self.settings.require_credentials()
        dsn = resolve_dsn(self.settings)
        require_schema(dsn)  # refuses a database with no, an older or a newer netops schema
        phases = [p for p in PHASES if not only or p.name in only]
        report = SyncReport(str(uuid.uuid4()))
        conn = self._take_lock(dsn)
        books = Bookkeeping(dsn, report.run_id)
        orphans = books.close_orphans()
        if orphans:
            self.log.warning(f"Marked {orphans} phase run(s) left 'running' by a sync that died as interrupted")
        client = ApiClient(self.settings, dsn=dsn, component="stable")
        client.limiter.add_wait_hook(lambda w: self.progress.budget_wait(None if w is None else w.line()))
        self.log.info(f"Starting stable sync of {len(phases)} phases (run {report.run_id[:8]})")
        stopped = self._run_until_stopped(phases, report, client, conn, books)
        if stopped is not None:
            name = signal.Signals(stopped.signum).name
            raise SyncInterrupted(f"stopped by {name}: sync left its unfinished phase marked interrupted and "
                                  "its table unchanged (earlier phases committed) — rerun `netops sync stable`",
                                  stopped.signum)
        report.seconds = time.monotonic() - started
        report.api_calls = sum(p.api_calls for p in report.phases) + report.probe_calls
        report.min_calls = sum(p.min_calls for p in report.phases) + report.probe_calls
        self._log_outcome(report)
        return report

    @staticmethod
    def _take_lock(dsn: str) -> Any:
        """The run's own connection, holding the sync lock for as long as it is open."""
        conn = connect(dsn, application_name="netops-sync")
        with conn.cursor() as cur:
            locked = locks.try_session_lock(cur, locks.SYNC)
        conn.commit()
        if not locked:
            conn.close()
            raise SyncBusy("another `netops sync` is running on this database; wait for it to finish "
                           "(see `netops status`) — this run did nothing")
        return conn

    def _run_until_stopped(self, phases: list[Phase], report: SyncReport, client: ApiClient, conn: Any,
                           books: Bookkeeping) -> _Stop | None:
        """Run the phases, SIGINT/SIGTERM stopping them; returns the stop, if any. Closes the
        client, the bookkeeping and the run's connection (so releases the lock) in every case."""
        self._prefetch = None
        stopped: _Stop | None = None
        try:
            with _stop_on_signals():
                try:
                    self._run_phases(phases, report, client, conn, books)
                except _Stop as exc:
                    stopped = exc
        finally:
            # Stopped by a signal: the prefetch threads get a moment only (their in-flight calls are
            # abandoned, the process is about to end); the end of the run is written before anything
            # that could block, so it is recorded whatever happens next.
            if stopped is not None:
                self._record_stop(stopped, books)
            if self._prefetch is not None:
                self._prefetch.close(wait=0.5 if stopped is not None else 5.0)
            client.close()
            books.close()
            conn.close()
        return stopped

    def _record_stop(self, stopped: _Stop, books: Bookkeeping) -> None:
        name = signal.Signals(stopped.signum).name
        done = books.interrupt(f"the sync was stopped by {name}")
        self.log.warning(f"⏹ Sync interrupted by {name} during "
                         f"{', '.join(done) or 'no phase'}: marked interrupted, table(s) left unchanged")

    def _log_outcome(self, report: SyncReport) -> None:
        """The run's summary line; a failed phase raises SyncError (exit 1)."""
        if report.ok and report.probe is not None:
            self.log.info(
                f"✅ {len(report.phases)} phases pulled, {len(report.unchanged)} unchanged (probe), "
                f"{report.total_rows:,} total rows, {report.api_calls} API calls ({report.probe_calls} probe + "
                f"{report.api_calls - report.probe_calls} pull; minimum for this data: {report.min_calls}), "
                f"{report.seconds:.1f}s"
            )
        elif report.ok:
            self.log.info(
                f"✅ All {len(report.phases)} phases complete, {report.total_rows:,} total rows, "
                f"{report.api_calls} API calls (minimum for this data: {report.min_calls}), "
                f"{report.seconds:.1f}s"
            )
        else:
            failed = report.phases[-1]
            self.log.error(f"❌ Sync stopped at phase {failed.phase}: {failed.error}")
            raise SyncError(f"phase {failed.phase} failed: {failed.error} (table {failed.table} left "
                            "unchanged; later phases not run)")

    def _run_phases(self, phases: list[Phase], report: SyncReport, client: ApiClient, conn: Any,
                    books: Bookkeeping) -> None:
        if self.if_changed:  # probe each resource, keep only the phases whose resource moved
            phases = self._probe_and_select(phases, report, client, conn, books)
        self._prefetch = _Prefetch(self, client, phases)
        for phase in phases:
            rep = self._run_phase(phase, client, conn, books)
            report.phases.append(rep)
            if rep.status != "success":
                report.ok = False
                break

    def _probe_and_select(self, phases: list[Phase], report: SyncReport, client: ApiClient, conn: Any,
                          books: Bookkeeping) -> list[Phase]:
        """--if-changed: probe, record the unchanged phases (sync_runs status 'unchanged'), log
        what was skipped and why; returns the phases to pull, in FK order."""
        probe = probe_stable(self.settings, conn, client, phases)
        pull, unchanged = select_phases(phases, probe, phase_history(conn))
        report.probe = probe
        for result in probe.results:
            verdict = "pull" if result.changed else "unchanged, skip"
            self.log.info(f"Probe {result.resource} ({', '.join(result.phases)}): {verdict} — "
                          f"{result.reason} ({result.calls} calls)")
        for name, why in probe.forced.items():
            self.log.info(f"Probe: pulling {name} whatever its probe said: {why}")
        for phase in unchanged:
            result = probe.of_phase(phase.name)
            # a probe's calls are attributed to the first phase it governs (the nested ones follow
            # their parent's)
            calls = result.calls if result is not None and result.phases[0] == phase.name else 0
            with conn.cursor() as cur:
                rows = count_rows(cur, phase.table)
            conn.commit()
            record_unchanged(books, phase, calls, result.reason if result is not None else "")
            report.unchanged.append(PhaseReport(phase.name, phase.table.name, status="unchanged", rows=rows,
                                                api_calls=calls))
        skipped = ", ".join(p.name for p in unchanged) or "none"
        pulled = ", ".join(p.name for p in pull) or "none"
        self.log.info(f"Probe: {probe.calls} calls, {probe.seconds:.1f}s; skipping {len(unchanged)} "
                      f"unchanged phase(s): {skipped}; pulling {len(pull)}: {pulled}")
        return pull

    def _derived_rows(self, phase: Phase, cur: Any, client: ApiClient,
                      fetch: _PhaseFetch) -> Iterator[Sequence[Any]]:
        """Derived links (campus_achievements) from the parent's `campus` names
        (netops/pipeline/stable/links.py).

        Eager, not a generator: the mirror read must be done before COPY takes the cursor. The
        names are matched against the table the links' other foreign key references (campuses),
        as its phase just committed it, read in this phase's own transaction. The parent's listing
        (achievements) is its phase's; when that phase is not part of this run (`--phase
        campus_achievements`, or `--if-changed` with only campuses moved), it is fetched here and
        nothing but the links is loaded.
        """
        src = phase.source
        assert isinstance(src, DerivedLinks)
        parent = BY_TABLE[src.parent]
        assert isinstance(parent.source, Listing)
        matched = next(fk for fk in phase.spec.fks if fk.parent != src.parent)
        parent_fk = next(fk for fk in phase.spec.fks if fk.parent == src.parent)
        endpoint = endpoint_template(parent.source.path) + f" ({src.field} names)"
        if src.parent not in self._link_names:
            kept: list[tuple[Any, tuple[str, ...] | str]] = []
            for page in client.iter_pages(parent.source.path, parent.source.params, on_info=fetch.info):
                fetch.page(0)
                kept.extend(self._campus_names(o) for o in page)
            self._link_names[src.parent] = kept
        names = self._link_names[src.parent]
        index = name_index(mirror.ids_and_names(cur, matched.parent))  # DuplicateCampusName: the phase fails, table kept
        for aid, found in names:
            if isinstance(found, str):
                raise MappingError(f"{endpoint}: row id={aid}: {found}; the API's payload changed — "
                                   "update netops/pipeline/stable/links.py")
        self._derived = derive(((a, n) for a, n in names if not isinstance(n, str)), index)
        fetch.page(len(self._derived.links))
        return iter([phase.row({matched.column: cid, parent_fk.column: aid}, endpoint)
                     for cid, aid in self._derived.links])

    def _run_phase(self, phase: Phase, client: ApiClient, conn: Any, books: Bookkeeping) -> PhaseReport:
        rep = PhaseReport(phase.name, phase.table.name)
        t0 = time.monotonic()
        calls0 = client.calls
        row_id = books.start(phase.name)
        self.progress.phase_started(phase)
        self.log.info(f"Phase {phase.number}: Fetching {phase.label}...")

        def on_progress(pages: int, total: int | None, rows: int) -> None:
            books.progress(row_id, pages, total, rows)
            self.progress.phase_total(phase, total)
            self.progress.phase_advanced(phase, pages, rows)

        fetch = _PhaseFetch(on_progress)
        self._load_phase(phase, rep, client, conn, fetch)
        forked = self._prefetch.clients.get(phase.name) if self._prefetch is not None else None
        rep.api_calls = client.calls - calls0 + (forked.calls if forked is not None else 0)
        rep.min_calls = fetch.min_calls
        rep.seconds = time.monotonic() - t0
        books.progress(row_id, fetch.pages, fetch.pages_total, fetch.rows, force=True)
        books.finish(row_id, rep)
        self.progress.phase_finished(phase, rep)
        self._log_phase(phase, rep)
        return rep

    def _phase_rows(self, phase: Phase, cur: Any, client: ApiClient, fetch: _PhaseFetch) -> Iterator[Sequence[Any]]:
        """Every phase that calls the API was fetched ahead; the nested ones read what their
        parent's phase kept, the derived links read the mirror."""
        if isinstance(phase.source, DerivedLinks):
            return self._derived_rows(phase, cur, client, fetch)
        if self._prefetch is not None and phase.name in self._prefetch.queues:
            return self._prefetch.rows(phase, fetch)
        return self._rows(phase, client, fetch)

    def _load_phase(self, phase: Phase, rep: PhaseReport, client: ApiClient, conn: Any,
                    fetch: _PhaseFetch) -> None:
        """Fetch and load one phase in one transaction; fills `rep` (status, counts or error)."""
        try:
            with conn, conn.cursor() as cur:
                rows = self._phase_rows(phase, cur, client, fetch)
                result: ApplyResult = load(cur, phase.table, rows, Policy(
                    prune=True, max_prune_ratio=self.settings.max_prune_ratio)).result
                rep.rows = count_rows(cur, phase.table)
            rep.status = "success"
            rep.fetched = result.staged
            rep.inserted, rep.updated, rep.deleted, rep.skipped = (
                result.inserted, result.updated, result.deleted, result.skipped)
            if isinstance(phase.source, DerivedLinks) and self._derived is not None:
                rep.skipped += self._derived.skipped  # names of campuses not mirrored
        except (ApiError, MappingError, SyncError) as exc:
            rep.status, rep.error = "failed", str(getattr(exc, "message", exc))
        except Exception as exc:  # a DB error mid-phase: the transaction rolled back
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            rep.status, rep.error = "failed", f"{type(exc).__name__}: {first}"
        finally:
            client.recorder.flush()

    def _log_phase(self, phase: Phase, rep: PhaseReport) -> None:
        if rep.status != "success":
            self.log.error(f"Phase {phase.number}: {phase.label} FAILED: {rep.error}")
            return
        extra = f", {rep.skipped} skipped (parent not mirrored, NULL key or served twice)" if rep.skipped else ""
        if isinstance(phase.source, DerivedLinks) and self._derived is not None and self._derived.skipped:
            extra = (f", {rep.skipped} skipped: {self._derived.skipped} naming "
                     f"{unmatched_summary(self._derived)}, {rep.skipped - self._derived.skipped} other")
        self.log.info(
            f"Phase {phase.number}: Fetching {phase.label}... {rep.rows:,} rows "
            f"(+{rep.inserted} ~{rep.updated} -{rep.deleted}{extra}; {rep.api_calls} calls, {rep.seconds:.1f}s)"
        )


def run_stable_sync(settings: Settings, phases: Sequence[str] | None = None,
                    progress: Progress | None = None, if_changed: bool = False) -> SyncReport:
    """Entry point for the CLI, cron and tests. `if_changed`: probe each resource first and
    pull only those that moved (see netops/pipeline/stable/probe.py for what a probe cannot see)."""
    return StableSync(settings, progress, if_changed).run(phases)
