"""Who may send the next API call, and on which application key.

The API's budget is per application key (docs/api.md), and many netops processes, on one box or
several pointed at one database, spend it at once. So every call *claims its slot* in the key's
per-second and per-hour windows in PostgreSQL before it is sent (`netops.claim_api_slot()`, SQL
in netops/db/ratelimit.py): the claim holds the key's row lock while it checks both windows and
inserts the slot, so the windows never hold more than the limits however many processes claim,
and they use the database's clock, so boxes with drifting clocks still agree.

What the claim guarantees, per key: starts at least 1/limit apart, at most `limit` slots in any
window of 1 s + NETOPS_RATE_WINDOW_MARGIN as the API counts them, at most the hourly limit in any
sliding hour.

Where a slot counts: the API counts a call when it ARRIVES, and the delay from claim to arrival
varies with load (docs/deploy.md has the figures). So each answered call *closes* its slot
(`complete`): the slot moves to the latest moment the API can have counted it — its answer's
headers, less the fastest round trip any process has seen on the key — and every process's
windows see it there. A slot not answered yet counts at its claim plus the key's learned spread
(the largest recent claim-to-arrival delay, shared on the key's row; see ratelimit.close_slot).
The margin covers only what that estimate cannot see. A 429 is settled for every process:
Retry-After (+ jitter) is stored on the key (`blocked_until`) and the key's window widens a
little, fading as calls close.

Limits: each key's configured budget is the ceiling; the API's `X-Secondly-RateLimit-Limit` /
`X-Hourly-RateLimit-Limit` headers can only lower it (stored on the key's row, so every process
adopts them).

Without a database (`dsn` None: unit tests and one-off calls) the same rules run in this process
only (`LocalLimiter`, one `Pacer` per key).

Waiting: every sleep for a slot ends at once on SIGINT/SIGTERM (netops/stop.py raises Stopped),
so a job waiting 50 min for the hour's budget still stops within the 2 s every long command
promises. A wait longer than WAIT_NOTICE_SECONDS is a wait for *budget*, not pacing: the limiter
tells its hooks (`add_wait_hook`: the job's progress line and log; the caller keeps that time out
of any phase's fetching) and, shared, records it in netops.api_waits, where status names the job.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from netops import stop
from netops.config import DEFAULT_RATE_WINDOW_MARGIN
from netops.credentials import ApiKey, Budget
from netops.errors import AuthError


class KeysExhausted(AuthError):
    """Every configured key is set aside (its secret refused): nothing can call the API."""


class Pacer:
    """Keeps call starts under one key's per-second and per-hour budgets, across threads of ONE
    process (the fallback without a database, and the shape of the shared claim).

    Every rule is checked against the moments calls *actually* start, recorded under the lock
    just before the request goes out: a thread that wakes late (GIL, a busy core) cannot
    squeeze the next call closer than allowed. Starts are spaced by 1/per_second, and no more
    than per_second of them fall in any window of one second plus a small margin — the shape of
    the API's own per-second window, so arrival jitter cannot tip it into a 429.
    """

    # seconds added to the one-second window: covers one process's own claim-to-arrival delay
    # (a large page decoded while other calls go out; BENCHMARKS.md). The pacer records starts,
    # not arrivals (only the shared limiter closes slots where the API counted them), so it
    # keeps at least this margin whatever NETOPS_RATE_WINDOW_MARGIN says.
    WINDOW_MARGIN = 0.05

    def __init__(self, per_second: float, per_hour: int, recent: list[float] | None = None,
                 margin: float | None = None) -> None:
        self.per_second = per_second
        self.per_hour = per_hour
        self.margin = self.WINDOW_MARGIN if margin is None else max(margin, self.WINDOW_MARGIN)
        self._lock = threading.Lock()
        self._next_start = 0.0
        self._second: collections.deque[float] = collections.deque()
        self._hour: collections.deque[float] = collections.deque(sorted(recent or []))
        self.waited_for_hour = 0.0
        self._not_before = 0.0  # set by Retry-After: nobody starts before this moment

    def interval(self) -> float:
        return 1.0 / self.per_second

    def adopt_limits(self, secondly: int | None, hourly: int | None) -> None:
        """The API's headers win when they are stricter than the configured budget."""
        with self._lock:
            if secondly and secondly < self.per_second:
                self.per_second = float(secondly)
            if hourly and hourly < self.per_hour:
                self.per_hour = hourly

    def hold_until(self, moment: float) -> None:
        with self._lock:
            self._not_before = max(self._not_before, moment)

    def try_acquire(self) -> tuple[float, float]:
        """(0, start) when a start was recorded now, else (seconds to wait, 0)."""
        window = 1.0 + self.margin
        with self._lock:
            now = time.time()
            while self._hour and self._hour[0] <= now - 3600:
                self._hour.popleft()
            while self._second and self._second[0] <= now - window:
                self._second.popleft()
            earliest = max(self._next_start, self._not_before)
            burst = max(1, int(self.per_second))
            if len(self._second) >= burst:
                earliest = max(earliest, self._second[-burst] + window)
            hour_bound = False
            if len(self._hour) >= self.per_hour:
                oldest_that_matters = self._hour[len(self._hour) - self.per_hour] + 3600
                hour_bound = oldest_that_matters > earliest
                earliest = max(earliest, oldest_that_matters)
            if earliest <= now:
                self._second.append(now)
                self._hour.append(now)
                self._next_start = now + self.interval()
                return 0.0, now
            wait = earliest - now
            if hour_bound:
                self.waited_for_hour += wait
            return wait, 0.0

    def acquire(self) -> float:
        """Block until this caller may start a call; returns the start moment it recorded."""
        while True:
            wait, started = self.try_acquire()
            if wait <= 0:
                return started
            stop.sleep(min(wait, _MAX_SLEEP))


