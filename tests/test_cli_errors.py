"""Every error of issue 16, item 7, is one line with a non-zero exit and no
traceback: unwritable or blocked output paths (``run --out``, ``score
--json``, ``report --out``), files that are not UTF-8 (a config, a
prediction file, a JSON file), a device name that is not accepted or not
present, NaN under ITM (named with objective and step), and hints holding
``[x, y, w, h]`` printed verbatim (rich markup escaped)."""

from __future__ import annotations

import copy
import json
import pickle

import pytest
import torch
from click.testing import CliRunner

from simla_bench.cli import main

#: a run that would pretrain and score if it got past the checks
TINY_RUN = ["run", "--world", "tiny", "--steps", "1", "--objectives", "itc", "--tasks", "retrieval", "-q"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line(result, *fragments, code=2):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output, result.output
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err
    return err


# ------------------------------------------------------------------- output paths
def test_run_out_under_a_file_is_one_line_and_nothing_is_written(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    result = invoke(*TINY_RUN, "--out", blocker / "run")
    assert_one_line(result, f"'{blocker / 'run'}'", "is a file, not a folder", "--out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_run_out_in_an_unwritable_folder_is_one_line(tmp_path, monkeypatch):
    import simla_bench.cli.common as common

    locked = tmp_path / "locked"
    locked.mkdir()
    real = common.os.access
    # (tests may run as root, for whom chmod does not lock a folder: the check asks os.access)
    monkeypatch.setattr(common.os, "access", lambda p, mode: False if str(p) == str(locked) else real(p, mode))
    result = invoke(*TINY_RUN, "--out", locked / "deep" / "run")
    assert_one_line(result, f"'{locked / 'deep' / 'run'}' is not writable", f"'{locked}'")
    assert list(locked.iterdir()) == []


def test_file_system_error_during_a_run_is_one_line(tmp_path, monkeypatch):
    """What the up-front check cannot see (e.g. a read-only mount that os.access calls writable)."""
    from simla_bench.runner.matrix import MatrixRunner

    def refuse(self):
        raise PermissionError(1, "Operation not permitted", str(tmp_path / "ro" / "cells"))

    monkeypatch.setattr(MatrixRunner, "run", refuse)
    result = invoke(*TINY_RUN, "--out", tmp_path / "ro")
    assert_one_line(result, "Operation not permitted", str(tmp_path / "ro" / "cells"))


@pytest.fixture
def nlvr2_files(tmp_path):
    ann, pred = tmp_path / "dev.json", tmp_path / "pred.csv"
    ann.write_text(json.dumps({"identifier": "dev-1-0-0", "label": "True"}) + "\n")
    pred.write_text("dev-1-0-0,True\n")
    return ann, pred


def test_score_json_creates_missing_folders(tmp_path, nlvr2_files):
    ann, pred = nlvr2_files
    out = tmp_path / "new" / "deeper" / "scores.json"
    result = invoke("score", "nlvr2", "-p", pred, "-a", ann, "--json", out)
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["metrics"]["accuracy"] == 100.0
    assert [p.name for p in out.parent.iterdir()] == ["scores.json"]  # no temporary file left


def test_score_json_that_cannot_be_written_fails_before_scoring(tmp_path, nlvr2_files):
    ann, pred = nlvr2_files
    (tmp_path / "afile").write_text("x")
    result = invoke("score", "nlvr2", "-p", pred, "-a", ann, "--json", tmp_path / "afile" / "s.json")
    assert_one_line(result, "--json", "is a file, not a folder")
    assert "accuracy" not in result.stdout  # refused before any scoring
    assert_one_line(invoke("score", "nlvr2", "-p", pred, "-a", ann, "--json", tmp_path), "is a folder")


def test_report_out_under_a_file_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("x")
    result = invoke("report", tmp_path, "--format", "csv", "--out", tmp_path / "afile" / "t.csv")
    assert_one_line(result, "--out", "is a file, not a folder")


# ------------------------------------------------------------------- non-UTF-8 files
def test_config_that_is_not_utf8_is_one_line(tmp_path):
    cfg = tmp_path / "latin1.yaml"
    cfg.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    result = invoke("run", "--config", cfg, "-q")
    assert_one_line(result, str(cfg), "not UTF-8", "byte 0xe9", "offset 9")


def test_prediction_files_that_are_not_utf8_are_one_line(tmp_path, nlvr2_files):
    ann, _ = nlvr2_files
    pred = tmp_path / "latin1.csv"
    pred.write_bytes("dev-1-0-0,True\n# caf\u00e9\n".encode("latin-1"))
    assert_one_line(invoke("score", "nlvr2", "-p", pred, "-a", ann), str(pred), "not UTF-8", "byte offset 20")
    vqa = tmp_path / "vqa.json"
    vqa.write_bytes('[{"question_id": 1, "answer": "caf\u00e9"}]'.encode("latin-1"))
    anns = tmp_path / "anns.json"
    anns.write_text(json.dumps({"annotations": []}))
    assert_one_line(invoke("score", "vqa", "-p", vqa, "-a", anns), str(vqa), "not UTF-8")


def test_annotation_with_a_bad_identifier_is_one_line(tmp_path, nlvr2_files):
    _, pred = nlvr2_files
    ann = tmp_path / "bad_ids.json"
    ann.write_text(json.dumps({"identifier": "a-0", "label": "True"}) + "\n")
    assert_one_line(invoke("score", "nlvr2", "-p", pred, "-a", ann), "line 1", "'a-0'", "split-set-pair-sentence")


def test_text_file_readers_name_file_and_offset(tmp_path):
    from simla_bench.errors import ConfigError, DataError
    from simla_bench.textfiles import read_json_file, read_text_file

    bad = tmp_path / "ann.json"
    bad.write_bytes(b'{"caption": "ok"}' + b"\xff")
    with pytest.raises(DataError) as info:
        read_json_file(bad, "annotation file")
    assert "annotation file" in info.value.one_line() and "byte 0xff at byte offset 17" in info.value.one_line()
    with pytest.raises(ConfigError):
        read_text_file(bad, "config file", ConfigError)
    bad.write_text('{"caption": }')
    with pytest.raises(DataError, match="line 1 column 13"):
        read_json_file(bad, "annotation file")
    with pytest.raises(DataError, match="does not exist"):
        read_text_file(tmp_path / "missing.json", "annotation file")
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf[1]")
    assert read_json_file(tmp_path / "bom.json") == [1]


# ------------------------------------------------------------------- devices
@pytest.mark.parametrize("device", ["bogus", "cuda:x", "gpu"])
def test_unknown_device_is_one_line_before_any_work(tmp_path, device):
    result = invoke(*TINY_RUN, "--device", device, "--out", tmp_path / "run")
    assert_one_line(result, f"device '{device}'", "auto, cpu, cuda, cuda:N, mps")
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_machine_without_cuda_is_one_line(tmp_path):
    result = invoke(*TINY_RUN, "--device", "cuda", "--out", tmp_path / "run")
    assert_one_line(result, "device 'cuda'", "CUDA is not available")
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------- NaN under ITM
def test_itm_on_nan_similarities_raises_the_non_finite_error():
    from simla_bench.plugins.objectives.itm import sample_hard_negatives
    from simla_bench.training.errors import NonFiniteValuesError

    sim = torch.randn(4, 4)
    sim[1, 2] = float("nan")
    with pytest.raises(NonFiniteValuesError, match="similarity weights"):
        sample_hard_negatives(sim, torch.eye(4, dtype=torch.bool))
    sim[1, 2] = 0.0
    sim[0, 0] = float("nan")  # a masked (same-image) pair is never drawn: no error
    index, valid = sample_hard_negatives(sim, torch.eye(4, dtype=torch.bool))
    assert valid.all() and (index != torch.arange(4)).all()


def test_nan_under_itm_names_objective_and_step(simla_tiny_model, simla_tiny_world, tmp_path):
    from simla_bench.config import parse_config
    from simla_bench.registry import get_registry
    from simla_bench.training import pretrain
    from simla_bench.training.errors import NonFiniteLossError

    model = copy.deepcopy(simla_tiny_model)
    with torch.no_grad():
        model.vision_proj.weight.fill_(float("nan"))  # a diverged model: every image feature is NaN
    cfg = parse_config({"device": "cpu", "objectives": ["itc", "itm"],
                        "pretrain": {"steps": 2, "batch_size": 8, "warmup_steps": 1, "checkpoint_every": 10}})
    reg = get_registry()
    objectives = {n: (reg.load("objective", n)(n), 1.0) for n in ("itc", "itm")}
    with pytest.raises(NonFiniteLossError) as info:
        pretrain(cfg, objectives, model, simla_tiny_world.load("pretrain", "train"), tmp_path, seed=0)
    err = info.value
    assert err.objective == "itm" and err.step == 1
    line = err.one_line()
    assert "objective 'itm' met non-finite hard-negative similarity weights" in line and "at step 1" in line
    assert "also non-finite: itc" in line


# ------------------------------------------------------------------- rich markup
def test_hint_with_brackets_is_printed_verbatim(tmp_path):
    """The grounding predictions error's hint names the box format ``[x, y, w, h]``."""
    refs = [{"ref_id": 10, "ann_id": 100, "image_id": 1, "split": "val", "category_id": 1,
             "sentences": [{"sent_id": 1, "sent": "left dog"}]}]
    (tmp_path / "refs.p").write_bytes(pickle.dumps(refs, protocol=2))
    (tmp_path / "inst.json").write_text(json.dumps({"annotations": [{"id": 100, "bbox": [0, 0, 9, 9],
                                                                     "image_id": 1}]}))
    (tmp_path / "p.json").write_text(json.dumps([{"ref_id": 10, "box": [0, 0, 5]}]))
    result = invoke("score", "grounding", "-p", tmp_path / "p.json", "-a", tmp_path / "refs.p",
                    "--instances", tmp_path / "inst.json")
    assert_one_line(result, '"box": [x, y, w, h]}')


def test_config_error_hint_keeps_brackets():
    import click

    from simla_bench.cli.common import SimlaGroup
    from simla_bench.errors import ConfigError

    @click.group(cls=SimlaGroup)
    def group():
        pass

    @group.command()
    def boom():
        raise ConfigError("box [bold]4[/] values", hint="give boxes as [x, y, w, h]")

    result = CliRunner().invoke(group, ["boom"])
    assert_one_line(result, "box [bold]4[/] values — give boxes as [x, y, w, h]")


def test_progress_prints_labels_and_messages_verbatim():
    import io

    from rich.console import Console

    from simla_bench.runner.progress import RichProgress

    buf = io.StringIO()
    progress = RichProgress(Console(file=buf, width=200, force_terminal=False))
    progress.row_done("[itc,itm]", 0, "done [x, y, w, h]")
    progress.cell_done("failed", "row [itc] seed 0: hint [x, y, w, h]")
    progress.warn("box [x, y, w, h]")
    progress.info("note [itc]")
    text = buf.getvalue()
    for fragment in ("pretraining [itc,itm] seed 0: done [x, y, w, h]", "failed: row [itc] seed 0: hint [x, y, w, h]",
                     "warning: box [x, y, w, h]", "note [itc]"):
        assert fragment in text, text


def test_leaderboard_shows_row_labels_verbatim():
    """A matrix row may be named freely, e.g. ``itc [wpa ot]``."""
    import io

    from rich.console import Console

    from simla_bench.report import export, leaderboard
    from test_report_leaderboard import record

    board = leaderboard.build([record("itc [wpa ot]", ["itc"], 0, "vqa", 50), record("[itm]", ["itm"], 0, "vqa", 60)])
    buf = io.StringIO()
    Console(file=buf, width=200).print(export.to_rich(board, title="leaderboard: runs/[a]"))
    text = buf.getvalue()
    assert "itc [wpa ot]" in text and "[itm]" in text and "runs/[a]" in text, text


def test_nlvr2_lines_with_a_bad_byte_far_into_the_file_are_one_line(tmp_path):
    from simla_bench.errors import DataError
    from simla_bench.plugins.datasets.formats.nlvr2 import _entries

    line = json.dumps({"identifier": "dev-1-0-0", "sentence": "two dogs", "label": "True"}) + "\n"
    path = tmp_path / "dev.json"
    path.write_bytes(line.encode() * 200 + b'{"sentence": "caf\xe9"}\n')  # the bad byte is past the first 4 KiB
    with pytest.raises(DataError) as err:
        list(_entries(path))
    assert "not UTF-8" in err.value.one_line() and "byte 0xe9" in err.value.one_line()


def test_task_fine_tuning_on_nan_similarities_raises_the_non_finite_error():
    from simla_bench.tasks.itc_itm import _sample
    from simla_bench.training.errors import NonFiniteValuesError

    weights = torch.rand(3, 3)
    assert _sample(weights, None).shape == (3,)
    weights[2, 1] = float("nan")
    with pytest.raises(NonFiniteValuesError, match="task fine-tuning"):
        _sample(weights, None)


def test_new_plugin_prints_a_folder_with_brackets_verbatim(tmp_path):
    target = tmp_path / "plugins[v2]"
    result = invoke("new-plugin", "probe", "--kind", "objective", "--out", target)
    assert result.exit_code == 0, result.output
    assert str(target) in result.output.replace("\n", "")
