"""A persistent cache of facts about input files (data, and the checkpoints,
weights and tokenizers a model reads), so re-runs do not re-read them.

Two facts, each keyed by (absolute path, size, mtime_ns), so any change to a file (a new
size or modification time) invalidates its entry:

* ``content_hash(path)``: the SHA-256 of a file's bytes (annotation files: an unchanged 1 GB
  file is hashed once, then only ``stat``-ed);
* ``image_checked(path, st)`` / ``mark_image_ok(path, st)``: an image that decoded fully once
  is not decoded again.

The cache is one SQLite file, ``files.sqlite``, in ``$SIMLA_BENCH_CACHE`` (default
``$XDG_CACHE_HOME/simla-bench``, else ``~/.cache/simla-bench``).  It is only a cache: when the
folder cannot be written or the database is unusable, everything is recomputed and nothing
fails.  Concurrent processes share it (SQLite's own locking).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from pathlib import Path

_LOCK = threading.Lock()
_CONN: dict[str, sqlite3.Connection | None] = {}
_PENDING: list[tuple[str, int, int]] = []
_SEEN_OK: set[tuple[str, int, int]] = set()  # images decoded (or found in the cache) by this process
FLUSH_EVERY = 2000


def cache_dir() -> Path:
    """Where ``files.sqlite`` lives (see the module docstring)."""
    explicit = os.environ.get("SIMLA_BENCH_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "simla-bench"


def _db() -> sqlite3.Connection | None:
    path = str(cache_dir() / "files.sqlite")
    if path not in _CONN:
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
            conn.execute("CREATE TABLE IF NOT EXISTS hashes (path TEXT, size INTEGER, mtime_ns INTEGER, "
                         "sha256 TEXT, PRIMARY KEY (path, size, mtime_ns))")
            conn.execute("CREATE TABLE IF NOT EXISTS images_ok (path TEXT, size INTEGER, mtime_ns INTEGER, "
                         "PRIMARY KEY (path, size, mtime_ns))")
            conn.commit()
        except (OSError, sqlite3.Error):
            conn = None
        _CONN[path] = conn
    return _CONN[path]


def _key(path: Path | str, st: os.stat_result | None = None) -> tuple[str, int, int]:
    st = st or os.stat(path)
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns)


def hash_file(path: Path | str) -> str:
    """SHA-256 of the file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_hash(path: Path | str) -> str:
    """The SHA-256 of ``path``'s bytes, from the cache when its size and mtime are unchanged."""
    key = _key(path)
    with _LOCK:
        db = _db()
        if db is not None:
            try:
                row = db.execute("SELECT sha256 FROM hashes WHERE path=? AND size=? AND mtime_ns=?", key).fetchone()
                if row:
                    return row[0]
            except sqlite3.Error:
                pass
    digest = hash_file(path)
    with _LOCK:
        db = _db()
        if db is not None:
            try:
                db.execute("DELETE FROM hashes WHERE path=?", key[:1])
                db.execute("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?)", (*key, digest))
                db.commit()
            except sqlite3.Error:
                pass
    return digest


def image_checked(path: Path | str, st: os.stat_result) -> bool:
    """Whether this exact file (same size and mtime) already decoded fully."""
    key = _key(path, st)
    if key in _SEEN_OK:
        return True
    with _LOCK:
        db = _db()
        if db is None:
            return False
        try:
            found = db.execute("SELECT 1 FROM images_ok WHERE path=? AND size=? AND mtime_ns=?", key).fetchone()
        except sqlite3.Error:
            return False
    if found:
        _SEEN_OK.add(key)
    return bool(found)


def mark_image_ok(path: Path | str, st: os.stat_result) -> None:
    """Remember that this file decoded fully (written in batches; see :func:`flush`)."""
    key = _key(path, st)
    _SEEN_OK.add(key)
    _PENDING.append(key)
    if len(_PENDING) >= FLUSH_EVERY:
        flush()


def flush() -> None:
    """Write the pending "decoded fine" entries (loaders call it when a split is loaded)."""
    with _LOCK:
        if not _PENDING:
            return
        rows, _PENDING[:] = list(_PENDING), []
        db = _db()
        if db is None:
            return
        try:
            db.executemany("INSERT OR REPLACE INTO images_ok VALUES (?, ?, ?)", rows)
            db.commit()
        except sqlite3.Error:
            pass


def forget_process_memory() -> None:
    """Drop what this process remembers outside the database (tests)."""
    _SEEN_OK.clear()
    _PENDING.clear()