class Limiter(Protocol):
    """What ApiClient needs of a limiter (LocalLimiter in-process, PgLimiter shared)."""

    def acquire(self, keys: Sequence[ApiKey]) -> ApiKey: ...
    def acquire_key(self, key: ApiKey) -> None: ...
    def adopt_limits(self, key: ApiKey, secondly: int | None, hourly: int | None) -> None: ...
    def settle_429(self, key: ApiKey, pause: float, reason: str) -> None: ...
    def complete(self, key: ApiKey, since_headers: float, rtt: float | None,
                 api_in_window: int | None = None) -> None: ...
    def claimed_at(self) -> float | None: ...
    def overdue(self, key: ApiKey) -> bool: ...
    def release(self, key: ApiKey) -> None: ...
    def set_aside(self, key: ApiKey, reason: str) -> None: ...
    def is_set_aside(self, key: ApiKey) -> bool: ...
    def close(self) -> None: ...
    def add_wait_hook(self, hook: WaitHook) -> None: ...


def _rotated(keys: Sequence[ApiKey], counter: itertools.count) -> list[ApiKey]:
    """The keys starting at the next one in turn: successive calls start their search on
    different keys, so calls spread over every key with budget left."""
    if len(keys) <= 1:
        return list(keys)
    start = next(counter) % len(keys)
    return list(keys[start:]) + list(keys[:start])


def _all_aside(keys: Sequence[ApiKey]) -> KeysExhausted:
    names = ", ".join(k.label for k in keys)
    return KeysExhausted(f"every application key is set aside (its secret refused by the API): {names}; fix the "
                         "secrets (NETOPS_CLIENT_SECRET*, NETOPS_CREDENTIALS_FILE) — `netops status` lists the keys",
                         endpoint="/oauth/token", status=401)


