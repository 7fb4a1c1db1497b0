"""The run directory: cell records, the run manifest, pretraining folders, locks.

Layout (schema :data:`SCHEMA_VERSION`, documented in ``docs/results.md``)::

    RUN_DIR/manifest.json            run manifest (schema, versions, config, rows, cells)
    RUN_DIR/cells/<cell-key>.json    one record per finished cell, written atomically
    RUN_DIR/cells/<cell-key>/        the cell's prediction files (official formats), written before the record
    RUN_DIR/pretrain/<row-key>/      pretraining checkpoints and the final weights
    RUN_DIR/locks/                   file locks (one per pretraining key, one for the manifest)

Every JSON file is written to a temporary file in the same folder, fsynced and
renamed over the target, so a reader sees the old file or the new one, never a
torn one.  The temporary file names its writer (``.<name>.<random>.<pid>@<host>.tmp``);
those of killed writers are removed when a run opens the directory
(:meth:`RunStore.ensure`, :mod:`simla_bench.tmpfiles`).  A cell record is a
:class:`~simla_bench.runner.record.CellRecord` (its fields, JSON form and
validation live there).  A record that does not parse or does not validate is *corrupt*: it
is reported, moved aside to ``<key>.json.corrupt`` and recomputed, never used.
A directory written by another schema version is refused with a clear error.

A cell's prediction files are written into a temporary sibling folder (each file
fsynced), which is then renamed to ``cells/<key>/``; the record, written after,
lists each file's sha256 (:func:`file_sha256`), and :meth:`RunStore.predictions_problem`
tells a reader whether the folder still holds exactly those contents.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from filelock import FileLock, Timeout

from simla_bench import tmpfiles
from simla_bench.errors import UserError
from simla_bench.runner.record import ADDED_IN_SCHEMA_1, SCHEMA_VERSION, CellRecord, CorruptRecordError

#: fields every cell record must carry (checked on read)
RECORD_FIELDS = tuple(f for f in CellRecord.fields_described() if f not in ADDED_IN_SCHEMA_1)


class IncompatibleRunDirError(UserError):
    """The results directory was written by an incompatible simla-bench."""


class RunDirInUseError(UserError):
    """Another run holds a lock on the results directory for too long."""


def _read_umask() -> int:
    # os.umask can only be read by setting it; do that once, at import, rather
    # than flipping the process-wide mask (under threads) on every write
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: mode of written records and manifests: what the user's umask gives a new file
_FILE_MODE = 0o666 & ~_read_umask()


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON to ``path`` atomically (temp file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".{tmpfiles.writer_tag()}.tmp", dir=path.parent)
    try:
        os.fchmod(fd, _FILE_MODE)  # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True, allow_nan=True, default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)  # make the rename itself durable


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file's content (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    """fsync a folder (a rename in it becomes durable); best effort."""
    try:
        dir_fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def validate_record(data: Any, key: str | None = None) -> str | None:
    """Return why ``data`` (a record's JSON form) is not a usable cell record, or None."""
    try:
        CellRecord.from_json(data, key)
    except CorruptRecordError as exc:
        return str(exc)
    return None


@dataclass
class RecordRead:
    record: CellRecord | None
    problem: str | None = None  # set when the file existed but was corrupt

    @property
    def data(self) -> dict | None:
        """The record's JSON form (what hooks and the report's tables get), or None."""
        return None if self.record is None else self.record.to_json()


class RunStore:
    """Reads and writes one run directory."""

    def __init__(self, root: str | Path, lock_timeout: float = -1):
        self.root = Path(root)
        self.cells_dir = self.root / "cells"
        self.pretrain_dir = self.root / "pretrain"
        self.locks_dir = self.root / "locks"
        self.manifest_path = self.root / "manifest.json"
        self.lock_timeout = lock_timeout

    # ----------------------------------------------------------- directory
    def check_compatible(self) -> None:
        """Refuse a directory of another schema, or a non-empty foreign one."""
        if self.manifest_path.exists():
            try:
                manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise IncompatibleRunDirError(
                    f"{self.manifest_path} is unreadable ({type(exc).__name__})",
                    hint="move the directory away or choose another --out",
                ) from None
            schema = manifest.get("schema") if isinstance(manifest, dict) else None
            if schema != SCHEMA_VERSION:
                made_by = manifest.get("versions", {}).get("simla-bench", "?") if isinstance(manifest, dict) else "?"
                raise IncompatibleRunDirError(
                    f"run directory {self.root} has results schema {schema!r} (written by simla-bench {made_by}); "
                    f"this simla-bench reads schema {SCHEMA_VERSION}",
                    hint="choose another --out, or rerun into a fresh directory",
                )
        elif self.root.is_dir() and any(not self._ours(p.name) for p in self.root.iterdir()):
            raise IncompatibleRunDirError(
                f"{self.root} is not empty and is not a simla-bench run directory (no manifest.json)",
                hint="choose an empty or new --out directory",
            )

    @staticmethod
    def _ours(name: str) -> bool:
        # our folders, and the manifest's temporary file while another run writes it
        return name in ("cells", "pretrain", "locks", "tokenizer") or name.startswith(".manifest.json.")

    def ensure(self) -> None:
        """Check, create the folders, and remove temporary files of killed writers."""
        self.check_compatible()
        for d in (self.cells_dir, self.pretrain_dir, self.locks_dir):
            d.mkdir(parents=True, exist_ok=True)
        for d in (self.root, self.cells_dir):
            tmpfiles.remove_stale(d)
        for d in self.cells_dir.iterdir():  # prediction folders of killed writers
            if d.is_dir() and tmpfiles.is_stale(d.name):
                shutil.rmtree(d, ignore_errors=True)

    # ----------------------------------------------------------- locking
    def lock(self, name: str) -> FileLock:
        self.locks_dir.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.locks_dir / f"{name}.lock"), timeout=self.lock_timeout)

    def acquire(self, name: str, on_wait=None) -> FileLock:
        """Acquire a named lock; tell ``on_wait`` if another run holds it."""
        lock = self.lock(name)
        try:
            lock.acquire(timeout=0)
            return lock
        except Timeout:
            if on_wait is not None:
                on_wait(name)
        try:
            lock.acquire()
        except Timeout:
            raise RunDirInUseError(
                f"another simla-bench run holds {lock.lock_file}",
                hint="wait for it to finish or use another --out",
            ) from None
        return lock

    # ----------------------------------------------------------- records
    def record_path(self, key: str) -> Path:
        return self.cells_dir / f"{key}.json"

    def read_record(self, key: str) -> RecordRead:
        path = self.record_path(key)
        if not path.exists():
            return RecordRead(None)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return RecordRead(None, f"unreadable JSON ({type(exc).__name__}: {exc})")
        try:
            return RecordRead(CellRecord.from_json(data, key))
        except CorruptRecordError as exc:
            return RecordRead(None, str(exc))

    def quarantine(self, key: str) -> Path:
        """Move a corrupt record aside (kept for inspection, never read)."""
        path = self.record_path(key)
        target = path.with_name(path.name + ".corrupt")
        os.replace(path, target)
        return target

    def write_record(self, record: CellRecord | Mapping[str, Any]) -> Path:
        """Write a record (or its JSON form) atomically; it is checked as a reader would check it first."""
        data = record.to_json() if isinstance(record, CellRecord) else dict(record)
        problem = validate_record(data, data.get("key"))
        if problem:
            raise ValueError(f"refusing to write an invalid record: {problem}")
        path = self.record_path(data["key"])
        atomic_write_json(path, data)
        return path

    def delete_record(self, key: str) -> None:
        """Remove a cell's record and its predictions folder."""
        try:
            self.record_path(key).unlink()
        except FileNotFoundError:
            pass
        shutil.rmtree(self.predictions_dir(key), ignore_errors=True)

    # ----------------------------------------------------------- predictions
    def predictions_dir(self, key: str) -> Path:
        """The folder of a cell's prediction files, ``cells/<key>/``."""
        return self.cells_dir / key

    def write_predictions(self, key: str, files: Mapping[str, bytes | str]) -> dict[str, str]:
        """Write a cell's prediction files (name -> content) as its folder, atomically:
        into a temporary sibling, each file fsynced, then renamed over ``cells/<key>/``
        (an older folder is removed first).  Returns name -> sha256 for the record."""
        for name in files:
            if not name or name != Path(name).name or name.startswith("."):
                raise ValueError(f"prediction file name {name!r} must be a plain file name")
        self.cells_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=f".{tmpfiles.writer_tag()}.tmp", dir=self.cells_dir))
        sums = {}
        try:
            os.chmod(tmp, 0o777 & ~_read_umask())
            for name, content in files.items():
                data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
                with open(tmp / name, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.chmod(tmp / name, _FILE_MODE)
                sums[name] = hashlib.sha256(data).hexdigest()
            _fsync_dir(tmp)
            target = self.predictions_dir(key)
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(self.cells_dir)
        return sums

    def predictions_problem(self, key: str, listed: Mapping[str, str] | None) -> str | None:
        """Why the prediction files a record lists (name -> sha256) are not in its folder
        as written (missing or altered), or None (also when the record lists none)."""
        folder = self.predictions_dir(key)
        for name, digest in (listed or {}).items():
            path = folder / name
            if not path.is_file():
                return f"prediction file {name} is missing"
            if file_sha256(path) != digest:
                return f"prediction file {name} was altered (sha256 differs)"
        return None

    def iter_records(self) -> Iterator[tuple[Path, RecordRead]]:
        """Every record file in the directory, read and validated."""
        if not self.cells_dir.is_dir():
            return
        for path in sorted(self.cells_dir.glob("*.json")):
            yield path, self.read_record(path.stem)

    # ----------------------------------------------------------- manifest
    def read_manifest(self) -> dict | None:
        if not self.manifest_path.exists():
            return None
        return json.loads(self.manifest_path.read_text(encoding="utf-8"))

    def update_manifest(self, manifest: Mapping[str, Any]) -> None:
        """Merge this run's manifest into the directory's (under a lock), so that
        several runs into one directory list all their rows and cells."""
        with self.acquire("manifest"):
            old = self.read_manifest() or {}
            merged = dict(manifest)
            merged["schema"] = SCHEMA_VERSION
            # this run's rows and cells first, in the order its config lists them (the report's
            # order), then those only earlier runs had
            rows = {r["row_key"]: r for r in manifest.get("rows", [])}
            rows.update({r["row_key"]: r for r in old.get("rows", []) if r["row_key"] not in rows})
            merged["rows"] = list(rows.values())
            cells = {c["key"]: c for c in manifest.get("cells", [])}
            cells.update({c["key"]: c for c in old.get("cells", []) if c["key"] not in cells})
            merged["cells"] = list(cells.values())
            merged["runs"] = old.get("runs", []) + manifest.get("runs", [])
            merged["created"] = old.get("created", manifest.get("created"))
            atomic_write_json(self.manifest_path, merged)
