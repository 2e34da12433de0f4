"""A throwaway PostgreSQL cluster on 127.0.0.1 from Debian's ``postgresql`` binaries (as ``.ci/run`` starts one).

Used by ``make bench`` (its PostgreSQL pass) and by the tests that need a server of their own.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Unavailable(RuntimeError):
    """No cluster can be started here; ``str()`` says why."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def throwaway_cluster(max_connections: int = 300) -> Iterator[str]:
    """Yield ``postgresql://postgres@127.0.0.1:PORT/postgres`` of a new cluster, removed afterwards."""
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not binaries:
        raise Unavailable("Debian's postgresql package is not installed")
    if os.geteuid() != 0 or shutil.which("su") is None:
        raise Unavailable("starting a throwaway PostgreSQL needs root (to run it as the postgres user)")
    bin_dir = Path(binaries[-1]).parent
    workdir = Path(tempfile.mkdtemp(prefix="sb-pg-"))
    shutil.chown(workdir, "postgres")
    port = _free_port()
    data = workdir / "data"

    def as_postgres(command: str, timeout: float = 60):
        return subprocess.run(["su", "postgres", "-c", command], capture_output=True, text=True, timeout=timeout)

    try:
        result = as_postgres(f"{bin_dir}/initdb -D {data} -A trust -U postgres")
        if result.returncode != 0:
            raise Unavailable(f"initdb failed: {result.stderr.strip()[-300:]}")
        result = as_postgres(
            f"{bin_dir}/pg_ctl -D {data} -o '-c listen_addresses=127.0.0.1 -p {port} -k {workdir} "
            f"-c fsync=off -c max_connections={max_connections}' -w start -l {workdir}/log"
        )
        if result.returncode != 0:
            raise Unavailable(f"PostgreSQL did not start: {result.stderr.strip()[-300:]}")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        as_postgres(f"{bin_dir}/pg_ctl -D {data} -m immediate stop")
        shutil.rmtree(workdir, ignore_errors=True)