def _first_free(keys: Sequence[ApiKey], counter: itertools.count,
                try_key: Callable[[ApiKey], float | None], waited: Any = None,
                notice: Callable[[float | None, float], None] | None = None) -> ApiKey:
    """The one key-rotation loop of both limiters: try each key in turn (`try_key` answers 0 when
    it took a slot, None when the key is set aside, else the seconds until it may have one);
    with none free, sleep until the soonest (plus a hair of jitter, so processes that computed
    the same free moment do not all ask at once) and try again. `waited.waited` (when given)
    accumulates the sleeps. The sleeps end at once on a stop (netops/stop.py: Stopped). A wait
    longer than WAIT_NOTICE_SECONDS is told to `notice(seconds to the next slot, waited so far)`,
    and its end to `notice(None, waited)`: the job says it waits for budget, status shows it."""
    began = time.monotonic()
    noticed = False
    while True:
        waits = []
        for k in _rotated(keys, counter):
            wait = try_key(k)
            if wait is None:
                continue
            if wait <= 0:
                if noticed and notice is not None:
                    notice(None, time.monotonic() - began)
                return k
            waits.append(wait)
        if not waits:
            raise _all_aside(keys)
        so_far = time.monotonic() - began
        if notice is not None and (min(waits) > WAIT_NOTICE_SECONDS or so_far > WAIT_NOTICE_SECONDS):
            noticed = True
            notice(min(waits), so_far)
        pause = min(min(waits), _MAX_SLEEP) + random.uniform(0.0, 0.002)
        if waited is not None:
            waited.waited += pause
        stop.sleep(pause)


#: A wait for a slot longer than this is a wait for *budget* (the hour's spent, or a 429's
#: Retry-After), told to the job's operator; shorter ones are the per-second pacing itself.
WAIT_NOTICE_SECONDS = 3.0


@dataclass(frozen=True)
class BudgetWait:
    """A job waiting for API budget, as its progress line, its log and status say it."""

    component: str
    used: int | None       # slots in the last hour on the keys it may use
    budget: int | None     # their hourly budget, summed
    next_in: float         # seconds until the soonest slot
    waited: float          # seconds waited so far
    reason: str = "hour"   # 'hour' | 'blocked' (a 429's Retry-After)

    def line(self) -> str:
        """`waiting for API budget: 1,200/1,200 this hour, next slot in 14 min`."""
        mins = self.next_in / 60.0
        when = f"{mins:.0f} min" if mins >= 1.5 else f"{self.next_in:.0f} s"
        used = "" if self.used is None or self.budget is None else f"{self.used:,}/{self.budget:,} this hour, "
        why = "" if self.reason == "hour" else " (a 429's Retry-After)"
        return f"waiting for API budget{why}: {used}next slot in {when}"


#: What a limiter calls while a job waits for budget (BudgetWait) and when the wait ends (None).
WaitHook = Callable[[BudgetWait | None], None]


#: Longest single sleep while waiting for a slot: a key unblocked or set aside by another process
#: is noticed within this long even when the computed wait (an hour window) is longer.
_MAX_SLEEP = 5.0

#: How much later than the key's learned spread a claimed call may go out before its slot is given
#: back and claimed again (PgLimiter.overdue): the fastest path from claim to send (the claim's
#: own answer, building the request) takes a few milliseconds and must not trigger it.
RECLAIM_GRACE = 0.01


def estimate_line(what: str, calls: int, budget: Budget) -> str | None:
    """`this detect will take ~1,002 calls (≈ 84 % of the hour's 1,200): about 8 min at 2/s; Ctrl-C
    stops it cleanly`, or None when the work takes at most a tenth of the hour's budget (every
    key's summed). Past the hour's budget the hours it waits for budget are the bound, not the pace."""
    if calls <= budget.per_hour / 10:
        return None
    seconds = calls / max(0.1, budget.per_second)
    how = f"about {seconds / 60:.0f} min at {budget.per_second:g}/s"
    if calls > budget.per_hour:
        hours = max(seconds, (calls / budget.per_hour - 1) * 3600) / 3600
        how = f"about {hours:.1f} h: more than the hour's budget, the rest waits for budget"
    return (f"this {what} will take ~{calls:,} calls (≈ {100 * calls / budget.per_hour:.0f} % of the hour's "
            f"{budget.per_hour:,}): {how}; Ctrl-C stops it cleanly")


