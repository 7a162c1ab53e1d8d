"""The shared stop (netops/stop.py) and the limiter's telling of waits for budget, in one process:
a wait for the hour's budget is told to the hooks with the hour's figures, and a stop ends it at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netops import stop
from netops.api.limiter import BudgetWait, LocalLimiter, estimate_line
from netops.credentials import ApiKey, Budget


@pytest.fixture(autouse=True)
def _fresh_stop() -> Iterator[None]:
    stop.reset()
    yield
    stop.reset()


def _key(per_hour: int) -> ApiKey:
    return ApiKey("default", "cid", "secret", 100.0, per_hour, Path("/nonexistent"), "NETOPS_CLIENT_ID")


def test_a_wait_for_the_hour_is_told_and_a_stop_ends_it() -> None:
    limiter = LocalLimiter(component="detect")
    told: list[BudgetWait | None] = []
    limiter.add_wait_hook(told.append)
    key = _key(per_hour=2)
    limiter.acquire([key])
    limiter.acquire([key])          # the hour's 2 slots are spent
    outcome: list[BaseException | None] = []

    def third() -> None:
        try:
            limiter.acquire([key])
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - what the waiting thread ended with
            outcome.append(exc)

    t = threading.Thread(target=third)
    t.start()
    deadline = time.monotonic() + 5
    while not told and time.monotonic() < deadline:
        time.sleep(0.01)
    assert told and told[0] is not None
    wait = told[0]
    assert (wait.component, wait.used, wait.budget, wait.reason) == ("detect", 2, 2, "hour")
    assert wait.next_in > 3500
    assert wait.line() == "waiting for API budget: 2/2 this hour, next slot in 60 min"
    asked = time.monotonic()
    stop.request()
    t.join(2.0)
    assert not t.is_alive() and time.monotonic() - asked < 0.5
    assert isinstance(outcome[0], stop.Stopped) and outcome[0].exit_code == 128 + 15


def test_stop_sleep_and_check() -> None:
    stop.check()                      # nothing asked: no-op
    t0 = time.monotonic()
    assert stop.wait(0.05) is False and time.monotonic() - t0 >= 0.04
    stop.request(2)
    with pytest.raises(stop.Stopped) as info:
        stop.sleep(30)
    assert info.value.exit_code == 130 and stop.signal_name() == "SIGINT"
    assert stop.stopped_line().startswith("stopped by SIGINT: ")


def test_estimate_line_only_past_a_tenth_of_the_hour() -> None:
    budget = Budget(1, 2.0, 1200)
    assert estimate_line("detect", 120, budget) is None
    assert estimate_line("detect", 1002, budget) == (
        "this detect will take ~1,002 calls (≈ 84 % of the hour's 1,200): about 8 min at 2/s; "
        "Ctrl-C stops it cleanly")
    assert "the rest waits for budget" in (estimate_line("reconcile", 3000, budget) or "")
