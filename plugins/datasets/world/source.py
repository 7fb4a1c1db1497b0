"""The ``world`` dataset source: generates the world on first use, then serves every data
kind through the same loaders as the real datasets.

A world is **immutable once generated**: each (preset, seed, image size, counts, generator
version) has its own folder under the ``root`` option, ``<root>/<preset>-s<seed>-<size>px-g<version>-<digest>``
(``digest``: of those arguments), written once and never replaced or deleted, so two runs with
different presets in one ``root`` keep both worlds and a reader is never given a world
regenerated under it.  ``prepare()`` reuses that folder when its manifest is there, else
generates it into a temporary sibling and renames it into place, under a file lock, so
concurrent runs never see half a world.  A ``root`` that is itself a world folder of the same
arguments (it holds their ``manifest.json``: the layout before 0.3.1, or a path printed by
``simla-bench world generate``) is used as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from simla_bench.errors import DataError
from simla_bench.interfaces import DatasetSource

from ..sources import NLVR2, CocoKarpathy, RefCOCOPlus, VQAv2, AlbefPretrain
from . import presets as P

MANIFEST = "manifest.json"


def _rich_progress():
    """A rich progress bar (on stderr) and a callback ``(stage, done, total)`` driving it."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    bar = Progress(TextColumn("[bold]world[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal)
    task = bar.add_task("rendering", total=None)

    def update(stage: str, done: int, total: int) -> None:
        bar.update(task, description=stage, completed=done, total=total)

    return bar, update