class _WaitReporter:
    """Both limiters' telling of a wait for budget: to the hooks (the job's progress line and
    log) and, for the shared limiter, to netops.api_waits (status). At most every REPORT_EVERY
    seconds, and the end once no thread of this limiter waits any more."""

    REPORT_EVERY = 5.0

    def _init_waits(self, component: str) -> None:
        self.component = component
        self._hooks: list[WaitHook] = []
        self._wait_lock = threading.Lock()
        self._waiters: set[int] = set()
        self._last_report = 0.0

    def add_wait_hook(self, hook: WaitHook) -> None:
        """`hook(BudgetWait)` while a job waits for budget, `hook(None)` when the wait ends."""
        self._hooks.append(hook)

    def _notice(self, keys: Sequence[ApiKey], next_in: float | None, waited: float) -> None:
        me = threading.get_ident()
        with self._wait_lock:
            if next_in is None:
                self._waiters.discard(me)
                if self._waiters or not self._last_report:
                    return
                self._last_report = 0.0
            else:
                self._waiters.add(me)
                now = time.monotonic()
                if now - self._last_report < self.REPORT_EVERY:
                    return
                self._last_report = now
        if next_in is None:
            with contextlib.suppress(Exception):  # best effort: a row left behind goes with its connection
                self._clear_wait()
            self._tell(None)
            return
        used, budget, reason = None, None, "hour"
        with contextlib.suppress(Exception):  # the wait is told even when its row cannot be written
            used, budget, reason = self._budget_now(keys, next_in)
        self._tell(BudgetWait(self.component, used, budget, next_in, waited, reason))

    def _tell(self, wait: BudgetWait | None) -> None:
        for hook in list(self._hooks):
            with contextlib.suppress(Exception):  # a progress line must not break the call path
                hook(wait)

    def _budget_now(self, keys: Sequence[ApiKey], next_in: float) -> tuple[int | None, int | None, str]:
        raise NotImplementedError

    def _clear_wait(self) -> None:
        """Nothing stored (the in-process limiter)."""


class LocalLimiter(_WaitReporter):
    """The claim's rules in this process only (no database): one Pacer per key."""

    def __init__(self, margin: float = DEFAULT_RATE_WINDOW_MARGIN, component: str = "sync") -> None:
        self._init_waits(component)
        self.margin = margin
        self._pacers: dict[str, Pacer] = {}
        self._aside: set[str] = set()
        self._lock = threading.Lock()
        self._rr = itertools.count()

    def pacer(self, key: ApiKey) -> Pacer:
        with self._lock:
            p = self._pacers.get(key.label)
            if p is None:
                p = self._pacers[key.label] = Pacer(key.per_second, key.per_hour, margin=self.margin)
            return p

    @property
    def waited_for_hour(self) -> float:
        return sum(p.waited_for_hour for p in self._pacers.values())

    def acquire(self, keys: Sequence[ApiKey]) -> ApiKey:
        def try_key(k: ApiKey) -> float | None:
            return None if k.label in self._aside else self.pacer(k).try_acquire()[0]

        return _first_free(keys, self._rr, try_key, notice=lambda n, w: self._notice(keys, n, w))

    def _budget_now(self, keys: Sequence[ApiKey], next_in: float) -> tuple[int | None, int | None, str]:
        pacers = [self.pacer(k) for k in keys]
        blocked = any(p._not_before > time.time() for p in pacers)
        return (sum(len(p._hour) for p in pacers), sum(p.per_hour for p in pacers),
                "blocked" if blocked else "hour")

    def acquire_key(self, key: ApiKey) -> None:
        self.pacer(key).acquire()

    def adopt_limits(self, key: ApiKey, secondly: int | None, hourly: int | None) -> None:
        self.pacer(key).adopt_limits(secondly, hourly)

    def settle_429(self, key: ApiKey, pause: float, reason: str) -> None:
        self.pacer(key).hold_until(time.time() + pause)

    def complete(self, key: ApiKey, since_headers: float, rtt: float | None,
                 api_in_window: int | None = None) -> None:
        """Nothing to move: in one process the claim-to-arrival delay is the process's own, and the
        pacer's margin covers it (only the shared limiter closes slots)."""

    def claimed_at(self) -> float | None:
        """No slot is claimed anywhere (the pacer records starts): the caller measures from its own clock."""
        return None

    def overdue(self, key: ApiKey) -> bool:
        """Never: the pacer records starts, and its margin covers this process's own delays."""
        return False

    def release(self, key: ApiKey) -> None:
        """Nothing to give back (see overdue)."""

    def set_aside(self, key: ApiKey, reason: str) -> None:
        self._aside.add(key.label)

    def is_set_aside(self, key: ApiKey) -> bool:
        return key.label in self._aside

    def close(self) -> None:
        pass


