"""Temporary files of atomic writes: named after their writer, removed when stale.

Every atomic write (a checkpoint, a record, the run manifest) goes through a
temporary file in the target's folder, named ``.<target>.<pid>@<host>.tmp``
(:func:`tmp_name`; the run store adds a random part before the pid).  A write
killed with ``kill -9`` leaves that file behind; :func:`remove_stale` deletes
the ones whose writer is gone (a dead pid on this host).  A temporary file of
a live process, or of another host (a shared file system), is left alone.
Files of the older naming ``.<target>.<pid>.tmp`` count as this host's.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

_STALE_RE = re.compile(r"^\..+\.(?P<pid>\d+)(?:@(?P<host>[^@/]+))?\.tmp$")


def host() -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname() or "localhost")


def writer_tag() -> str:
    """``<pid>@<host>``: who writes a temporary file."""
    return f"{os.getpid()}@{host()}"


def tmp_name(target: str) -> str:
    """The temporary file name for writing ``target`` (a file name) in this process."""
    return f".{target}.{writer_tag()}.tmp"


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def is_stale(name: str) -> bool:
    """Whether ``name`` is a temporary file of a writer on this host that is gone."""
    m = _STALE_RE.match(name)
    if not m or (m.group("host") and m.group("host") != host()):
        return False
    return not pid_alive(int(m.group("pid")))


def remove_stale(folder: str | Path) -> list[Path]:
    """Remove the stale temporary files directly in ``folder``; return them."""
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        if is_stale(p.name) and p.is_file():
            try:
                p.unlink()
                removed.append(p)
            except FileNotFoundError:
                pass
    return removed
