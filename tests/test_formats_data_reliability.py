"""Issue 16, data: real data files in the key, an immutable world, validation before work,
real-data configs, ``base:`` resolution, backbone options and load reports, ALBEF's files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from simla_bench.config import CONFIG_DIR, load_config
from simla_bench.errors import ConfigError


# ------------------------------------------------------------------ base: resolved relative to the file
def test_copied_dataset_config_finds_its_packaged_base(tmp_path):
    copy = tmp_path / "mine" / "coco_karpathy.yaml"
    copy.parent.mkdir()
    shutil.copy(CONFIG_DIR / "datasets" / "coco_karpathy.yaml", copy)
    cfg = load_config(copy)
    assert cfg.tasks["retrieval"].dataset == "coco"
    assert cfg.model.name == load_config().model.name  # default.yaml's model came through


def test_base_next_to_the_file_wins_and_a_missing_base_names_both_places(tmp_path):
    (tmp_path / "default.yaml").write_text("name: local_parent\nseeds: [7]\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "child.yaml").write_text("base: ../default.yaml\n")
    assert load_config(tmp_path / "sub" / "child.yaml").seeds == [7]
    (tmp_path / "orphan.yaml").write_text("base: ../nowhere/parent_of_nothing.yaml\n")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "orphan.yaml")
    assert str(tmp_path) in str(err.value) and str(CONFIG_DIR) in str(err.value)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------ tiny real-format data on disk
def _jpeg(path: Path, colour=(200, 30, 30), truncated: bool = False) -> Path:
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(sum(colour)).integers(0, 60, (48, 48, 3))
    Image.fromarray((noise + np.array(colour) * 0.7).astype("uint8")).save(path, quality=95)
    if truncated:  # headers intact, the pixel data cut short: img.verify() passes it, img.load() fails
        raw = path.read_bytes()
        path.write_bytes(raw[: int(len(raw) * 0.7)])
        with Image.open(path) as img:
            img.verify()
    return path


def _coco_files(root: Path, bad: str | None = None) -> dict[str, str]:
    """ALBEF pretraining + Karpathy retrieval files over 4 images; ``bad`` names a truncated one."""
    for i in range(4):
        _jpeg(root / "images" / f"im{i}.jpg", (60 * i, 100, 30), truncated=f"im{i}.jpg" == bad)
    pre = [{"image": f"im{i}.jpg", "caption": f"picture number {i}"} for i in range(4)]
    train = [{"image": f"im{i}.jpg", "caption": f"photo {i}", "image_id": i} for i in range(4)]
    test = [{"image": f"im{i}.jpg", "caption": [f"a {i}", f"b {i}"]} for i in range(4)]
    for name, data in (("pre.json", pre), ("train.json", train), ("test.json", test)):
        (root / name).write_text(json.dumps(data))
    return {"pre": str(root / "pre.json"), "train": str(root / "train.json"), "test": str(root / "test.json"),
            "images": str(root / "images")}


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    from simla_bench import filecache

    monkeypatch.setenv("SIMLA_BENCH_CACHE", str(tmp_path / "cache"))
    filecache.forget_process_memory()
    yield tmp_path / "cache"
    filecache.forget_process_memory()


# ------------------------------------------------------------------ real data files in the key
def test_editing_an_annotation_file_changes_the_checksum_and_untouched_files_are_not_reread(
        tmp_path, cache_dir, monkeypatch):
    from simla_bench import filecache
    from simla_bench.plugins.datasets.sources import CocoKarpathy

    f = _coco_files(tmp_path / "coco")
    opts = {"train_file": f["train"], "test_file": f["test"], "image_root": f["images"]}
    first = CocoKarpathy("coco", opts).prepare()
    assert set(first["files"]) == {"train_file", "test_file"} and first["images"]["image_root"]["files"] == 4
    hashed: list[str] = []
    real = filecache.hash_file
    monkeypatch.setattr(filecache, "hash_file", lambda p: hashed.append(Path(p).name) or real(p))
    assert CocoKarpathy("coco", opts).prepare()["checksum"] == first["checksum"]
    assert hashed == []  # nothing changed: both files only stat-ed (the cache answered)
    data = json.loads(Path(f["test"]).read_text())
    data[0]["caption"][0] = "an edited caption"
    Path(f["test"]).write_text(json.dumps(data))
    edited = CocoKarpathy("coco", opts).prepare()
    assert edited["checksum"] != first["checksum"] and hashed == ["test.json"]
    assert edited["files"]["train_file"] == first["files"]["train_file"]
    _jpeg(Path(f["images"]) / "im0.jpg", (1, 2, 3))  # an image re-written: the listing sees it
    assert CocoKarpathy("coco", opts).prepare()["checksum"] != edited["checksum"]
    # two sources over other files have other checksums (was: every real source {} -> one checksum)
    other = CocoKarpathy("coco", {**opts, "train_file": f["test"]}).prepare()
    assert other["checksum"] != CocoKarpathy("coco", opts).prepare()["checksum"]


# ------------------------------------------------------------------ the world is immutable
def test_a_second_preset_in_the_same_root_leaves_the_first_world_untouched(tmp_path):
    from simla_bench.plugins.datasets.world.source import WorldSource

    small = {"pretrain": 6, "retrieval_train": 2, "retrieval_val": 2, "retrieval_test": 2, "retrieval_test_comp": 2,
             "grounding_train": 2, "grounding_val": 2, "grounding_testA": 2, "grounding_testB": 2,
             "grounding_test_comp": 2, "vqa_train": 2, "vqa_val": 2, "vqa_test": 2, "vqa_test_comp": 2,
             "nlvr2_train": 1, "nlvr2_dev": 1, "nlvr2_test": 1, "nlvr2_test_comp": 1}
    a = WorldSource("world", {"preset": "tiny", "root": str(tmp_path / "data"), "counts": small})
    a.prepare()
    files_a = {p: p.stat().st_mtime_ns for p in a.root.rglob("*") if p.is_file()}
    reader = WorldSource("world", {"preset": "tiny", "root": str(tmp_path / "data"), "counts": small})
    b = WorldSource("world", {"preset": "small", "root": str(tmp_path / "data"), "counts": small})
    b.prepare()
    assert b.root != a.root and b.root.parent == a.root.parent == tmp_path / "data"
    assert {p: p.stat().st_mtime_ns for p in a.root.rglob("*") if p.is_file()} == files_a
    assert reader.root == a.root and len(reader.load("pretrain", "train")) == len(a.load("pretrain", "train"))
    assert a.root.name.startswith("tiny-s0-64px-g") and b.root.name.startswith("small-s0-64px-g")


# ------------------------------------------------------------------ validation before work
class _RealData:
    """The built-in file sources, next to the fake objectives/tasks of helpers.runner_fakes."""

    from simla_bench.hookspecs import hookimpl

    @hookimpl
    def register_datasets(self, register):
        register("albef_pretrain", "simla_bench.plugins.datasets.sources:AlbefPretrain", "pairs")
        register("coco_karpathy", "simla_bench.plugins.datasets.sources:CocoKarpathy", "retrieval")


def _retrieval_task():
    from helpers.runner_fakes import FakeTask

    class ToyRetrieval(FakeTask):  # the default data_splits: retrieval train + test
        data_kind = "retrieval"

    return ToyRetrieval


def _run(tmp_path, files, skip_bad=False, pipe=None):
    from helpers.runner_fakes import FakePipeline, make_config, make_registry

    from simla_bench.runner.matrix import MatrixRunner

    reg = make_registry()
    reg.add_plugin(_RealData())
    task = _retrieval_task()

    class Plugin:
        from simla_bench.hookspecs import hookimpl

        @hookimpl
        def register_tasks(self, register):
            register("toyret", task, "toy retrieval")

    reg.add_plugin(Plugin())
    common = {"image_root": files["images"], "skip_bad": skip_bad}
    cfg = make_config(tmp_path, datasets={
        "pairs": {"source": "albef_pretrain", "options": {"files": [files["pre"]], **common}},
        "coco": {"source": "coco_karpathy", "options": {"train_file": files["train"], "test_file": files["test"],
                                                        **common}}},
        pretrain={"dataset": "pairs", "steps": 2, "checkpoint_every": 2}, tasks={"toyret": {"dataset": "coco"}},
        objectives={"itc": {}})
    pipe = pipe or FakePipeline()
    return pipe, MatrixRunner(cfg, reg, pipe, cfg.output_dir).run()


def test_a_truncated_jpeg_stops_the_run_before_pretraining_in_one_line(tmp_path, cache_dir):
    from simla_bench.errors import DataError

    from helpers.runner_fakes import FakePipeline

    files = _coco_files(tmp_path / "coco", bad="im2.jpg")
    pipe = FakePipeline()
    with pytest.raises(DataError) as err:
        _run(tmp_path, files, pipe=pipe)
    line = err.value.one_line()
    assert "im2.jpg" in line and "skip_bad" in line and "\n" not in line and "before any work" in line
    assert pipe.pretrain_calls == []  # stopped before pretraining


def test_skip_bad_skips_a_truncated_jpeg_everywhere_and_reports_it(tmp_path, cache_dir, capsys):
    from simla_bench.plugins.datasets.sources import AlbefPretrain, CocoKarpathy

    files = _coco_files(tmp_path / "coco", bad="im2.jpg")
    pipe, result = _run(tmp_path, files, skip_bad=True)
    assert not result.failures and len(result.records) == 1 and pipe.pretrain_calls
    assert "skipped 1 bad record" in capsys.readouterr().err
    pairs = AlbefPretrain("p", {"files": [files["pre"]], "image_root": files["images"], "skip_bad": True})
    assert [r.image.name for r in pairs.load("pretrain", "train")] == ["im0.jpg", "im1.jpg", "im3.jpg"]
    assert pairs.last_report.skipped == 1 and "does not decode" in pairs.last_report.problems[0]
    split = CocoKarpathy("c", {"test_file": files["test"], "image_root": files["images"], "skip_bad": True}).load(
        "retrieval", "test")
    assert [p.name for p in split.images] == ["im0.jpg", "im1.jpg", "im3.jpg"]


def test_images_that_decoded_are_not_decoded_again(tmp_path, cache_dir, monkeypatch):
    from PIL import Image

    from simla_bench import filecache
    from simla_bench.plugins.datasets.sources import AlbefPretrain

    files = _coco_files(tmp_path / "coco")
    opts = {"files": [files["pre"]], "image_root": files["images"]}
    AlbefPretrain("p", opts).load("pretrain", "train")
    filecache.forget_process_memory()  # as a new process: only the on-disk cache remains
    opened: list[str] = []
    real = Image.open
    monkeypatch.setattr(Image, "open", lambda p, *a, **k: opened.append(Path(p).name) or real(p, *a, **k))
    AlbefPretrain("p", opts).load("pretrain", "train")
    assert opened == []
    _jpeg(Path(files["images"]) / "im1.jpg", (9, 9, 9))  # changed file: decoded again
    AlbefPretrain("p", opts).load("pretrain", "train")
    assert opened == ["im1.jpg"]


# ------------------------------------------------------------------ ALBEF's NLVR2 arrays and dets.json
def test_albef_nlvr2_json_array_reads_with_identifiers_grouping_one_sentence(tmp_path, cache_dir):
    from simla_bench.tasks.metrics.nlvr2 import sentence_key
    from simla_bench.plugins.datasets.sources import NLVR2

    for pair in (0, 1):
        for side in (0, 1):
            _jpeg(tmp_path / "images" / "dev" / f"dev-850-{pair}-img{side}.png", (40 * pair, 90, 60 * side))
    ann = [{"images": [f"dev/dev-850-{p}-img0.png", f"dev/dev-850-{p}-img1.png"],
            "sentence": "There are two dogs.", "label": label} for p, label in ((0, "True"), (1, "False"))]
    (tmp_path / "nlvr_dev.json").write_text(json.dumps(ann, indent=1))  # ALBEF: one JSON array, not lines
    records = NLVR2("n", {"dev_file": str(tmp_path / "nlvr_dev.json"),
                          "image_root": str(tmp_path / "images")}).load("nlvr2", "dev")
    assert [r.label for r in records] == [True, False]
    assert records[0].left.name == "dev-850-0-img0.png" and records[1].right.name == "dev-850-1-img1.png"
    assert len({r.identifier for r in records}) == 2
    assert len({sentence_key(r.identifier) for r in records}) == 1  # one sentence of set 850: one consistency group


def test_albef_dets_json_is_keyed_by_image_id(tmp_path, cache_dir):
    import pickle

    from simla_bench.plugins.datasets.sources import RefCOCOPlus

    for image_id in (77, 99):
        _jpeg(tmp_path / "coco" / f"COCO_train2014_{image_id:012d}.jpg")
    instances = {"images": [{"id": i, "file_name": f"COCO_train2014_{i:012d}.jpg", "width": 48, "height": 48}
                            for i in (77, 99)],
                 "annotations": [{"id": 1, "image_id": 77, "bbox": [1, 1, 10, 10], "category_id": 1},
                                 {"id": 2, "image_id": 99, "bbox": [20, 20, 8, 8], "category_id": 1}],
                 "categories": [{"id": 1, "name": "dog"}]}
    refs = [{"ref_id": 5, "ann_id": 1, "image_id": 77, "split": "val", "sentences": [{"sent": "left dog"}]},
            # a ref id equal to another image's id: ALBEF's dets.json must be looked up by image id
            {"ref_id": 77, "ann_id": 2, "image_id": 99, "split": "val", "sentences": [{"sent": "right dog"}]}]
    dets = {"77": [[1, 1, 10, 10, 0.9], [30, 30, 5, 5, 0.2]], "99": [[20, 20, 8, 8, 0.8]]}  # x, y, w, h, extras
    (tmp_path / "refs(unc).p").write_bytes(pickle.dumps(refs))
    (tmp_path / "instances.json").write_text(json.dumps(instances))
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    source = RefCOCOPlus("r", {"refs_file": str(tmp_path / "refs(unc).p"), "instances_file": str(tmp_path / "instances.json"),
                               "proposals_file": str(tmp_path / "dets.json"), "image_root": str(tmp_path / "coco")})
    by_ref = {r.ref_id: r for r in source.load("grounding", "val")}
    assert by_ref[5].proposals == [(1.0, 1.0, 10.0, 10.0), (30.0, 30.0, 5.0, 5.0)]
    assert by_ref[77].proposals == [(20.0, 20.0, 8.0, 8.0)]
    assert source.has_split("grounding", "val") is True and source.has_split("grounding", "test_comp") is None


# ------------------------------------------------------------------ backbone options and load reports
_TINY_BERT = dict(vocab_size=120, hidden_size=48, num_hidden_layers=3, num_attention_heads=4, intermediate_size=96,
                  max_position_embeddings=40)


def test_an_unknown_bert_option_is_refused_listing_the_allowed_ones(tmp_path):
    from simla_bench.plugins.backbones.bert import bert_world_tiny, build

    with pytest.raises(ConfigError) as err:
        bert_world_tiny(pretrained=str(tmp_path / "bert-base-uncased"))  # the README's old, wrong name
    line = err.value.one_line()
    assert "unknown option(s) pretrained" in line and "weights" in line and "hidden_size" in line
    assert "\n" not in line
    build(config=_TINY_BERT, hidden_dropout_prob=0.0)  # a BertConfig field is an option


def test_a_partial_bert_load_prints_one_report_once(tmp_path, capsys):
    import torch

    from simla_bench.plugins.backbones.bert import build

    source = build(config=_TINY_BERT)
    state = {**source.state_dict(), **{f"visual_encoder.blocks.{i}.w": torch.zeros(2) for i in range(3)}}
    torch.save(state, tmp_path / "partial.pth")
    capsys.readouterr()
    model = build(config=_TINY_BERT, weights=str(tmp_path / "partial.pth"), cross_attention_layers=[2],
                  encoder_width=40)
    build(config=_TINY_BERT, weights=str(tmp_path / "partial.pth"), cross_attention_layers=[2], encoder_width=40)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "partial.pth" in ln]
    assert len(lines) == 1, err  # printed once for the same load
    n_cross = sum(1 for k in model.state_dict() if ".crossattention." in k)
    assert f"loaded {len(source.state_dict())} tensor(s)" in lines[0]
    assert f"missing {n_cross} (" in lines[0] and "unexpected 3 (visual_encoder.blocks.0.w" in lines[0]
    assert torch.equal(model.state_dict()["embeddings.word_embeddings.weight"],
                       source.state_dict()["embeddings.word_embeddings.weight"])


def test_a_vit_load_reports_the_resampled_position_embeddings(tmp_path, capsys):
    import torch

    from simla_bench.plugins.backbones.vit import vit_world_tiny

    torch.save(vit_world_tiny(img_size=32).vit.state_dict(), tmp_path / "vit32.pth")
    capsys.readouterr()
    vit_world_tiny(img_size=64, weights=str(tmp_path / "vit32.pth"))
    err = capsys.readouterr().err
    (line,) = [ln for ln in err.splitlines() if "vit32.pth" in ln]
    assert "resampled 1 (pos_embed (1, 17, 192) -> (1, 65, 192)" in line  # 4x4 patches + CLS -> 8x8 + CLS


def test_a_run_whose_cells_are_all_cached_does_not_validate_again(tmp_path, cache_dir):
    from helpers.runner_fakes import FakePipeline

    class Counting(FakePipeline):
        def __init__(self):
            super().__init__()
            self.validated: list[list[str]] = []

        def validate(self, cfg, registry, data, tasks):
            self.validated.append(list(tasks))
            return super().validate(cfg, registry, data, tasks)

    files = _coco_files(tmp_path / "coco")
    pipe, first = _run(tmp_path, files, pipe=Counting())
    assert not first.failures and pipe.validated == [["toyret"]]
    pipe, again = _run(tmp_path, files, pipe=Counting())
    assert again.cached == 1 and pipe.validated == []  # nothing new: the second run checked nothing


def test_a_bad_file_stops_a_forced_run_before_its_records_are_deleted(tmp_path, cache_dir):
    from simla_bench.errors import DataError
    from simla_bench.runner.matrix import MatrixRunner
    from helpers.runner_fakes import FakePipeline

    files = _coco_files(tmp_path / "coco")
    _, first = _run(tmp_path, files)
    (record,) = first.run_dir.joinpath("cells").glob("*.json")
    _jpeg(Path(files["images"]) / "im2.jpg", truncated=True)  # the data breaks after the first run
    runner_init = MatrixRunner.__init__

    def forced(self, *a, **kw):
        runner_init(self, *a, **{**kw, "force": True})

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MatrixRunner, "__init__", forced)
        with pytest.raises(DataError, match="im2.jpg"):
            _run(tmp_path, files, pipe=FakePipeline())
    assert record.is_file()  # --force deletes only once the data has passed its checks
