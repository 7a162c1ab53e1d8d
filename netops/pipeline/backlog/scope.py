"""The pass over the campus-scoped resources for the campuses in scope (`NETOPS_CAMPUS_IDS`), run
by `netops backlog detect` after the queued resources: one (resource, campus) pair per connection
and client fork, at once within the shared budget (netops/pipeline/backlog/campus.py says why these
are applied by detect, not queued). A failing pair keeps its mark; the others still run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from netops.config import Settings
from netops.db import connect, marks
from netops.errors import ApiError, AuthError, SyncError
from netops.pipeline.backlog import campus, locations
from netops.pipeline.backlog.campus import BY_NAME, CampusResource, CampusResult
from netops.pipeline.backlog.resources import PayloadError


def detect_campuses(settings: Settings, dsn: str, client: Any, names: Sequence[str], settle: float,
                    log: Any) -> list[CampusResult]:
    """One pass over every (resource, campus in scope) pair, at once within the shared budget."""
    todo = [BY_NAME[n] for n in names if n in BY_NAME]
    if not todo:
        return []
    if not settings.campus_ids:
        log.info(f"Campus resources ({', '.join(r.name for r in todo)}): no campus in scope "
                 "(NETOPS_CAMPUS_IDS is empty), nothing read")
        return []
    pairs = [(r, c) for r in todo for c in settings.campus_ids]

    def one(pair: tuple[CampusResource, int]) -> CampusResult:
        res, cid = pair
        conn = connect(dsn, application_name="netops-detect")
        try:
            return _one(conn, client.fork(), settings, res, cid, timedelta(seconds=settle), log)
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=max(1, min(len(pairs), settings.max_concurrency)),
                            thread_name_prefix="netops-campus") as pool:
        return list(pool.map(one, pairs))


def _one(conn: Any, client: Any, settings: Settings, res: CampusResource, campus_id: int, settle: timedelta,
         log: Any) -> CampusResult:
    started = time.monotonic()
    key = marks.scoped(res.name, campus_id)
    calls_before = client.calls
    result = CampusResult(key, None)
    try:
        if res.windowed:
            locations.window_pass(conn, client, settings, res, campus_id, settle, result)
        else:
            campus.changes_pass(conn, client, settings, res, campus_id, settle, result)
    except AuthError:
        raise
    except (ApiError, SyncError, PayloadError) as exc:
        conn.rollback()
        result.error = str(exc)
        log.error(f"Detect {key} failed, mark unchanged: {exc}")
    result.calls = client.calls - calls_before
    result.seconds = time.monotonic() - started
    client.recorder.flush()
    if result.invalid:
        result.notes.append(f"{result.invalid:,} row(s) that cannot be mapped skipped")
    if result.error is None:
        log.info(f"Detect {key}: {'since ' + result.since if result.since else 'nothing settled'}, "
                 f"{result.calls} API call(s), {result.seen:,} rows seen, {result.applied:,} written, "
                 f"{result.deleted:,} deleted" + "".join(f", {n}" for n in result.notes)
                 + f", mark → {result.mark or 'none'}")
    return result
