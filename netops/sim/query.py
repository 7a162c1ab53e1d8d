"""Paging, `filter[...]`, `range[...]` and `sort` math - pure functions, unit-tested on their own.

Kept apart from the HTTP layer so the rules (comma = OR, timestamps compared as instants,
default id ascending, X-Total counts items, Link rels only where they apply) can be checked
without a server.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from netops.sim.timeutil import parse

DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100

_BRACKET = re.compile(r"^(filter|range)\[([^\]]+)\]$")

Getter = Callable[[dict[str, Any], str], Any]


class QueryError(ValueError):
    """A malformed query: the server answers 400 with this message."""


@dataclass
class Query:
    """A parsed index request."""

    filters: dict[str, list[str]] = field(default_factory=dict)
    ranges: dict[str, tuple[str, str]] = field(default_factory=dict)
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE
    legacy_paging: bool = False  # per_page/page rather than page[size]/page[number]


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise QueryError(f"{name} must be an integer, got {value!r}") from None


def parse_query(args: Mapping[str, str], max_per_page: int = MAX_PER_PAGE) -> Query:
    """Read paging/filter/range/sort parameters. `max_per_page` is the endpoint's cap (<= 100)."""
    q = Query()
    size = args.get("page[size]")
    number = args.get("page[number]")
    if size is None and number is None and ("per_page" in args or "page" in args):
        q.legacy_paging = True
        size, number = args.get("per_page"), args.get("page")
    if size is not None:
        q.per_page = _int(size, "page size")
        if q.per_page < 1:
            raise QueryError("page size must be at least 1")
    q.per_page = min(q.per_page, max_per_page, MAX_PER_PAGE)
    if number is not None:
        q.page = max(1, _int(number, "page number"))
    for key, value in args.items():
        m = _BRACKET.match(key)
        if not m:
            continue
        kind, name = m.groups()
        if kind == "filter":
            q.filters[name] = [v for v in value.split(",")]
        else:
            parts = value.split(",")
            if len(parts) != 2:
                raise QueryError(f"range[{name}] needs 'min,max', got {value!r}")
            q.ranges[name] = (parts[0].strip(), parts[1].strip())
    sort = args.get("sort")
    if sort:
        for part in sort.split(","):
            part = part.strip()
            if part:
                q.sort.append((part.lstrip("-"), part.startswith("-")))
    return q


def _as_text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    return str(value)


def _comparable(value: str, is_ts: bool) -> Any:
    if is_ts:
        try:
            return parse(value)
        except ValueError as exc:
            raise QueryError(str(exc)) from None
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value


def apply(rows: list[dict[str, Any]], q: Query, getter: Getter, ts_fields: tuple[str, ...] | set[str],
          known: set[str] | None = None) -> list[dict[str, Any]]:
    """Filter, range and sort rows. Without `sort`, the input order (id ascending) is kept.

    `known` (field names the resource has) makes an unknown filter/range/sort field a 400,
    so a typo in a client never silently becomes "fetch everything".
    """
    for name in list(q.filters) + list(q.ranges) + [s for s, _ in q.sort]:
        if known is not None and name not in known:
            raise QueryError(f"unknown field {name!r} for this resource")
    out, ranges = _id_window(rows, q.ranges)
    for name, values in q.filters.items():
        is_ts = name in ts_fields
        if is_ts:
            wanted_ts = {_comparable(v, True) for v in values}
            out = [r for r in out if getter(r, name) in wanted_ts]
            continue
        wanted = set(values)

        def keep(r: dict[str, Any], name: str = name, wanted: set[str] = wanted) -> bool:
            v = getter(r, name)
            if isinstance(v, (list, tuple, set)):
                return any(_as_text(x) in wanted for x in v)
            return _as_text(v) in wanted

        out = [r for r in out if keep(r)]
    for name, (lo_s, hi_s) in ranges.items():
        is_ts = name in ts_fields
        lo = _comparable(lo_s, is_ts) if lo_s else None
        hi = _comparable(hi_s, is_ts) if hi_s else None

        def in_range(r: dict[str, Any], name: str = name, lo: Any = lo, hi: Any = hi) -> bool:
            v = getter(r, name)
            if v is None:
                return False
            try:
                return (lo is None or v >= lo) and (hi is None or v <= hi)
            except TypeError:
                return (lo is None or str(v) >= str(lo)) and (hi is None or str(v) <= str(hi))

        out = [r for r in out if in_range(r)]
    if q.sort == [("id", False)]:
        return list(out)  # already in id order
    if q.sort == [("id", True)]:
        return out[::-1]
    if q.sort:
        out = list(out)
        for name, desc in reversed(q.sort):
            # None sorts last ascending (first descending), like PostgreSQL behind the real API
            out.sort(key=lambda r, name=name: (getter(r, name) is None, _sort_key(getter(r, name))), reverse=desc)
    return out


def _id_window(rows: list[dict[str, Any]], ranges: dict[str, tuple[str, str]]
               ) -> tuple[list[dict[str, Any]], dict[str, tuple[str, str]]]:
    """`range[id]` by bisection: the rows with lo <= id <= hi, and the ranges left to check.

    Why: every keyset walk (detect, reconcile, the sync's lanes) sends `range[id]` on every page,
    and a scan of the whole table per request would make the simulator, not the client, the
    bound on a fast benchmark. Rows come in id order (every source keeps it: Dataset.insert
    re-sorts after an out-of-order id), so the window is two binary searches. Bounds that are not
    integers take the general path (the row-by-row comparison)."""
    bounds = ranges.get("id")
    if bounds is None:
        return rows, ranges
    try:
        lo = int(bounds[0]) if bounds[0] else None
        hi = int(bounds[1]) if bounds[1] else None
    except ValueError:
        return rows, ranges
    start = 0 if lo is None else bisect_left(rows, lo, key=_row_id)
    end = len(rows) if hi is None else bisect_right(rows, hi, key=_row_id)
    return rows[start:end], {k: v for k, v in ranges.items() if k != "id"}


def _row_id(row: dict[str, Any]) -> int:
    return int(row["id"])


def _sort_key(v: Any) -> Any:
    if v is None:
        return 0
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)):
        return v
    return (1, str(v)) if not isinstance(v, str) else v


def last_page(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / per_page))


def page_slice(total: int, page: int, per_page: int) -> tuple[int, int]:
    start = (page - 1) * per_page
    return min(start, total), min(start + per_page, total)


def link_header(base_url: str, args: Mapping[str, str], q: Query, total: int) -> str:
    """RFC 8288 `Link` with first/prev (not on page 1) and next/last (not on the last page).

    Other query parameters are kept; the paging parameters use the style the client used.
    """
    last = last_page(total, q.per_page)
    keep = [(k, v) for k, v in args.items() if k not in ("page[size]", "page[number]", "per_page", "page")]

    def url(n: int) -> str:
        extra = [("per_page", str(q.per_page)), ("page", str(n))] if q.legacy_paging else \
            [("page[number]", str(n)), ("page[size]", str(q.per_page))]
        return f"<{base_url}?{urlencode(keep + extra)}>"

    rels = []
    if q.page > 1:
        rels.append(f'{url(1)}; rel="first"')
        rels.append(f'{url(min(q.page - 1, last))}; rel="prev"')
    if q.page < last:
        rels.append(f'{url(q.page + 1)}; rel="next"')
        rels.append(f'{url(last)}; rel="last"')
    return ", ".join(rels)
