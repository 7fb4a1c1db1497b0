"""Dataset sources for the real datasets, each reading one official format.

Every source takes the paths of its annotation files and an image root as options (see
``configs/datasets/*.yaml``), validates each record on load (images decoded fully), and with
``skip_bad: true`` skips bad records (an undecodable or truncated image included) and reports
how many at the end instead of stopping at the first.  ``prepare()`` returns the manifest of
:mod:`.manifest`: a checksum of every annotation file's content and of a (path, size, mtime)
listing of the image folders, so editing a data file changes the cells that read it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, ClassVar, Mapping

from simla_bench.errors import DataError
from simla_bench.interfaces import DatasetSource

from simla_bench import filecache
from .checks import Checker
from .manifest import file_manifest

COMMON = {"image_root": "", "skip_bad": False, "verify_images": True}


class _FileSource(DatasetSource):
    """Shared plumbing: split -> option lookup, checker, skip report."""

    splits: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    #: options naming folders of images (listed, not read, by the manifest)
    image_options: ClassVar[tuple[str, ...]] = ("image_root",)
    last_report = None

    def annotation_options(self) -> list[str]:
        """Options naming annotation files (their content is in the manifest checksum)."""
        return [k for k in self.defaults if k == "files" or k.endswith(("_file", "_questions", "_annotations"))]

    def split_options(self, split: str) -> list[str]:
        """The options a split needs set (file paths)."""
        return [k for k in self.annotation_options() if k in (f"{split}_file", f"{split}_questions", f"{split}_annotations")]

    def prepare(self, progress=None) -> dict[str, Any]:
        """The manifest of :mod:`.manifest` (annotation files by content, image folders by listing)."""
        return file_manifest(type(self).__name__, self.options, self.annotation_options(), self.image_options)

    def has_split(self, kind: str, split: str) -> bool | None:
        if kind not in self.provides or split not in self.splits.get(kind, (split,)):
            return False
        return all(self.options.get(k) for k in self.split_options(split))

    def _checker(self) -> Checker:
        return Checker(f"dataset '{self.name}'", self.options["skip_bad"], self.options["verify_images"])

    def _finish(self, checker: Checker) -> None:
        filecache.flush()
        self.last_report = checker.report
        line = checker.summary()
        if line:
            print(f"warning: {line}", file=sys.stderr)

    def _path(self, option: str) -> Path | None:
        value = self.options.get(option)
        return Path(value).expanduser() if value else None

    def _root(self, option: str = "image_root") -> Path | None:
        return self._path(option) or self._path("image_root")

    def _check(self, kind: str, split: str) -> None:
        if kind not in self.provides:
            raise DataError(f"dataset '{self.name}' provides {', '.join(self.provides)}, not '{kind}'",
                            hint="point the task at a dataset of the right kind")
        allowed = self.splits.get(kind, ())
        if allowed and split not in allowed:
            raise DataError(f"dataset '{self.name}' has no {kind} split '{split}'; splits: {', '.join(allowed)}")

    def _need(self, option: str, split: str) -> Path:
        path = self._path(option)
        if path is None:
            raise DataError(f"dataset '{self.name}': split '{split}' needs option '{option}' (a file path)",
                            hint=f"set datasets.<name>.options.{option} (see configs/datasets/)")
        return path


class AlbefPretrain(_FileSource):
    """Image-caption pairs from ALBEF pretraining JSON files (list of {image, caption})."""

    provides = ("pretrain",)
    splits = {"pretrain": ("train",)}
    defaults = {"files": [], **COMMON}

    def split_options(self, split: str) -> list[str]:
        return ["files"]

    def load(self, kind: str, split: str = "train") -> Any:
        from .formats.albef import read_pretrain

        self._check(kind, split)
        if not self.options["files"]:
            raise DataError(f"dataset '{self.name}': option 'files' is empty", hint="list the ALBEF pretraining JSON files")
        checker = self._checker()
        out = read_pretrain([Path(f).expanduser() for f in self.options["files"]], self._root(), checker)
        self._finish(checker)
        return out


class CocoKarpathy(_FileSource):
    """Image-text retrieval from ALBEF's Karpathy-split JSON (COCO)."""

    provides = ("retrieval",)
    splits = {"retrieval": ("train", "val", "test", "test_comp")}
    defaults = {"train_file": "", "val_file": "", "test_file": "", "test_comp_file": "", **COMMON}

    def load(self, kind: str, split: str) -> Any:
        from .formats.albef import read_retrieval_eval, read_retrieval_train

        self._check(kind, split)
        file = self._need(f"{split}_file", split)
        checker = self._checker()
        if split == "train":
            out = read_retrieval_train(file, self._root(), checker)
        else:
            out = read_retrieval_eval(file, self._root(), checker)
        self._finish(checker)
        return out


