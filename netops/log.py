"""Logging: one file per component under the log dir, via loguru.

Every line starts with a UTC timestamp and a level. Known secrets (client secret, DSN password,
access tokens seen at run time) are redacted from every message before any sink sees it, so a
careless f-string can never leak them into a log file.

Components and their files (README, "Logs"):
    token    -> 42_token_refresh.log
    backlog  -> backlog_worker.log
    stable   -> nightly_stable_tables.log
    init_db  -> init_db_<stamp>.log (one per migration run)
    cron     -> cron_output.log (cron redirects into it; netops never writes it itself)
    alerts   -> alerts.log
    metrics  -> metrics.log
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

COMPONENT_FILES: dict[str, str] = {
    "token": "42_token_refresh.log",
    "backlog": "backlog_worker.log",
    "stable": "nightly_stable_tables.log",
    "init_db": "init_db_{stamp}.log",
    "cron": "cron_output.log",
    "alerts": "alerts.log",
    "metrics": "metrics.log",
}

# Mode of a new log file (the umask can only take bits away): readable by the service group
# (netops status/metrics read sizes), not by everyone; logrotate recreates files with the same.
LOG_FILE_MODE = 0o640

LINE_FORMAT = "{time:YYYY-MM-DDTHH:mm:ss!UTC}Z {level: <7} {message}"

_lock = threading.Lock()
_secrets: set[str] = set()
_sinks: dict[tuple[str, str], int] = {}
_configured_stderr = False
_TOKEN_RE = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
_DSN_PW_RE = re.compile(r"(postgres(?:ql)?://[^:/@\s]+:)[^@\s]+@")


def add_secret(value: str | None) -> None:
    """Register a value that must never appear in any log line (tokens, secrets, passwords)."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    for s in sorted(_secrets, key=len, reverse=True):
        if s in text:
            text = text.replace(s, "***")
    text = _TOKEN_RE.sub(r"\1***", text)
    return _DSN_PW_RE.sub(r"\1***@", text)


def _patch(record: dict[str, Any]) -> None:
    record["message"] = redact(record["message"])


_logger: Any = None


def _loguru() -> Any:
    """loguru's logger, configured once. Imported on first use: a command that never logs (the
    status page's writer, every minute) does not pay for loading it."""
    global _logger
    with _lock:
        if _logger is None:
            from loguru import logger

            logger.remove()
            logger.configure(patcher=_patch)
            _logger = logger
    return _logger


def setup_stderr(verbose: bool = False) -> None:
    """With --verbose, mirror every log line to stderr too. Without it stderr carries only the
    command's own one-line error, so cron mail and scripts see exactly one line on failure."""
    global _configured_stderr
    if _configured_stderr or not verbose:
        return
    _loguru().add(
        sys.stderr,
        level="DEBUG",
        format="<level>{level: <7}</level> {message}",
        filter=lambda r: not r["extra"].get("quiet_stderr"),
    )
    _configured_stderr = True


def component_path(log_dir: Path, component: str) -> Path:
    name = COMPONENT_FILES.get(component, f"{component}.log")
    if "{stamp}" in name:
        name = name.format(stamp=datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"))
    return Path(log_dir) / name


class _FileSink:
    """Appends each log line to one file and flushes it at once.

    Why not loguru's own file sink: when the disk is full (or a file-size limit is hit) its
    error carries no file name, so the CLI could only show a traceback, and its buffered data
    fails once more in an atexit hook. Here a failed write closes the file quietly (nothing is
    left buffered to fail again) and raises an OSError that names the log file — the CLI turns
    that into one line, `File too large on <log file>: check the path and free space`. The sync
    stops there: a phase either committed before it or rolls back with it.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fh: Any = None

    def __call__(self, message: str) -> None:
        try:
            if self._fh is not None and self._rotated():
                self._discard()
            if self._fh is None:
                # 0640 whatever the umask: the mode logrotate's `create 0640` gives it later
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, LOG_FILE_MODE)
                self._fh = os.fdopen(fd, "a", encoding="utf-8")
            self._fh.write(message)
            self._fh.flush()
        except OSError as exc:
            self._discard()
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None

    def _rotated(self) -> bool:
        """logrotate renamed (or removed) our file: a long-running loop (`backlog run --loop`,
        `metrics write --loop`) must go on in the new file, not the rotated one — the check
        logging.handlers.WatchedFileHandler makes."""
        try:
            return os.stat(self.path).st_ino != os.fstat(self._fh.fileno()).st_ino
        except FileNotFoundError:
            return True

    def _discard(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            with contextlib.suppress(OSError):
                fh.close()
            # close() could not flush: drop the buffer so interpreter exit does not retry it
            with contextlib.suppress(Exception):
                fh.buffer.raw.close()


def get_logger(component: str, log_dir: Path | str) -> Any:
    """A loguru logger bound to `component` whose lines go to that component's file.

    The file sink is added once per (component, dir); the log dir is created if needed, and a
    clear OSError propagates when it cannot be (the CLI turns it into a one-line error).
    """
    log_dir = Path(log_dir)
    key = (component, str(log_dir))
    logger = _loguru()
    with _lock:
        if key not in _sinks:
            log_dir.mkdir(parents=True, exist_ok=True)
            path = component_path(log_dir, component)
            _sinks[key] = logger.add(
                _FileSink(path),
                level="DEBUG",
                format=LINE_FORMAT,
                # a line goes to its own component's file in its own log dir only: a process that
                # logs to several dirs (tests, benchmarks) must not write into another's files
                filter=lambda r, k=key: (r["extra"].get("component"), r["extra"].get("log_dir")) == k,
                enqueue=False,
                catch=False,
            )
    return logger.bind(component=component, log_dir=str(log_dir))
