"""The user's aliases file, ``aliases.json`` in the instance folder (``settings.files_dir()``).

Writes hold an ``fcntl`` lock on a side file (``aliases.json.lock``) for the
whole read-modify-write and replace the file atomically (temporary file in the
same directory + ``os.replace``), so concurrent writers - threads or processes -
never lose each other's updates and readers never see a half-written file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from .config import files_dir

FILENAME = "aliases.json"
_thread_lock = threading.Lock()  # flock is per open file, so also serialise threads explicitly


def aliases_path() -> Path:
    return files_dir() / FILENAME


def _parse(text: str) -> dict[str, str]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, str)}


def read_aliases() -> dict[str, str]:
    """Aliases from the file; ``{}`` if it is missing or not valid JSON."""
    try:
        return _parse(aliases_path().read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
        return {}


@contextlib.contextmanager
def _locked(directory: Path):
    with _thread_lock:
        fd = os.open(directory / (FILENAME + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _write_atomic(path: Path, data: dict) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=".aliases-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=4, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def update_aliases(change: Callable[[dict[str, str]], None]) -> dict[str, str]:
    """Apply ``change(aliases)`` (mutating the dict) under the lock and save.
    An exception from ``change`` aborts without writing."""
    path = aliases_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.parent):
        aliases = read_aliases()
        change(aliases)
        _write_atomic(path, aliases)
        return aliases
