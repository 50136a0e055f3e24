"""A throwaway PostgreSQL cluster for tests and benchmarks: Debian's server binaries
(`make deps` installs the `postgresql` package), `initdb` into a temporary directory as an
unprivileged system user (initdb refuses root: Debian's `postgres` user when it exists, else
a throwaway one), `pg_ctl start` on a private port and unix socket directory, and removed
again by :meth:`PgCluster.stop`. The cluster listens on 127.0.0.1 only and needs a password
(SCRAM) over TCP; the superuser connects over the private socket, with no password.

    with PgCluster() as pg:                 # in a new directory under $TMPDIR
        url = pg.create_database()          # postgres://jitbroker@127.0.0.1:PORT/jb_1
        pg.password_file                    # the role's password, mode 0640
        pg.sql("SELECT 1")                  # as the superuser, over the socket
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from polling import free_port

ROLE = "jitbroker"


def bin_dir() -> Path:
    """The newest installed server's binaries (/usr/lib/postgresql/N/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL's server is not installed (Debian package postgresql): run `make deps`")
    return Path(found[-1]).parent


def available() -> bool:
    try:
        bin_dir()
        return True
    except RuntimeError:
        return False


class PgCluster:
    def __init__(self, root: Path | None = None, settings: dict[str, str] | None = None):
        # The owner must reach the directory: not under pytest's root-only tmp.
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="jitpg-"))
        self.bin = bin_dir()
        self.data = self.root / "data"
        self.sockdir = self.root / "sock"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.settings = settings or {}
        self.password = secrets.token_urlsafe(18)
        self.password_file = self.root / "password"
        self.user = self._owner()
        self._made_user = False
        self._n = 0
        self.running = False

    # -- the unprivileged owner -----------------------------------------------------------

    def _owner(self) -> pwd.struct_passwd:
        try:
            return pwd.getpwnam("postgres")
        except KeyError:
            name = f"jitpg{secrets.token_hex(3)}"
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                           check=True)
            self._made_user = True
            return pwd.getpwnam(name)

    def _as_owner(self, argv: list[str], **kw) -> subprocess.CompletedProcess:
        cmd = argv
        if os.geteuid() == 0:
            cmd = ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}", "--clear-groups", *argv]
        return subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120, **kw)

    # -- life -----------------------------------------------------------------------------

    def start(self) -> "PgCluster":
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        self.sockdir.mkdir(exist_ok=True)
        os.chown(self.sockdir, self.user.pw_uid, self.user.pw_gid)
        if not self.data.exists():
            self.data.mkdir(mode=0o700)
            os.chown(self.data, self.user.pw_uid, self.user.pw_gid)
            r = self._as_owner([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth-local=trust",
                                "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8"])
            assert r.returncode == 0, f"initdb failed: {r.stdout}{r.stderr}"
        self._pg_ctl_start()
        self.sql(f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN "
                 f"CREATE ROLE {ROLE} LOGIN PASSWORD '{self.password}'; END IF; END $$")
        self.password_file.write_text(self.password + "\n")
        os.chmod(self.password_file, 0o640)
        return self

    def _pg_ctl_start(self) -> None:
        opts = {"port": str(self.port), "listen_addresses": "127.0.0.1", "unix_socket_directories": str(self.sockdir),
                "max_connections": "300", "logging_collector": "off", **self.settings}
        o = " ".join(f"-c {k}={v}" for k, v in opts.items())
        if not self.log.exists():
            self.log.touch()
            os.chown(self.log, self.user.pw_uid, self.user.pw_gid)
        r = self._as_owner([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", o, "-w", "-t", "60",
                            "start"])
        assert r.returncode == 0, f"pg_ctl start failed: {r.stdout}{r.stderr}\n{self.log.read_text(errors='replace')[-3000:]}"
        self.running = True

    def postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def stop(self, mode: str = "fast") -> None:
        if self.running:
            self._as_owner([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"])
            self.running = False

    def restart(self, down_for: float = 0.0) -> None:
        """Stop (fast: sessions are cut), stay down for `down_for` seconds, start again."""
        self.stop()
        time.sleep(down_for)
        self._pg_ctl_start()

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
        if self._made_user:
            subprocess.run(["userdel", self.user.pw_name], capture_output=True)

    def __enter__(self) -> "PgCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.remove()

    # -- use ------------------------------------------------------------------------------

    def sql(self, statement: str, db: str = "postgres") -> str:
        """Run SQL as the superuser over the socket; psql's unaligned output."""
        r = self._as_owner([str(self.bin.parent / "bin" / "psql") if (self.bin / "psql").exists() else "psql",
                            "-h", str(self.sockdir), "-p", str(self.port), "-U", "postgres", "-d", db, "-v",
                            "ON_ERROR_STOP=1", "-At", "-c", statement])
        assert r.returncode == 0, f"psql {statement!r}: {r.stderr}"
        return r.stdout

    def dump(self, db: str) -> str:
        """Everything `db` holds, as pg_dump writes it (as the superuser, over the socket)."""
        r = self._as_owner([str(self.bin / "pg_dump"), "-h", str(self.sockdir), "-p", str(self.port), "-U", "postgres",
                            "--data-only", db])
        assert r.returncode == 0, f"pg_dump {db}: {r.stderr}"
        return r.stdout

    def create_database(self, name: str | None = None) -> str:
        """A new database owned by the broker's role; its URL (no password in it)."""
        self._n += 1
        name = name or f"jb_{os.getpid()}_{self._n}"
        self.sql(f"CREATE DATABASE {name} OWNER {ROLE}")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def url(self, db: str) -> str:
        return f"postgres://{ROLE}@127.0.0.1:{self.port}/{db}"

    def connect(self, db: str):
        """A psycopg connection to `db` as the superuser (autocommit)."""
        import psycopg

        return psycopg.connect(host=str(self.sockdir), port=self.port, user="postgres", dbname=db, autocommit=True)
