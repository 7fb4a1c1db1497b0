"""World generation: deterministic bytes from the seed, reuse of an existing world, a new folder
when the arguments change (never a regeneration in place), manifest contents, and refusal to
overwrite a foreign folder."""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from simla_bench.errors import ConfigError, DataError
from simla_bench.plugins.datasets.world.presets import PRESETS
from simla_bench.plugins.datasets.world.source import WorldSource
from simla_bench.testing.world import make_tiny_world

SMALL = {"pretrain": 30, "retrieval_train": 6, "retrieval_val": 4, "retrieval_test": 4, "retrieval_test_comp": 4,
         "grounding_train": 6, "grounding_val": 4, "grounding_testA": 4, "grounding_testB": 4, "grounding_test_comp": 4,
         "vqa_train": 6, "vqa_val": 4, "vqa_test": 4, "vqa_test_comp": 4,
         "nlvr2_train": 2, "nlvr2_dev": 2, "nlvr2_test": 2, "nlvr2_test_comp": 2}


def tree_digest(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "manifest.json"}


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = make_tiny_world(tmp_path / "a", **SMALL)
    b = make_tiny_world(tmp_path / "b", **SMALL)
    c = make_tiny_world(tmp_path / "c", seed=1, **SMALL)
    assert a.prepare()["checksum"] == b.prepare()["checksum"]
    assert tree_digest(a.root) == tree_digest(b.root)
    assert c.prepare()["checksum"] != a.prepare()["checksum"]
    assert tree_digest(c.root) != tree_digest(a.root)


def test_output_does_not_depend_on_worker_processes(tmp_path):
    one = WorldSource("world", {"preset": "tiny", "root": str(tmp_path / "one"), "counts": SMALL, "workers": 1})
    two = WorldSource("world", {"preset": "tiny", "root": str(tmp_path / "two"), "counts": SMALL, "workers": 2})
    assert one.prepare()["checksum"] == two.prepare()["checksum"]
    assert tree_digest(one.root) == tree_digest(two.root)


def test_manifest_and_reuse(tmp_path):
    src = make_tiny_world(tmp_path / "w", **SMALL)
    m = json.loads((src.root / "manifest.json").read_text())
    assert m["seed"] == 0 and m["preset"] == "tiny" and m["image_size"] == 64
    assert m["counts"]["pretrain"] == 30 and len(m["checksum"]) == 64
    assert m["records"]["pretrain"] == 30 * PRESETS["tiny"]["captions_per_image"]
    assert m["records"]["nlvr2"]["dev"] == 2 * 4
    assert len(src.load("pretrain", "train")) == m["records"]["pretrain"]
    stamp = (src.root / "manifest.json").stat().st_mtime_ns
    again = WorldSource("world", {"preset": "tiny", "root": str(src.root), "counts": SMALL})
    t = time.perf_counter()
    assert again.prepare() == m
    assert time.perf_counter() - t < 0.5
    assert (src.root / "manifest.json").stat().st_mtime_ns == stamp  # reused, not rewritten
    before = tree_digest(src.root)
    other = WorldSource("world", {"preset": "tiny", "root": str(tmp_path / "w"), "counts": SMALL, "seed": 3})
    assert other.prepare()["seed"] == 3  # different arguments: a folder of its own, next to the first
    assert other.root.parent == src.root.parent and other.root != src.root
    assert (src.root / "manifest.json").stat().st_mtime_ns == stamp and tree_digest(src.root) == before
    assert json.loads((other.root / "manifest.json").read_text())["checksum"] == other.prepare()["checksum"]
    assert not list((tmp_path / "w").glob(".*.tmp-*"))


def test_refuses_foreign_folder_and_bad_options(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    taken = WorldSource("world", {"root": str(tmp_path / "mine"), "preset": "tiny", "counts": SMALL})
    taken.root.mkdir()
    (taken.root / "notes.txt").write_text("not a world")
    with pytest.raises(DataError, match="exists but holds no manifest of this world"):
        taken.prepare()
    assert (taken.root / "notes.txt").read_text() == "not a world"
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        WorldSource("world", {"preset": "huge"})
    with pytest.raises(ConfigError, match="unknown count 'pretrain_pairs'"):
        WorldSource("world", {"counts": {"pretrain_pairs": 3}})
    with pytest.raises(ConfigError, match="unknown option"):
        WorldSource("world", {"presets": "tiny"})
    src = WorldSource("world", {"preset": "tiny", "root": str(tmp_path / "x"), "counts": SMALL})
    with pytest.raises(DataError, match="no grounding split 'test'"):
        src.load("grounding", "test")
    with pytest.raises(DataError, match="not 'captions'"):
        src.load("captions", "train")


def test_tiny_preset_is_fast(tmp_path):
    start = time.process_time()
    make_tiny_world(tmp_path / "w")
    assert time.process_time() - start < 5.0  # ~1 s of CPU on an idle 2-core machine


def test_registered_and_light_plugin_module(simla_registry):
    import subprocess
    import sys

    assert {"world", "albef_pretrain", "coco_karpathy", "flickr30k", "refcoco+", "vqa_v2", "nlvr2"} <= set(
        simla_registry.names("dataset"))
    for name in simla_registry.names("dataset"):
        simla_registry.load("dataset", name)  # each satisfies the DatasetSource interface
    code = ("import sys, simla_bench.plugins.datasets as d; "
            "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_other_image_sizes_scale_the_world(tmp_path):
    from PIL import Image

    src = make_tiny_world(tmp_path / "w", image_size=48, **SMALL)
    refs = src.load("grounding", "val")
    for r in refs:
        assert r.image_size == (48, 48)
        with Image.open(r.image) as img:
            assert img.size == (48, 48)
        x, y, w, h = r.box
        assert 0 <= x and 0 <= y and x + w <= 48 and y + h <= 48 and w >= 3 and h >= 3
    with pytest.raises(ConfigError, match="image_size must be between 32 and 512"):
        WorldSource("world", {"image_size": 16})
