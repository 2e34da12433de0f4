"""A throwaway PostgreSQL cluster on 127.0.0.1 from Debian's ``postgresql`` binaries (as ``.ci/run`` starts one).

Used by ``make bench`` (its PostgreSQL pass) and by the tests that need a server of their own.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.ports import free_port


class Unavailable(RuntimeError):
    """No cluster can be started here; ``str()`` says why."""


@contextmanager
def throwaway_cluster(max_connections: int = 300) -> Iterator[str]:
    """Yield ``postgresql://postgres@127.0.0.1:PORT/postgres`` of a new cluster, removed afterwards."""
    with restartable_cluster(max_connections) as cluster:
        yield cluster.url


class Cluster:
    """A running throwaway cluster: its ``url``, and ``stop()``/``start()`` for tests of a database restart."""

    def __init__(self, bin_dir: Path, workdir: Path, port: int, max_connections: int):
        self.bin_dir, self.workdir, self.port = bin_dir, workdir, port
        self.data = workdir / "data"
        self.options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {workdir} -c fsync=off -c max_connections={max_connections}"
        )
        if (bin_dir.parent / "lib" / "pg_stat_statements.so").exists():  # bench counts statements per turn
            self.options += " -c shared_preload_libraries=pg_stat_statements"
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def as_postgres(self, command: str, timeout: float = 60):
        return subprocess.run(["su", "postgres", "-c", command], capture_output=True, text=True, timeout=timeout)

    def start(self) -> None:
        result = self.as_postgres(
            f"{self.bin_dir}/pg_ctl -D {self.data} -o '{self.options}' -w start -l {self.workdir}/log"
        )
        if result.returncode != 0:
            raise Unavailable(f"PostgreSQL did not start: {result.stderr.strip()[-300:]}")

    def stop(self, mode: str = "fast") -> None:
        self.as_postgres(f"{self.bin_dir}/pg_ctl -D {self.data} -m {mode} -w stop")


@contextmanager
def restartable_cluster(max_connections: int = 300) -> Iterator[Cluster]:
    """A new cluster (see ``throwaway_cluster``) that the caller may stop and start again."""
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not binaries:
        raise Unavailable("Debian's postgresql package is not installed")
    if os.geteuid() != 0 or shutil.which("su") is None:
        raise Unavailable("starting a throwaway PostgreSQL needs root (to run it as the postgres user)")
    workdir = Path(tempfile.mkdtemp(prefix="sb-pg-"))
    shutil.chown(workdir, "postgres")
    cluster = Cluster(Path(binaries[-1]).parent, workdir, free_port(), max_connections)
    try:
        result = cluster.as_postgres(f"{cluster.bin_dir}/initdb -D {cluster.data} -A trust -U postgres")
        if result.returncode != 0:
            raise Unavailable(f"initdb failed: {result.stderr.strip()[-300:]}")
        cluster.start()
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(workdir, ignore_errors=True)
