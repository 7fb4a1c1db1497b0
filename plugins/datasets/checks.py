"""Validation shared by every loader: one clear line per bad record, or a counted skip.

A loader wraps each record in ``with checker.record(file, record_label):`` and calls the
``require_*`` helpers inside; a problem raises :class:`BadRecord`, which the checker turns
into a :class:`~simla_bench.errors.DataError` naming the file, the record and the problem
(or, with ``skip_bad=True``, counts and remembers it, so the caller can report the total).
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from simla_bench.errors import DataError

from simla_bench import filecache
from .records import LoadReport


class BadRecord(Exception):
    """One record failed validation (caught by :class:`Checker`)."""


class Checker:
    """Collects (``skip_bad``) or raises on bad records of one loader call."""

    def __init__(self, source: str, skip_bad: bool = False, verify_images: bool = True):
        self.report = LoadReport(source)
        self.skip_bad = skip_bad
        self.verify_images = verify_images
        self.ok = True

    @contextmanager
    def record(self, file: Path | str, label: str) -> Iterator[None]:
        """Validate one record; on failure raise DataError or count a skip.

        After the block, ``self.ok`` says whether the record passed."""
        self.ok = True
        try:
            yield
        except BadRecord as exc:
            self.ok = False
            line = f"{file}: {label}: {exc}"
            if not self.skip_bad:
                raise DataError(line, hint="fix the record, or set the dataset option skip_bad: true to skip bad records") from None
            self.report.skipped += 1
            self.report.problems.append(line)

    def summary(self) -> str | None:
        if not self.report.skipped:
            return None
        first = self.report.problems[0]
        return f"{self.report.source}: skipped {self.report.skipped} bad record(s) (first: {first})"


def read_json(path: Path | str, what: str) -> Any:
    """Read a JSON file; a missing file or invalid JSON is one DataError line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} file {path} does not exist", hint="set its path in the dataset options (configs/datasets/)")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{what} file {path} is not valid JSON: {exc}") from None


def require_file(path: Path | str | None, what: str) -> Path:
    if not path:
        raise DataError(f"no {what} file given", hint="set it in the dataset options (see configs/datasets/)")
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} file {path} does not exist", hint="set its path in the dataset options (see configs/datasets/)")
    return path


def field(rec: Any, name: str, kind: type | tuple[type, ...] | None = None) -> Any:
    """``rec[name]``, checking presence (and type)."""
    if not isinstance(rec, Mapping):
        raise BadRecord(f"is a {type(rec).__name__}, not a JSON object")
    if name not in rec:
        raise BadRecord(f"missing field '{name}'")
    value = rec[name]
    kinds = () if kind is None else (kind if isinstance(kind, tuple) else (kind,))
    if kinds and (not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise BadRecord(f"field '{name}' should be {names}, got {value!r}")
    return value


def resolve_image(root: Path | str | None, rel: str) -> Path:
    """Absolute image path: ``rel`` itself when absolute, else under ``root``."""
    p = Path(rel)
    if not p.is_absolute():
        p = Path(root or ".") / p
    return Path(os.path.abspath(p))


def image_ok(checker: Checker, path: Path) -> tuple[int, int] | None:
    """Check that an image exists and decodes *fully* (``img.load()``: a truncated JPEG whose
    header is fine fails here, where ``verify()`` passed it); returns its (w, h) when decoded.

    A file that decoded once is remembered by (path, size, mtime_ns) in
    :mod:`.filecache`, so re-runs only ``stat`` it."""
    try:
        st = os.stat(path)
    except OSError:
        raise BadRecord(f"image {path} does not exist") from None
    if not os.path.isfile(path):
        raise BadRecord(f"image {path} is not a file")
    if not checker.verify_images or filecache.image_checked(path, st):
        return None
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            size = img.size
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for bad files
        raise BadRecord(f"image {path} does not decode ({type(exc).__name__}: {exc})") from None
    filecache.mark_image_ok(path, st)
    return size


def box_ok(box: Any, width: float, height: float, what: str = "box") -> tuple[float, float, float, float]:
    """A COCO x,y,w,h box of 4 numbers with positive size inside a width x height image."""
    if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in box
    ):
        raise BadRecord(f"{what} {box!r} is not 4 numbers x,y,w,h")
    x, y, w, h = (float(v) for v in box)
    tol = 1.0  # COCO boxes may touch the border with sub-pixel rounding
    if w <= 0 or h <= 0 or x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
        raise BadRecord(f"{what} {list(box)} lies outside the {int(width)}x{int(height)} image")
    return (x, y, w, h)
