"""A throw-away PostgreSQL server for tests: initdb into a temporary folder, loopback port, socket in that folder.

initdb refuses to run as root, so as root the server runs as the `postgres` user (else `nobody`)
through runuser, in a folder made under /tmp and given to that user (pytest's own temporary folders
are private to root).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.servers import HOST, free_port

USER = "recsys"


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    user: str
    password: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}:{self.password}@{self.host}:{self.port}/{database}"


def binaries() -> Path | None:
    """The folder holding initdb and pg_ctl (the newest Debian version, else PATH), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    initdb = found[-1] if found else shutil.which("initdb")
    return Path(initdb).parent if initdb and (Path(initdb).parent / "pg_ctl").is_file() else None


def _run_as() -> tuple[list[str], str | None]:
    """The command prefix that runs the server as a user initdb accepts, and that user's name (None: us)."""
    if os.geteuid() != 0:
        return [], None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        runuser = shutil.which("runuser")
        if runuser:
            return [runuser, "-u", name, "--"], name
    raise RuntimeError("running as root without runuser or a postgres/nobody user: cannot start PostgreSQL")


@contextmanager
def postgres_server(password: str, timeout: float = 60.0) -> Iterator[Server]:
    """Start PostgreSQL on a free loopback port with a password-protected superuser `recsys`; stop and delete it after."""
    bin_dir = binaries()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL binaries (initdb, pg_ctl) not found")
    prefix, owner = _run_as()
    root = Path(tempfile.mkdtemp(prefix="recsys-pg-"))
    data, log, pwfile = root / "data", root / "server.log", root / "password"
    pwfile.write_text(password + "\n")
    if owner is not None:
        for path in (root, pwfile):
            shutil.chown(path, owner)
    port = free_port()

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, text=True, timeout=timeout)

    try:
        try:
            run(str(bin_dir / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}", "--auth=scram-sha-256",
                "-E", "UTF8", "--no-sync")  # fmt: skip
            options = f"-p {port} -k {root} -c listen_addresses={HOST} -c fsync=off"
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", str(int(timeout)), "-o", options, "start")
        except subprocess.CalledProcessError as exc:
            server_log = log.read_text() if log.is_file() else ""
            raise RuntimeError(f"PostgreSQL did not start: {exc.stderr or exc.stdout}\n{server_log}") from None
        yield Server(HOST, port, USER, password)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                           capture_output=True, timeout=timeout)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
