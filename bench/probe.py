"""Prototype of a no-change probe for the stable sync (benchmark 2), measured, not shipped.

One cheap call per resource tells whether its full pull can be skipped:
- `GET <index>?page[size]=1` returns `X-Total` (the row count) for the price of one call;
- where the resource has `updated_at` (projects), `sort=-updated_at&page[size]=1` also returns
  the newest `updated_at`, so an edit, an insert (new rows are stamped now) or a delete (the
  count drops) shows;
- the single cursus object is its own probe (fetching it is one call either way).

What a probe cannot see — and why the nightly run must stay a full pull (a reconciliation):
- edits to resources without `updated_at` (campuses, coalitions, achievements: only the count is
  visible), server-computed values that change without moving `updated_at` (42-api.md), and a
  delete balanced by an insert on a count-only resource;
- nested lists (a project's campus links and sessions) move the project's `updated_at` only if
  the API touches the parent, which is unconfirmed.
So the safe design: frequent runs `--if-changed` (probe, pull only what moved), and a full pull
on a schedule (the nightly one) that catches everything a probe misses.
"""

from __future__ import annotations

from typing import Any

from netops.api.client import ApiClient
from netops.config import Settings
from netops.db import connect


def _ts(value: Any) -> str | None:
    if value is None:
        return None
    from datetime import datetime, timezone

    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def probe_pass(settings: Settings, dsn: str, per_campus: bool = True) -> list[dict[str, Any]]:
    """Probe every stable resource; return one verdict each: calls spent, changed or not."""
    conn = connect(dsn)
    out: list[dict[str, Any]] = []
    client = ApiClient(settings, dsn=None, component="probe")
    try:
        with conn, conn.cursor() as cur:

            def mirror(sql_text: str, params: tuple[Any, ...] = ()) -> Any:
                cur.execute(sql_text, params)
                return cur.fetchone()

            def count_probe(name: str, path: str, params: dict[str, Any], table: str, where: str = "",
                            wparams: tuple[Any, ...] = ()) -> dict[str, Any]:
                resp = client.request(path, {**params, "page[size]": 1, "page[number]": 1})
                total = int(resp.headers.get("X-Total", -1))
                have = mirror(f"SELECT count(*) FROM {table} {where}", wparams)[0]
                return {"resource": name, "calls": 1, "changed": total != have, "api": total, "mirror": have}

            c0 = client.calls
            client.get_json(f"/v2/cursus/{settings.cursus_id}")
            out.append({"resource": "cursus", "calls": client.calls - c0, "changed": True,
                        "note": "single object: the probe is the fetch"})
            out.append(count_probe("campuses", "/v2/campus", {"filter[active]": "true", "filter[public]": "true"},
                                   "campuses"))
            resp = client.request(f"/v2/cursus/{settings.cursus_id}/projects",
                                  {"sort": "-updated_at", "page[size]": 1, "page[number]": 1})
            rows = resp._netops_json  # type: ignore[attr-defined]
            total = int(resp.headers.get("X-Total", -1))
            have, newest = mirror("SELECT count(*), max(updated_at) FROM projects")
            api_newest = _ts(rows[0].get("updated_at")) if rows else None
            out.append({"resource": "projects (+campus_projects, project_sessions)", "calls": 1,
                        "changed": total != have or api_newest != _ts(newest),
                        "api": [total, api_newest], "mirror": [have, _ts(newest)]})
            out.append(count_probe("coalitions", "/v2/coalitions", {}, "coalitions"))
            out.append(count_probe("achievements", "/v2/achievements", {}, "achievements"))
            if per_campus:
                from concurrent.futures import ThreadPoolExecutor

                cur.execute("SELECT c.id, count(ca.campus_id) FROM campuses c LEFT JOIN campus_achievements ca "
                            "ON ca.campus_id = c.id GROUP BY c.id ORDER BY c.id")
                have_by = dict(cur.fetchall())

                def total_of(cid: int) -> int:
                    r = client.request(f"/v2/campus/{cid}/achievements", {"page[size]": 1, "page[number]": 1})
                    return int(r.headers.get("X-Total", -1))

                c0 = client.calls
                with ThreadPoolExecutor(max_workers=settings.max_concurrency) as pool:
                    totals = dict(zip(have_by, pool.map(total_of, have_by), strict=True))
                changed = [cid for cid, n in totals.items() if n != have_by[cid]]
                out.append({"resource": "campus_achievements (one probe per campus)", "calls": client.calls - c0,
                            "changed": bool(changed), "campuses_changed": changed})
    finally:
        client.close()
        conn.close()
    return out
