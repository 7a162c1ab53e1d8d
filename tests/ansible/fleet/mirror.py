"""Compare a host's mirror with what the fleet's simulator says a correct mirror holds.

Used by run.sh (steps 11 and 12); stdlib only, run with the controller's python3.
    mirror.py sql URL [TABLES]            SQL printing `table|rows|md5 of the sorted keys` per mirror table
    mirror.py compare URL FILE [TABLES]   compare that SQL's output (FILE) with the simulator at URL: one
                                          line per table that differs, exit 1 when any does
TABLES (comma-separated) limits both to the tables a host has: an older release's box (fleet step
11) mirrors fewer tables than this checkout's simulator expects.
The keys are rendered the same way on both sides (`k1,k2` per row, rows joined by `;` in key
order), so equal digests mean the same set of rows, not just the same count.
"""

from __future__ import annotations

import hashlib
import json
import sys
import urllib.request
from typing import Any


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=60) as answer:
        return json.load(answer)


def _tables(url: str, only: set[str] | None = None) -> list[str]:
    return sorted(t for t in _get(f"{url}/_sim/expected") if only is None or t in only)


def sql(url: str, only: set[str] | None = None) -> str:
    parts = []
    for table in _tables(url, only):
        pk = _get(f"{url}/_sim/expected/{table}?values=0")["primary_key"]
        cols = ", ".join(pk)
        parts.append(f"SELECT '{table}', count(*), md5(coalesce(string_agg(concat_ws(',', {cols}), ';' "
                     f"ORDER BY {cols}), '')) FROM public.{table}")
    return "\n UNION ALL ".join(parts) + ";"


def expected(url: str, only: set[str] | None = None) -> dict[str, str]:
    out = {}
    for table in _tables(url, only):
        keys = _get(f"{url}/_sim/expected/{table}?values=0")["keys"]
        text = ";".join(",".join(str(v) for v in k) for k in sorted(keys))
        out[table] = f"{len(keys)}|{hashlib.md5(text.encode()).hexdigest()}"
    return out


def compare(url: str, path: str, only: set[str] | None = None) -> int:
    got = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                table, rest = line.strip().split("|", 1)
                got[table] = rest
    bad = 0
    for table, want in expected(url, only).items():
        have = got.get(table, "missing")
        if have != want:
            bad += 1
            print(f"{table}: mirror {have.split('|')[0]} rows, simulator {want.split('|')[0]}"
                  f"{' (same count, other keys)' if have.split('|')[0] == want.split('|')[0] else ''}")
    return 1 if bad else 0


def _only(argv: list[str], at: int) -> set[str] | None:
    return {t for t in argv[at].split(",") if t} if len(argv) > at else None


def main(argv: list[str]) -> int:
    if len(argv) in (2, 3) and argv[0] == "sql":
        print(sql(argv[1].rstrip("/"), _only(argv, 2)))
        return 0
    if len(argv) in (3, 4) and argv[0] == "compare":
        return compare(argv[1].rstrip("/"), argv[2], _only(argv, 3))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