class PgLimiter(_WaitReporter):
    """The shared limiter: every claim is one statement on this process's own autocommit
    connection (`synchronous_commit off`: a slot lost in a database crash costs nothing — the
    claim only has to be visible to the other claimers, which it is at commit)."""

    def __init__(self, dsn: str, margin: float = DEFAULT_RATE_WINDOW_MARGIN, component: str = "sync") -> None:
        self._init_waits(component)
        self._blocked: set[str] = set()  # keys whose last claim answered 'blocked' (a 429's pause)
        self.dsn = dsn
        self.margin = margin
        self._conn: Any = None
        self._db_lock = threading.Lock()
        self._rr = itertools.count()
        self._aside: set[str] = set()
        self._checked: set[str] = set()
        self._limits_seen: dict[str, tuple[int | None, int | None]] = {}
        self.waited = 0.0  # seconds this process spent waiting for slots
        self.claims = 0  # round trips made (claimed or not)
        self.reclaims = 0  # slots given back because their call would have gone out too late
        self._slot = threading.local()  # the slot this thread claimed last (closed by complete())
        # per key: when this process should next ask for a slot (monotonic). A 'wait' answer says
        # when the key can have one; asking before that, from every thread, only costs round
        # trips under one lock and keeps the interpreter busy while calls wait to go out.
        self._next_ask: dict[str, float] = {}
        self._spread: dict[str, float] = {}  # per key: the spread the last closed slot reported

    def _cursor(self) -> Any:
        if self._conn is None or self._conn.closed:
            from netops.db.ratelimit import connect_limiter

            self._conn = connect_limiter(self.dsn)
        return self._conn.cursor()

    def _claim(self, key: ApiKey) -> tuple[Any, float]:
        """One claim round trip; returns (the answer, the monotonic moment it was sent — the
        slot's `at` is decided just after, so a call's lateness is measured from here). No round
        trip while an earlier answer in this process says the key has no slot yet."""
        from netops.db.ratelimit import Claim, claim

        with self._db_lock:
            sent = time.monotonic()
            later = self._next_ask.get(key.label, 0.0) - sent
            if later > 0:  # another thread's claim, made while this one waited for the lock, says so
                return Claim("wait", later), sent
            self.claims += 1
            with self._cursor() as cur:
                return claim(cur, key.label, key.client_id, key.fingerprint, key.per_second, key.per_hour,
                             self.margin), sent

    def acquire(self, keys: Sequence[ApiKey]) -> ApiKey:
        """Claim a slot on the first key (in turn) that has one now; else sleep until the soonest
        one can, and ask again. Keys set aside (by any process) are skipped. The claimed slot's
        id is kept for this thread: `complete()` moves it once the call is answered."""
        def try_key(k: ApiKey) -> float | None:
            if k.label in self._aside:
                return None
            c, sent = self._claim(k)
            if c.state == "claimed":
                self._slot.id, self._slot.sent = c.slot_id, sent
                self._next_ask[k.label] = sent + 1.0 / k.per_second  # the key's pacing, at the least
                return 0.0
            if c.state == "set_aside":
                self._aside.add(k.label)
                return None
            self._next_ask[k.label] = max(self._next_ask.get(k.label, 0.0), sent + min(c.wait_seconds, _MAX_SLEEP))
            (self._blocked.add if c.state == "blocked" else self._blocked.discard)(k.label)
            return c.wait_seconds

        return _first_free(keys, self._rr, try_key, self, notice=lambda n, w: self._notice(keys, n, w))

    def _budget_now(self, keys: Sequence[ApiKey], next_in: float) -> tuple[int | None, int | None, str]:
        """Write this connection's wait row; the hour's use and budget of `keys` come back."""
        from netops.db.ratelimit import record_wait

        reason = "blocked" if any(k.label in self._blocked for k in keys) else "hour"
        with self._db_lock, self._cursor() as cur:
            used, budget = record_wait(cur, self.component, [k.label for k in keys],
                                       sum(k.per_hour for k in keys), reason, next_in)
        return used, budget, reason

    def _clear_wait(self) -> None:
        from netops.db.ratelimit import end_wait

        with self._db_lock, self._cursor() as cur:
            end_wait(cur)

    def claimed_at(self) -> float | None:
        """When this thread's current slot was claimed (monotonic: the successful claim's round
        trip was sent then), None without one. A call's lateness — what feeds the key's spread —
        is measured from here, never from before the waiting for a free slot: a call that waited
        its turn reached the API on time, and counting the wait as lateness would make every
        process count calls in flight late."""
        return getattr(self._slot, "sent", None) if getattr(self._slot, "id", None) is not None else None

    def overdue(self, key: ApiKey) -> bool:
        """True when this thread's claimed call has not gone out yet and is later than the key's
        learned spread allows: every process counts an in-flight slot at its claim plus that
        spread, so a call sent later still (the thread waited for the interpreter, a busy core)
        would reach the API closer to the calls claimed after it than their windows assumed."""
        sent = getattr(self._slot, "sent", None)
        if getattr(self._slot, "id", None) is None or sent is None:
            return False
        return time.monotonic() - sent > self._spread.get(key.label, 0.0) + RECLAIM_GRACE

    def release(self, key: ApiKey) -> None:
        """Give back this thread's claimed, unsent slot (the caller claims a new one)."""
        slot_id, self._slot.id = getattr(self._slot, "id", None), None
        if slot_id is None:
            return
        from netops.db.ratelimit import release_slot

        self.reclaims += 1
        self._next_ask.pop(key.label, None)
        with self._db_lock, self._cursor() as cur:
            release_slot(cur, key.label, slot_id)

    def complete(self, key: ApiKey, since_headers: float, rtt: float | None,
                 api_in_window: int | None = None) -> None:
        """This thread's last claimed call was answered: tell every process where the API
        counted it, and how many calls the API had in its window then. Best effort: a lost
        close leaves the slot counted at its claim plus the key's spread."""
        slot_id, self._slot.id = getattr(self._slot, "id", None), None
        if slot_id is None:
            return
        from netops.db.ratelimit import close_slot

        with self._db_lock, self._cursor() as cur:
            spread = close_slot(cur, key.label, slot_id, since_headers, rtt, api_in_window)
        if spread is not None:
            self._spread[key.label] = spread

    def acquire_key(self, key: ApiKey) -> None:
        """Claim a slot on this very key (a token request must use its own key's budget)."""
        while True:
            c, sent = self._claim(key)
            if c.state == "claimed":
                self._slot.id, self._slot.sent = c.slot_id, sent  # closed by complete() like any call
                return
            if c.state == "set_aside":
                return  # a set-aside key's token request is refused anyway; do not wait forever
            stop.sleep(min(c.wait_seconds, _MAX_SLEEP) + random.uniform(0.0, 0.002))

    def adopt_limits(self, key: ApiKey, secondly: int | None, hourly: int | None) -> None:
        """Store what the headers announced, once per change (not on every call)."""
        if (secondly, hourly) == self._limits_seen.get(key.label) or (secondly is None and hourly is None):
            return
        self._limits_seen[key.label] = (secondly, hourly)
        from netops.db.ratelimit import adopt_limits

        with self._db_lock, self._cursor() as cur:
            adopt_limits(cur, key.label, key.client_id, secondly, hourly)

    def settle_429(self, key: ApiKey, pause: float, reason: str) -> None:
        from netops.db.ratelimit import block

        with self._db_lock, self._cursor() as cur:
            block(cur, key.label, key.client_id, pause, reason)

    def set_aside(self, key: ApiKey, reason: str) -> None:
        from netops.db.ratelimit import set_aside

        self._aside.add(key.label)
        with self._db_lock, self._cursor() as cur:
            set_aside(cur, key.label, key.client_id, key.fingerprint, reason)

    def is_set_aside(self, key: ApiKey) -> bool:
        """Asked of the database once per key (a key another process set aside is not even
        tried); after that this process learns it from its own claims ('set_aside' answers)."""
        if key.label in self._aside:
            return True
        if key.label in self._checked:
            return False
        from netops.db.ratelimit import is_set_aside

        with self._db_lock, self._cursor() as cur:
            aside = bool(is_set_aside(cur, key.label, key.fingerprint))
        self._checked.add(key.label)
        if aside:
            self._aside.add(key.label)
        return aside

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
