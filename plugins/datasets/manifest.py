"""The manifest of a file-based dataset source: what identifies its data in cell keys.

``file_manifest(options, annotation_options, image_options)`` covers

* every **annotation file** the options name, by content: its SHA-256 (cached by
  :mod:`.filecache` under (path, size, mtime_ns), so an unchanged file is only ``stat``-ed);
* every **image folder** the options name (``image_root``, NLVR2's ``<split>_images``), by a
  listing of (relative path, size, mtime_ns) of every file under it: replacing, adding,
  removing or re-writing an image changes the checksum, without reading any image.  (Listing
  is cheap next to reading: ~0.5 s for COCO's 120k images on a local disk.  It covers every
  file under the folder, named by an annotation or not.)  An empty ``image_root`` (image
  paths absolute or relative to the working directory) is not listed.

``checksum`` is the SHA-256 of all of it; a missing file or folder is part of the checksum too
(the validation step, not ``prepare``, stops the run on it).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from simla_bench import filecache


def _annotation(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {"path": str(path), "missing": True}
    return {"path": str(path), "size": path.stat().st_size, "sha256": filecache.content_hash(path)}


def folder_listing(root: Path) -> dict[str, Any]:
    """``{"path", "files", "digest"}``: a digest of (relative path, size, mtime_ns) of every file under ``root``."""
    if not root.is_dir():
        return {"path": str(root), "missing": True}
    h = hashlib.sha256()
    count = 0
    stack = [root]
    entries: list[tuple[str, int, int]] = []
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=True):
                        stack.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=True):
                        st = entry.stat(follow_symlinks=True)
                        entries.append((os.path.relpath(entry.path, root), st.st_size, st.st_mtime_ns))
        except OSError:
            continue
    for rel, size, mtime in sorted(entries):
        h.update(f"{rel}\0{size}\0{mtime}\n".encode("utf-8", "surrogateescape"))
        count += 1
    return {"path": str(root), "files": count, "digest": h.hexdigest()}


def file_manifest(source: str, options: Mapping[str, Any], annotation_options: Iterable[str],
                  image_options: Iterable[str]) -> dict[str, Any]:
    """The manifest described in the module docstring (``source``: the source's class name)."""
    files: dict[str, Any] = {}
    for option in annotation_options:
        value = options.get(option)
        paths = value if isinstance(value, (list, tuple)) else [value]
        for i, p in enumerate(x for x in paths if x):
            name = option if isinstance(value, str) else f"{option}[{i}]"
            files[name] = _annotation(Path(os.path.abspath(Path(str(p)).expanduser())))
    images: dict[str, Any] = {}
    for option in image_options:
        value = options.get(option)
        if value:
            images[option] = folder_listing(Path(os.path.abspath(Path(str(value)).expanduser())))
    content = {"source": source, "files": files, "images": images}
    checksum = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return {**content, "checksum": checksum}
