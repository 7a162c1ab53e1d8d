"""The files the monitor writes and reads beside the database: atomic rewrites of the documents
nginx serves, and the component log files. Kept apart from metrics.py so a view that only writes
a file (status.json, history.json, the alert state) does not load the Prometheus client."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from netops.log import COMPONENT_FILES


def atomic_write(path: Path, text: str, mode: int = 0o644) -> None:
    """Temp file in the same directory, fsync, then os.replace: a reader (nginx, a scraper, a
    cron job) sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None:
            # a failed write (a full disk) names no file: name the one we meant to write, so the CLI
            # says it in one line instead of a traceback
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise


def log_files(log_dir: Path) -> dict[str, Path]:
    """component -> its current file (init_db: the newest init_db_*.log), existing files only."""
    out: dict[str, Path] = {}
    for component, name in COMPONENT_FILES.items():
        if "{stamp}" in name:
            pattern = name.replace("{stamp}", "*")
            matches = sorted(Path(log_dir).glob(pattern))
            if matches:
                out[component] = matches[-1]
        elif (Path(log_dir) / name).exists():
            out[component] = Path(log_dir) / name
    return out
