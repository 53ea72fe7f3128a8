"""A throwaway PostgreSQL server on loopback, from Debian's postgresql package."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from atri.local import free_port


def pg_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else (os.path.dirname(shutil.which("initdb")) if shutil.which("initdb") else None)


def _as_server_user(command: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres user then."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@contextmanager
def postgres_server() -> Iterator[str]:
    bin_dir = pg_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    data_dir = tempfile.mkdtemp(prefix="atri-pg-")
    if os.geteuid() == 0:
        shutil.chown(data_dir, "postgres", "postgres")
    port = free_port()
    subprocess.run(_as_server_user([f"{bin_dir}/initdb", "-D", data_dir, "-A", "trust", "-U", "atri", "-E", "UTF8"]),
                   check=True, capture_output=True)
    subprocess.run(_as_server_user([f"{bin_dir}/pg_ctl", "-D", data_dir, "-w", "-l", f"{data_dir}/log",
                                    "-o", f"-h 127.0.0.1 -p {port} -k {data_dir}", "start"]),
                   check=True, capture_output=True)
    try:
        yield f"postgresql://atri@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_server_user([f"{bin_dir}/pg_ctl", "-D", data_dir, "-m", "fast", "stop"]), capture_output=True)
        shutil.rmtree(data_dir, ignore_errors=True)
