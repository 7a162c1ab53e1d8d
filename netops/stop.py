"""One stop mechanism for every long-running command: SIGINT or SIGTERM sets one event; the
limiter's waits, the pagers, the lanes and the worker loops check it and end their work; the
command says what it left and exits within STOP_GRACE seconds whatever a thread is blocked in.

Why an event and not KeyboardInterrupt: Python raises KeyboardInterrupt in the main thread only,
while the work (and the waits: a slot of an hour's budget can be 50 min away) runs in worker
threads the interpreter joins before it exits — a `backlog detect` once ran 703 s past Ctrl-C.
The event reaches every thread; a thread in an HTTP read (up to NETOPS_HTTP_TIMEOUT) cannot be
interrupted, so `guard()` also arms a backstop: STOP_GRACE seconds after the signal the process
exits (its uncommitted transactions roll back), printing the command's own "stopped:" line.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

#: Seconds from the signal to the process's end at the latest (the issue's bound is 2 s).
STOP_GRACE = 1.5

_EVENT = threading.Event()
_state: dict[str, Any] = {"signum": None, "left": None, "installed": False, "exiting": False, "generation": 0}


class Stopped(BaseException):
    """Raised where work notices the stop; the command's edge turns it into its "stopped:" line.
    A BaseException, like KeyboardInterrupt: the pipeline's `except Exception` (which records a
    failure, retries an item) cannot mistake a stop for a failure."""

    def __init__(self, message: str = "stopped", signum: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.signum = signum if signum is not None else (_state["signum"] or signal.SIGINT)
        self.exit_code = 128 + int(self.signum)  # what a shell reports for a process ended by the signal


def requested() -> bool:
    """True once SIGINT/SIGTERM arrived (or `request()` was called)."""
    return _EVENT.is_set()


def request(signum: int = signal.SIGTERM) -> None:
    """Ask every loop and wait to stop (the signal handler; also usable from code)."""
    if _state["signum"] is None:
        _state["signum"] = signum
    _EVENT.set()


def signal_name() -> str:
    signum = _state["signum"] or signal.SIGINT
    return signal.Signals(signum).name


def check() -> None:
    """Raise Stopped when a stop was requested (between pages, items, batches)."""
    if _EVENT.is_set():
        raise Stopped(f"stopped by {signal_name()}")


def sleep(seconds: float) -> None:
    """time.sleep that ends at once on a stop, raising Stopped (every wait for budget uses it)."""
    if _EVENT.wait(max(0.0, seconds)):
        check()


def wait(seconds: float) -> bool:
    """Sleep up to `seconds`; True when a stop ended it early (loops that end on their own)."""
    return _EVENT.wait(max(0.0, seconds))


def set_left(describe: Callable[[], str] | None) -> None:
    """What the command would leave if stopped now (the backstop prints it when the command
    cannot say so itself in time)."""
    _state["left"] = describe


def left() -> str:
    describe = _state["left"]
    if describe is None:
        return "nothing half-written: uncommitted work rolls back"
    try:
        return describe()
    except Exception:  # noqa: BLE001 - the backstop must not fail on a description
        return "uncommitted work rolls back"


def stopped_line() -> str:
    return f"stopped by {signal_name()}: {left()}"


def _backstop(generation: int) -> None:
    """STOP_GRACE after the signal: whatever still runs, the process ends now — unless the
    command it was armed for (its `generation`) ended, or is ending, on its own."""
    _EVENT.wait(None)
    time.sleep(STOP_GRACE)
    if not _state["installed"] or _state.get("exiting") or _state["generation"] != generation:
        return
    _state["exiting"] = True
    try:
        sys.stderr.write(stopped_line() + "\n")
        sys.stderr.flush()
        sys.stdout.flush()
    finally:
        os._exit(128 + int(_state["signum"] or signal.SIGINT))


def _handler(signum: int, _frame: Any) -> None:
    request(signum)


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Around a long command (installed at the CLI edge): SIGINT and SIGTERM set the stop event
    (a second one changes nothing) and the backstop is armed; the previous handlers come back
    after. Only in the main thread (signals are delivered there); elsewhere nothing changes."""
    if _state["installed"] or threading.current_thread() is not threading.main_thread():
        yield
        return
    reset()   # a stop asked of an earlier command in this process (tests) is not this one's
    previous = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    _state["installed"] = True
    threading.Thread(target=_backstop, args=(_state["generation"],), name="netops-stop-backstop",
                     daemon=True).start()
    try:
        yield
    finally:
        _state["installed"] = False
        _state["generation"] += 1
        for s, h in previous.items():
            signal.signal(s, h)


def exit_now(line: str, code: int | None = None) -> None:
    """The command said what it left: print it and end at once (threads blocked in an HTTP read
    would otherwise hold the interpreter's exit). `code` None: 128 + the signal."""
    _state["exiting"] = True
    sys.stdout.flush()
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    os._exit(128 + int(_state["signum"] or signal.SIGINT) if code is None else code)


def reset() -> None:
    """Forget a stop (a new command in the same process, tests); disarms earlier backstops."""
    _EVENT.clear()
    _state.update(signum=None, left=None, exiting=False, generation=_state["generation"] + 1)
