"""Backlog worker: claim queued items, fetch what is not already in hand, load, mark done.

Why it works this way (docs/backlog.md has the long form):
- Rows come with the item. The detector already received each changed row in full from a
  collection page of 100; it stores that row as the item's `payload`, so the worker loads it
  without another call. Only items without a payload (a missing parent, a manual request, a retry
  after an error) are fetched — 100 ids per call with `filter[id]=a,b,...`.
- One transaction per batch loads the rows through the shared delta/upsert path
  (`netops.db.loader.stage` + `apply`) *and* marks the items done. A worker killed at any moment
  leaves either both or neither; its claimed items come back after the visibility timeout.
- Parents before children: users are claimed and loaded first; a row whose user is still missing
  enqueues the user's fetch and is held (retried shortly, the attempt not counted); a row whose
  stable parent (project, achievement, coalition) is missing waits with backoff for the stable
  sync and fails with a message saying so.
- A stale payload never overwrites a fresher row: rows whose mirrored `updated_at` is newer are
  dropped from the delta before the upsert.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg2

from netops import catalog
from netops.catalog import Table
from netops.config import Settings
from netops.db import api_calls, campus, connect, marks, mirror, queue
from netops.db.loader import ApplyResult, LoadOutcome, backlog_policy, delete_keys, load
from netops.errors import ApiError, AuthError, DatabaseError
from netops.log import get_logger
from netops.pipeline.backlog.resources import BY_NAME, RESOURCES, BacklogResource, PayloadError, entity_id

DRAIN_WAIT_SECONDS = 15.0   # --once waits this long at most for held/backed-off items to come due


def delete_ids(cur: Any, res: BacklogResource, ids: Sequence[int]) -> int:
    """Delete mirrored rows of a backlog resource by id (FKs cascade); returns the exact count."""
    return delete_keys(cur, res.loader_table, [(int(i),) for i in ids])


def load_rows(cur: Any, res: BacklogResource, rows: Sequence[tuple[Any, ...]]) -> LoadOutcome:
    """Load validated rows of one backlog resource in the caller's transaction, through the one
    loader (netops/db/loader.py) under the backlog policy: no prune; rows whose parent is missing are
    *not* loaded and come back in `missing` (id -> (parent table, resource to enqueue or None,
    value)) for the caller to hold or divert; users past their data_erasure_date are deleted
    instead of loaded (`erased`, docs/backlog.md "Erasure"); stale payloads are dropped."""
    table = Table(res.table, res.columns, res.pk, tuple((p.column, p.table) for p in res.parents))
    out = load(cur, table, rows, backlog_policy(res.erasure_column))
    if out.erased:   # their sessions and evaluations go too (soft references: no FK cascade)
        campus.erase_people(cur, sorted(out.erased))
    by_column = {p.column: p for p in res.parents}
    out.missing = {rid: (parent, by_column[column].resource, int(value))
                   for rid, (column, parent, value) in out.missing.items()}
    return out


@dataclass
class RunSummary:
    """Totals of one `netops backlog run`."""

    batches: int = 0
    items: int = 0          # items finished as done
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    held: int = 0
    retried: int = 0
    failed: int = 0
    requeued: int = 0
    worker_calls: int = 0   # calls this worker made (fetch by id)
    detect_cost: float = 0.0  # calls the detector spent on the items done here
    seconds: float = 0.0

    @property
    def changed_rows(self) -> int:
        return self.inserted + self.updated + self.deleted

    @property
    def api_calls(self) -> float:
        return self.worker_calls + self.detect_cost

    @property
    def rows_per_call(self) -> float | None:
        return self.items / self.api_calls if self.api_calls > 0 else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "batches": self.batches, "items_done": self.items, "inserted": self.inserted,
            "updated": self.updated, "deleted": self.deleted, "held": self.held,
            "retried": self.retried, "failed": self.failed, "requeued": self.requeued,
            "worker_api_calls": self.worker_calls, "detect_api_calls": round(self.detect_cost, 3),
            "rows_per_api_call": None if self.rows_per_call is None else round(self.rows_per_call, 2),
            "seconds": round(self.seconds, 3),
        }


class Worker:
    """One backlog worker process. Several may run at once, on one box or several."""

    def __init__(self, settings: Settings, dsn: str, client: Any = None, name: str | None = None) -> None:
        self.settings = settings
        self.dsn = dsn
        self.name = name or queue.worker_name()
        self.log = get_logger("backlog", settings.log_path)
        self._client = client
        self._own_client = client is None
        self.conn = connect(dsn, application_name="netops-backlog")
        self.summary = RunSummary()
        self._stop = False
        # the LISTEN connection (opened at the first wait, see _sleep); _can_listen turns False
        # when LISTEN cannot be had or the connection broke: the poll interval alone then does it
        self._wake_conn: Any = None
        self._can_listen = True
        self._budget_per_hour = settings.budget.per_hour   # every key's: they all share the queue's calls

    # -- plumbing -------------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            from netops.api.client import ApiClient

            self._client = ApiClient(self.settings, dsn=self.dsn, component="backlog")
        return self._client

    def close(self) -> None:
        try:
            if self._client is not None and self._own_client:
                self._client.close()
        finally:
            self.conn.close()
            self._drop_wake()

    def request_stop(self, *_: Any) -> None:
        """SIGTERM/SIGINT in --loop: finish the batch in hand, then exit."""
        self._stop = True

    def _calls_used(self) -> str:
        """Calls of the last hour by every netops process (they share the key) / the budget."""
        with self.conn, self.conn.cursor() as cur:
            used = api_calls.calls_last_hour(cur)
        return f"{used:,}/{self._budget_per_hour:,}"

    # -- the loop -------------------------------------------------------------------------------
    def run(self, loop: bool = False, max_batches: int | None = None, wait_for_stable: bool = False) -> RunSummary:
        """Drain the queue (`--once`), or keep draining and polling (`--loop`).

        With wait_for_stable, a run on an empty mirror only logs why it waits (see
        waiting_for_stable_sync) and leaves the queue as it is.
        """
        started = time.monotonic()
        with self.conn, self.conn.cursor() as cur:
            depth = queue.depth(cur)
            waiting = wait_for_stable and waiting_for_stable_sync(cur)
        if waiting:
            # Backlog rows reference the stable tables (campuses, projects, ...): loaded before the
            # first stable sync, every one of them would fail its foreign keys, one warning per
            # row. The items stay queued until the stable sync has run once.
            self.log.info(
                f"Waiting for the first stable sync ({', '.join(BACKLOG_PARENT_TABLES)} are empty; "
                f"`netops sync stable` fills them): {depth:,} queued items left for a later run"
            )
            self.summary.seconds = time.monotonic() - started
            return self.summary
        self.log.info(f"Starting backlog sync, queue depth: {depth:,} (worker {self.name})")
        try:
            while not self._stop:
                claimed = self.process_batch()
                if max_batches is not None and self.summary.batches >= max_batches:
                    break
                if claimed:
                    if self.settings.backlog_fetch_delay_seconds > 0:
                        time.sleep(self.settings.backlog_fetch_delay_seconds)
                    continue
                with self.conn, self.conn.cursor() as cur:
                    due = queue.next_due_in(cur, self.settings.backlog_visibility_timeout)
                if loop:
                    wait = self.settings.backlog_poll_interval if due is None else \
                        min(self.settings.backlog_poll_interval, max(due, 0.05))
                elif due is not None and due <= DRAIN_WAIT_SECONDS:
                    wait = max(due, 0.05)
                else:
                    break
                self._sleep(wait)
        finally:
            if self._client is not None:
                self.summary.worker_calls = self._client.calls
            self.summary.seconds = time.monotonic() - started
            self._log_total()
        return self.summary

    def _sleep(self, seconds: float) -> None:
        """Wait for work: until `seconds` have passed, a stop was requested, or new work was
        queued (migration 013 notifies the channel; the wait then ends at once, so a worker started
        together with `backlog detect` loads behind it instead of after its next poll). Where
        LISTEN cannot be had (a transaction-mode pooler), the poll interval alone does it."""
        end = time.monotonic() + seconds
        if self._wake_conn is None and self._can_listen:
            try:
                self._wake_conn = connect(self.dsn, autocommit=True, application_name="netops-backlog-wake")
                queue.listen(self._wake_conn)
            except (psycopg2.Error, DatabaseError) as exc:
                self.log.warning(f"cannot LISTEN for new backlog work ({_first_line(exc)}); polling every "
                                 f"{self.settings.backlog_poll_interval:g}s instead")
                self._drop_wake()
        while not self._stop:
            left = end - time.monotonic()
            if left <= 0:
                return
            if self._wake_conn is not None:
                try:
                    if queue.wait_for_wake(self._wake_conn, min(0.2, left)):
                        return
                    continue
                except psycopg2.Error as exc:
                    self.log.warning(f"backlog wake connection lost ({_first_line(exc)}); polling instead")
                    self._drop_wake()
            time.sleep(min(0.2, left))

    def _drop_wake(self) -> None:
        """Stop listening for good (this worker polls from now on); the connection is closed,
        not left open when it broke."""
        self._can_listen = False
        conn, self._wake_conn = self._wake_conn, None
        if conn is not None:
            with contextlib.suppress(psycopg2.Error):
                conn.close()

    def _log_total(self) -> None:
        s = self.summary
        rpc = "n/a (no API call)" if s.rows_per_call is None else f"{s.rows_per_call:.1f}"
        self.log.info(
            f"Backlog complete, total: {s.items:,} items in {s.seconds:.0f}s "
            f"({s.inserted:,} inserted, {s.updated:,} updated, {s.deleted:,} deleted, {s.failed:,} failed, "
            f"{s.retried:,} to retry, {s.held:,} held)"
        )
        self.log.info(
            f"Changed rows per API call: {rpc} ({s.items:,} rows / {s.api_calls:.1f} calls: "
            f"detect {s.detect_cost:.1f} + fetch {s.worker_calls})"
        )

    # -- one batch ------------------------------------------------------------------------------
    def process_batch(self) -> int:
        """Claim, fetch, load and finish one batch; returns how many items were claimed."""
        with self.conn, self.conn.cursor() as cur:
            items = queue.claim(cur, self.name, self.settings.backlog_fetch_batch_size,
                                self.settings.backlog_visibility_timeout)
        if not items:
            return 0
        self.summary.batches += 1
        n = self.summary.batches
        self._mark_abandoned(items)
        self._fetch_or_release(items)
        self.log.info(f"Fetched batch {n} ({len(items)} items), API calls: {self._calls_used()}")
        counts, results = self._load_batch(items, n)
        self._record_batch(n, items, counts, results)
        return len(items)

    def _mark_abandoned(self, items: list[queue.Item]) -> None:
        """Claimed again after workers died holding it, more often than retries allow: a poison
        item must not take the next worker down too."""
        limit = max(1, self.settings.backlog_max_retries)
        for it in items:
            if it.attempts > limit:
                it.error = (f"abandoned: {it.attempts - 1} worker(s) stopped while processing it "
                            "(reclaimed after the visibility timeout)")

    def _fetch_or_release(self, items: list[queue.Item]) -> None:
        try:
            self._fetch([it for it in items if it.error is None])
        except BaseException:
            # credentials refused, interrupted, or a bug: not the items' fault — hand them back untouched
            with self.conn, self.conn.cursor() as cur:
                queue.release(cur, self.name, [it.id for it in items])
            raise
        finally:
            if self._client is not None:
                self._client.recorder.flush()   # calls visible to status/budget while we run

    def _load_batch(self, items: list[queue.Item], n: int) -> tuple[dict[str, float], list[ApplyResult]]:
        """The batch in one transaction; when it fails, its items one by one, so one bad row
        fails alone."""
        try:
            return self._load_and_finish(items)
        except psycopg2.Error as exc:
            self.conn.rollback()
            self.log.warning(f"Batch {n}: load failed ({_first_line(exc)}); loading its items one by one")
        counts: dict[str, float] = {}
        results: list[ApplyResult] = []
        for it in items:
            try:
                c, r = self._load_and_finish([it])
            except psycopg2.Error as one_exc:
                self.conn.rollback()
                it.error = f"load failed: {_first_line(one_exc)}"
                with self.conn, self.conn.cursor() as cur:
                    c = queue.finish(cur, self.name, [it], self.settings.backlog_max_retries,
                                     self.settings.backlog_retry_delay)
                r = []
            for k, v in c.items():
                counts[k] = counts.get(k, 0) + v
            results.extend(r)
        return counts, results

    def _record_batch(self, n: int, items: list[queue.Item], counts: dict[str, float],
                      results: list[ApplyResult]) -> None:
        """Add the batch to the run's summary and log it, with each item that failed."""
        ins = sum(r.inserted for r in results)
        upd = sum(r.updated for r in results)
        dele = sum(r.deleted for r in results)
        s = self.summary
        s.inserted += ins
        s.updated += upd
        s.deleted += dele
        s.items += counts.get("done", 0)
        s.held += counts.get("held", 0)
        s.retried += counts.get("retry", 0)
        s.failed += counts.get("failed", 0)
        s.requeued += counts.get("requeued", 0)
        s.detect_cost += counts.get("done_cost", 0.0)
        extra = []
        for key in ("held", "retry", "failed", "requeued"):
            if counts.get(key):
                extra.append(f"{counts[key]} {'to retry' if key == 'retry' else key}")
        tail = f" ({', '.join(extra)})" if extra else ""
        self.log.info(f"Loaded batch {n} → {ins} rows inserted, {upd} updated, {dele} deleted{tail}")
        limit = max(1, self.settings.backlog_max_retries)
        for it in items:
            if it.error is not None:
                level = "error" if it.attempts >= limit else "warning"
                getattr(self.log, level)(f"{it.resource} {it.entity_id}: {it.error} (attempt {it.attempts}/{limit})")

    def _fetch(self, items: list[queue.Item]) -> None:
        """Fetch, by id and 100 to a call, the items that came without a payload."""
        need: dict[str, list[queue.Item]] = {}
        for it in items:
            if it.action == "upsert" and it.payload is None:
                need.setdefault(it.resource, []).append(it)
        size = max(1, min(100, self.settings.page_size))
        for resource, group in need.items():
            res = BY_NAME[resource]
            for start in range(0, len(group), size):
                chunk = group[start:start + size]
                ids = ",".join(str(it.entity_id) for it in chunk)
                params = {**res.base_params(self.settings), "filter[id]": ids, "page[size]": size,
                          "page[number]": 1}
                try:
                    data = self.client.get_json(res.endpoint(self.settings), params)
                    if not isinstance(data, list):
                        raise PayloadError(f"expected a JSON list from {res.path}, got {type(data).__name__}")
                except AuthError:
                    raise
                except (ApiError, PayloadError) as exc:
                    for it in chunk:
                        it.error = f"fetch failed: {exc}"
                    continue
                found: dict[int, dict[str, Any]] = {}
                for obj in data:
                    try:
                        found[entity_id(obj, resource)] = obj
                    except (PayloadError, AttributeError):
                        continue
                for it in chunk:
                    it.fetched = found.get(int(it.entity_id))
                    if it.fetched is None:
                        it.outcome = "absent"   # the API no longer has it: delete our copy

    def _load_and_finish(self, items: list[queue.Item]) -> tuple[dict[str, float], list[ApplyResult]]:
        """The batch transaction: load every resource (parents first), delete what is gone,
        hold what lacks a parent, and mark every item — all committed together."""
        results: list[ApplyResult] = []
        with self.conn, self.conn.cursor() as cur:
            parent_requests: list[queue.NewItem] = []
            for res in RESOURCES:
                mine = [it for it in items if it.resource == res.name and it.error is None]
                if not mine:
                    continue
                results.extend(self._load_resource(cur, res, mine))
                held = [it for it in mine if it.hold is not None]
                if held:
                    parent_requests.extend(self._parents_for(cur, held))
            if parent_requests:
                queue.enqueue(cur, parent_requests)
            counts = queue.finish(cur, self.name, items, self.settings.backlog_max_retries,
                                  self.settings.backlog_retry_delay)
        return counts, results

    def _load_resource(self, cur: Any, res: BacklogResource, mine: list[queue.Item]) -> list[ApplyResult]:
        """Load one resource's items, delete those gone, and set each item's outcome or hold."""
        rows: list[tuple[Any, ...]] = []
        by_id: dict[int, queue.Item] = {}
        deletes: list[queue.Item] = []
        for it in mine:
            it.hold = None
            if it.action == "delete" or it.outcome == "absent":
                deletes.append(it)
                continue
            obj = it.payload if it.payload is not None else it.fetched
            try:
                row = res.to_row(obj)
                if int(row[0]) != int(it.entity_id):
                    raise PayloadError(f"{res.name}: payload id {row[0]} != queued id {it.entity_id}")
            except PayloadError as exc:
                it.error = f"invalid payload: {exc}"
                continue
            rows.append(row)
            by_id[int(row[0])] = it
        out = load_rows(cur, res, rows)
        results = [out.result]
        for rid, it in by_id.items():
            _set_outcome(it, rid, out)
        if res.name in PARENT_RESOURCES:
            queue.wake_children(cur, res.name, [rid for rid in by_id if rid not in out.missing])
        if deletes:
            n = delete_ids(cur, res, [int(it.entity_id) for it in deletes])
            results.append(ApplyResult(deleted=n))
            for it in deletes:
                it.outcome = "deleted" if it.action == "delete" else "absent"
        return results

    def _parents_for(self, cur: Any, held: list[queue.Item]) -> list[queue.NewItem]:
        """Parent fetches for held rows — unless that parent was already fetched after the row
        was queued and the API did not have it, in which case waiting cannot help."""
        wanted: dict[tuple[str, int], list[queue.Item]] = {}
        for it in held:
            wanted.setdefault(it.extra["parent"], []).append(it)
        gone = queue.gone_since(cur, list(wanted))
        walking = marks.detecting(cur, sorted({res for res, _ in wanted}))
        requests = []
        for key, children in wanted.items():
            for it in children:
                if key in gone and gone[key] >= it.enqueued_at:
                    it.hold = None
                    it.error = (f"parent {key[0]} {key[1]} does not exist in the API (or is past its "
                                "data_erasure_date)")
            if any(it.hold is not None for it in children):
                # a detect pass walking the parent's listing will most likely deliver it first
                requests.append(queue.NewItem(key[0], key[1], payload=None, reason="parent",
                                              delay=queue.PARENT_FETCH_DELAY if key[0] in walking else 0.0))
        return requests



