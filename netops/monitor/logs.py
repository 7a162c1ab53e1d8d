"""`netops logs`: list and tail the per-component log files (names from netops.log).

Tailing reads backwards from the end in blocks, so the last lines of a 1 GB log come back at once;
following polls the file and reopens it when logrotate replaces or truncates it, the way
`tail -F` does, so `netops logs tail -f` survives the nightly rotation.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from netops.log import COMPONENT_FILES
from netops.monitor.files import log_files

_STAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


class UnknownComponent(ValueError):
    """An unknown component name; the message lists the known ones."""


def known_components() -> list[str]:
    return list(COMPONENT_FILES)


def resolve(log_dir: Path, component: str) -> Path | None:
    """The current file of `component` (init_db: the newest stamp), None when none exists yet."""
    if component not in COMPONENT_FILES:
        raise UnknownComponent(f"unknown component '{component}'; known: {', '.join(known_components())}")
    return log_files(log_dir).get(component)


def list_logs(log_dir: Path) -> list[dict[str, Any]]:
    """One row per component, existing or not, so an operator sees which logs are still missing."""
    files = log_files(log_dir)
    rows = []
    for component, pattern in COMPONENT_FILES.items():
        path = files.get(component)
        if path is None:
            rows.append({"component": component, "file": pattern.replace("{stamp}", "*"), "path": None,
                         "exists": False, "size_bytes": 0, "modified": None})
            continue
        st = path.stat()
        rows.append({
            "component": component, "file": path.name, "path": str(path), "exists": True,
            "size_bytes": st.st_size,
            "modified": datetime.fromtimestamp(st.st_mtime, timezone.utc).isoformat(timespec="seconds")
            .replace("+00:00", "Z"),
        })
    return rows


def last_lines(path: Path, n: int, block: int = 64 * 1024) -> list[str]:
    """The last `n` lines of a file without reading all of it."""
    if n <= 0:
        return []
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        end = fh.tell()
        data = b""
        pos = end
        while pos > 0 and data.count(b"\n") <= n:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            data = fh.read(step) + data
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[-n:]


def tail(log_dir: Path, components: list[str], n: int) -> list[tuple[str, str]]:
    """(component, line) pairs: the last n lines of each file, merged in timestamp order.

    Lines start with an ISO UTC timestamp, so sorting by the line text (stable, per file order
    kept for equal stamps) interleaves components correctly.
    """
    keyed: list[tuple[str, str, str]] = []
    for c in components:
        path = resolve(log_dir, c)
        if path is None:
            continue
        stamp = ""
        for line in last_lines(path, n):
            # lines without a stamp (a traceback, what cron printed) sort with the line before
            if _STAMP_RE.match(line):
                stamp = line[:20]
            keyed.append((stamp, c, line))
    if len(components) > 1:
        keyed.sort(key=lambda item: item[0])  # stable: file order kept within one stamp
        keyed = keyed[-n:]
    return [(c, line) for _, c, line in keyed]


def follow(log_dir: Path, components: list[str], emit: Callable[[str, str], None],
           poll: float = 0.5, stop: Callable[[], bool] = lambda: False) -> None:
    """Print new lines as they are appended; handles rotation (new inode) and truncation."""
    state: dict[str, tuple[Any, int, int]] = {}  # component -> (file handle, inode, position)

    def open_current(c: str, at_end: bool) -> None:
        path = resolve(log_dir, c)
        if path is None:
            return
        fh = open(path, "rb")  # noqa: SIM115 - kept open across polls
        st = os.fstat(fh.fileno())
        pos = st.st_size if at_end else 0
        fh.seek(pos)
        state[c] = (fh, st.st_ino, pos)

    for c in components:
        open_current(c, at_end=True)
    buffers: dict[str, bytes] = {c: b"" for c in components}
    try:
        while not stop():
            for c in components:
                if c not in state:
                    open_current(c, at_end=False)  # the file appeared after we started
                    if c not in state:
                        continue
                fh, ino, pos = state[c]
                chunk = fh.read()
                if chunk:
                    pos += len(chunk)
                    state[c] = (fh, ino, pos)
                    data = buffers[c] + chunk
                    *complete, buffers[c] = data.split(b"\n")
                    for raw in complete:
                        emit(c, raw.decode("utf-8", errors="replace"))
                    continue
                path = resolve(log_dir, c)
                try:
                    st = os.stat(path) if path else None
                except FileNotFoundError:
                    st = None
                if st is not None and (st.st_ino != ino or st.st_size < pos):
                    fh.close()  # rotated or truncated: start over on the current file
                    del state[c]
                    buffers[c] = b""
                    open_current(c, at_end=False)
            time.sleep(poll)
    finally:
        for fh, _, _ in state.values():
            fh.close()


def iter_components(component: str | None) -> Iterator[str]:
    if component is None:
        yield from known_components()
    else:
        if component not in COMPONENT_FILES:
            raise UnknownComponent(f"unknown component '{component}'; known: {', '.join(known_components())}")
        yield component
