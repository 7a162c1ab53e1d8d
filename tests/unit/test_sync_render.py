"""`netops sync stable`'s table lists the phases in foreign-key order (the order they load in).

Phases are named by their table since the catalog (migration 009): sorting by name, which once
gave that order through the `NN_` prefixes, now gives the alphabet (achievements first).
"""

from __future__ import annotations

import pytest

from netops.cli.sync import _render
from netops.pipeline.stable.phases import PHASE_NAMES
from netops.pipeline.stable.sync import PhaseReport, SyncReport


def test_phases_are_printed_in_foreign_key_order_pulled_and_unchanged_interleaved(
        capsys: pytest.CaptureFixture[str]) -> None:
    names = sorted(PHASE_NAMES)  # the alphabet, which is not the load order
    assert list(names) != list(PHASE_NAMES)
    pulled = [PhaseReport(phase=n, table=n, status="success") for n in names[::2]]
    unchanged = [PhaseReport(phase=n, table=n, status="unchanged") for n in names[1::2]]
    _render(SyncReport(run_id="r", phases=pulled, unchanged=unchanged))
    lines = capsys.readouterr().out.splitlines()[1:]
    printed = [ln.split()[0] for ln in lines if ln.split() and ln.split()[0] in PHASE_NAMES]
    assert printed == list(PHASE_NAMES)