def _set_outcome(it: queue.Item, rid: int, out: LoadOutcome) -> None:
    """What loading did with one item's row: held for (or failed on) a missing parent, erased,
    stale, updated or inserted."""
    if rid in out.missing:
        table, parent_res, value = out.missing[rid]
        if parent_res is None:
            it.error = (f"parent {table} {value} is not mirrored yet; run `netops sync stable`, "
                        "then `netops backlog retry --failed`")
        else:
            it.hold = f"waiting for parent {table} {value}"
            it.extra["parent"] = (parent_res, value)
    elif rid in out.erased:
        it.outcome = "erased"
    elif rid in out.stale:
        it.outcome = "stale"
    else:
        it.outcome = "updated" if rid in out.existing else "inserted"

# The stable tables the backlog tables reference (the catalog's foreign keys).
BACKLOG_PARENT_TABLES = catalog.stable_parents_of_backlog()
# The backlog resources other backlog rows wait for when held (their rows, once loaded, wake the children).
PARENT_RESOURCES = frozenset(p.resource for r in RESOURCES for p in r.parents if p.resource)


def waiting_for_stable_sync(cur: Any) -> bool:
    """True while the stable tables the backlog rows reference are all empty: before the first
    stable sync every backlog row would fail its foreign keys."""
    return mirror.all_empty(cur, BACKLOG_PARENT_TABLES)


def run_backlog(settings: Settings, dsn: str, loop: bool = False, max_batches: int | None = None,
                client: Any = None, wait_for_stable: bool = False) -> RunSummary:
    """`netops backlog run`: one worker until the queue is drained (or forever with `loop`)."""
    worker = Worker(settings, dsn, client=client)
    previous = {}
    if loop:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):  # not the main thread
                previous[sig] = signal.signal(sig, worker.request_stop)
    try:
        return worker.run(loop=loop, max_batches=max_batches, wait_for_stable=wait_for_stable)
    finally:
        worker.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