class Flickr30k(CocoKarpathy):
    """Image-text retrieval from ALBEF's Flickr30K JSON (same format as COCO Karpathy)."""


class RefCOCOPlus(_FileSource):
    """RefCOCO+ grounding from the refer toolkit's refs(unc).p + instances.json + a proposals file."""

    provides = ("grounding",)
    splits = {"grounding": ("train", "val", "testA", "testB", "test_comp")}
    defaults = {"refs_file": "", "instances_file": "", "proposals_file": "",
                "proposals_key": "image_id", **COMMON}
    #: the splits of the refer toolkit's refs file (others, e.g. test_comp, may or may not be in it)
    official_splits = ("train", "val", "testA", "testB")

    def split_options(self, split: str) -> list[str]:
        return ["refs_file", "instances_file", "proposals_file"]

    def has_split(self, kind: str, split: str) -> bool | None:
        known = super().has_split(kind, split)
        return known if not known or split in self.official_splits else None

    def load(self, kind: str, split: str) -> Any:
        from .formats.refer import PROPOSAL_KEYS, read_grounding

        if self.options["proposals_key"] not in PROPOSAL_KEYS:
            from simla_bench.errors import ConfigError

            raise ConfigError(f"dataset '{self.name}': proposals_key must be one of {', '.join(PROPOSAL_KEYS)}, "
                              f"got {self.options['proposals_key']!r}")

        self._check(kind, split)
        checker = self._checker()
        out = read_grounding(self._need("refs_file", split), self._need("instances_file", split),
                             self._need("proposals_file", split), self._root(), split, checker,
                             proposals_key=self.options["proposals_key"])
        self._finish(checker)
        if not out:
            raise DataError(f"dataset '{self.name}': no refs with split '{split}' in {self.options['refs_file']}")
        return out


class VQAv2(_FileSource):
    """VQA v2 from the official questions + annotations JSON files."""

    provides = ("vqa",)
    splits = {"vqa": ("train", "val", "test", "test_comp")}
    defaults = {
        **{f"{s}_{k}": "" for s in ("train", "val", "test", "test_comp") for k in ("questions", "annotations")},
        "image_pattern": "{data_subtype}/COCO_{data_subtype}_{image_id:012d}.jpg",
        **COMMON,
    }

    def load(self, kind: str, split: str) -> Any:
        from .formats.vqa import read_vqa

        self._check(kind, split)
        checker = self._checker()
        out = read_vqa(self._need(f"{split}_questions", split), self._need(f"{split}_annotations", split),
                       self._root(), self.options["image_pattern"], checker)
        self._finish(checker)
        return out


class NLVR2(_FileSource):
    """NLVR2 from the official JSON-lines files (images found from the identifier)."""

    provides = ("nlvr2",)
    splits = {"nlvr2": ("train", "dev", "test", "test_comp")}
    defaults = {
        **{f"{s}_file": "" for s in ("train", "dev", "test", "test_comp")},
        **{f"{s}_images": "" for s in ("train", "dev", "test", "test_comp")},
        **COMMON,
    }
    image_options = ("image_root", *(f"{s}_images" for s in ("train", "dev", "test", "test_comp")))

    def split_options(self, split: str) -> list[str]:
        return [f"{split}_file"]

    def load(self, kind: str, split: str) -> Any:
        from .formats.nlvr2 import read_nlvr2

        self._check(kind, split)
        checker = self._checker()
        out = read_nlvr2(self._need(f"{split}_file", split), self._root(f"{split}_images"), checker)
        self._finish(checker)
        return out