class WorldSource(DatasetSource):
    """The built-in generated world: pretraining pairs, retrieval, grounding, VQA and NLVR2
    in the official formats (generated on first use, deterministic from the seed)."""

    provides = ("pretrain", "retrieval", "grounding", "vqa", "nlvr2")
    defaults = {"preset": "small", "root": "data/world", "seed": 0, "image_size": 64, "counts": {},
                "workers": 0, "skip_bad": False, "verify_images": True}

    def __init__(self, name: str, options=None):
        super().__init__(name, options)
        self.counts = P.resolve_counts(self.options["preset"], self.options["counts"])
        if not 32 <= self.options["image_size"] <= 512:
            from simla_bench.errors import ConfigError

            raise ConfigError(f"dataset '{name}': image_size must be between 32 and 512, got {self.options['image_size']}")
        #: the ``root`` option: the parent folder of the worlds
        self.parent = Path(self.options["root"]).expanduser().absolute()
        #: this world's own folder
        self.root = self.parent if self._matches(self.parent) else self.parent / self.folder_name()
        self._manifest: dict | None = None

    # ------------------------------------------------------------------ generation
    def params(self) -> dict[str, Any]:
        return {"format": "simla-bench-world", "generator_version": P.GENERATOR_VERSION,
                "preset": self.options["preset"], "seed": self.options["seed"],
                "image_size": self.options["image_size"], "counts": self.counts}

    def folder_name(self) -> str:
        """``<preset>-s<seed>-<size>px-g<generator version>-<digest of the arguments>``."""
        o = self.options
        digest = hashlib.sha256(json.dumps(self.params(), sort_keys=True).encode()).hexdigest()[:10]
        return f"{o['preset']}-s{o['seed']}-{o['image_size']}px-g{P.GENERATOR_VERSION}-{digest}"

    def _matches(self, folder: Path) -> bool:
        m = self.read_manifest(folder)
        return m is not None and all(m.get(k) == v for k, v in self.params().items())

    def read_manifest(self, folder: Path | None = None) -> dict | None:
        path = (self.root if folder is None else folder) / MANIFEST
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # unreadable, not UTF-8 or not JSON: not a world manifest
            return None

    def is_generated(self) -> bool:
        """Whether the folder already holds this exact world (``prepare`` will reuse it)."""
        return self._current() is not None

    @classmethod
    def open(cls, root) -> "WorldSource":
        """The source of an already generated world folder (read from its manifest)."""
        from .contact_sheet import open_world

        return open_world(root)

    def contact_sheet(self, out, dpi: int = 72):
        """Write a PNG contact sheet of sample scenes of this world to ``out``."""
        from .contact_sheet import contact_sheet

        return contact_sheet(self.root, out, dpi=dpi)

    def _current(self) -> dict | None:
        """The manifest of this world when its folder holds it (generated alike), else None."""
        m = self.read_manifest()
        if m is not None and all(m.get(k) == v for k, v in self.params().items()):
            return m
        return None

    def prepare(self, progress: Callable[..., None] | None = None) -> dict[str, Any]:
        """Generate the world if needed; returns the manifest (seed, preset, counts, checksum).

        Generation shows a rich progress bar on a terminal; ``progress``, when given, is
        called as ``progress(message=...)`` when generation starts and ends."""
        if self._manifest is not None:
            return self._manifest
        manifest = self._current()
        if manifest is None:
            from filelock import FileLock

            self.root.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(self.root.parent / f".{self.root.name}.lock")):
                manifest = self._current() or self._generate(progress)
        self._manifest = manifest
        return manifest

    def _generate(self, progress: Callable[..., None] | None) -> dict:
        from .generate import generate

        if self.root.exists():
            # never replaced: a folder of this name that is not this world is someone else's
            raise DataError(f"world folder {self.root} exists but holds no manifest of this world",
                            hint="move it away, or point dataset option 'root' at another parent folder")
        tmp = self.root.parent / f".{self.root.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        bar, update = _rich_progress()
        note = progress or (lambda **kw: None)
        note(message=f"world: generating preset {self.options['preset']} (seed {self.options['seed']}) in {self.root}")
        bar.start()
        try:
            result = generate(tmp, self.counts, self.options["seed"], self.options["image_size"], update,
                              workers=self.options["workers"])
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            bar.stop()
        manifest = {**self.params(), **result}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        os.rename(tmp, self.root)  # fails rather than replace: the folder did not exist under the lock
        note(message=f"world: generated {result['records']['images']} images under {self.root} "
                     f"(checksum {result['checksum'][:12]})")
        return manifest

    # --------------------------------------------------------------------- loading
    def _opts(self, **paths: str) -> dict:
        return {"image_root": str(self.root), "skip_bad": self.options["skip_bad"],
                "verify_images": self.options["verify_images"],
                **{k: str(self.root / v) for k, v in paths.items()}}

    def loader(self, kind: str) -> DatasetSource:
        """The real-format source that reads this world's files for ``kind``."""
        if kind == "pretrain":
            return AlbefPretrain(self.name, {**self._opts(), "files": [str(self.root / P.PRETRAIN_FILE)]})
        if kind == "retrieval":
            return CocoKarpathy(self.name, self._opts(**{f"{s}_file": P.retrieval_file(s) for s in P.RETRIEVAL_SPLITS}))
        if kind == "grounding":
            return RefCOCOPlus(self.name, self._opts(refs_file=P.REFS_FILE, instances_file=P.INSTANCES_FILE,
                                                     proposals_file=P.PROPOSALS_FILE))
        if kind == "vqa":
            files = {}
            for s in P.VQA_SPLITS:
                files[f"{s}_questions"], files[f"{s}_annotations"] = P.vqa_files(s)
            return VQAv2(self.name, {**self._opts(**files), "image_pattern": P.VQA_PATTERN})
        if kind == "nlvr2":
            return NLVR2(self.name, self._opts(**{f"{s}_file": P.nlvr2_file(s) for s in P.NLVR2_SPLITS},
                                               **{f"{s}_images": P.nlvr2_images(s) for s in P.NLVR2_SPLITS}))
        raise DataError(f"dataset '{self.name}' provides {', '.join(self.provides)}, not '{kind}'")

    def has_split(self, kind: str, split: str) -> bool | None:
        return self.loader(kind).has_split(kind, split) if kind in self.provides else False

    def load(self, kind: str, split: str = "train") -> Any:
        loader = self.loader(kind)
        self.prepare()
        return loader.load(kind, split)
