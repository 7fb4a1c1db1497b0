"""Evaluating a released checkpoint through the public path: ``simla-bench run``
with ``model.options.checkpoint`` and no pretraining.

The fixtures (tests/fixtures/official/, README there) are tiny random ALBEF
checkpoints in the official key layouts and the outputs the official ALBEF
code computed on them; here the harness's own run must reproduce them:
the retrieval score matrices of ALBEF's ``Retrieval.py`` evaluation (its
pre-processing included: pre_caption, [CLS] without [SEP], CLIP normalisation,
bicubic resize), the NLVR2 logits through the task's zero-shot path, and a
wrong file is one line with a non-zero exit and nothing run.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

FIX = Path(__file__).parent / "fixtures" / "official"

#: the tiny ALBEF of the fixtures, in simla-bench's options (README there)
TINY_ALBEF = {
    "preset": "albef",
    "image": {"name": "vit_world_tiny", "options": {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2,
                                                    "num_heads": 2, "mlp_ratio": 4.0}},
    "text": {"name": "bert_world_tiny", "options": {"config": {
        "hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2, "intermediate_size": 64,
        "max_position_embeddings": 40, "type_vocab_size": 2, "layer_norm_eps": 1.0e-12, "hidden_act": "gelu"}}},
    "layout": "split", "fusion_layers": 2, "embed_dim": 16, "queue_size": 8, "momentum": 0.995, "temp": 0.07,
    "text_pool": "cls", "max_text_len": 30, "tokenizer": str(FIX / "tokenizer"),
    "checkpoint": str(FIX / "albef_retrieval_tiny.pth"), "format": "albef",
}


def _config(tmp_path: Path, **model_options) -> Path:
    cfg = {
        "name": "albef_tiny_eval", "device": "cpu", "seeds": [0], "output_dir": str(tmp_path / "run"),
        "model": {"name": "vlp", "options": {**TINY_ALBEF, **model_options}},
        "datasets": {"tiny": {"source": "flickr30k", "options": {
            "test_file": str(FIX / "retrieval" / "test.json"), "image_root": str(FIX / "retrieval")}}},
        "objectives": [], "pretrain": {"dataset": "tiny", "steps": 0},
        "tasks": {"retrieval": {"dataset": "tiny", "options": {"mode": "zero_shot", "k": 3, "allow_k_below_10": True,
                                                                "max_text_len": 30,
                                                                "eval_splits": ["test"]}}},
    }
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(args):
    from simla_bench.cli import main

    return CliRunner().invoke(main, ["run", *args, "-q"], catch_exceptions=False)


def test_run_reproduces_albefs_retrieval_evaluation(tmp_path):
    oracle = json.loads((FIX / "retrieval_oracle.json").read_text())
    result = _run(["--config", str(_config(tmp_path)), "--no-pretrain"])
    assert result.exit_code == 0, result.output
    cells = [json.loads(p.read_text()) for p in (tmp_path / "run" / "cells").glob("*.json")]
    assert len(cells) == 1 and cells[0]["row"] == "albef_retrieval_tiny"
    metrics = cells[0]["metrics"]
    want = oracle["metrics"]
    pairs = [(f"test/TR@{k}", f"txt_r{k}") for k in (1, 5, 10)] + [(f"test/IR@{k}", f"img_r{k}") for k in (1, 5, 10)]
    for ours, theirs in pairs + [("test/r_mean", "r_mean")]:
        assert metrics[ours] == pytest.approx(want[theirs], abs=1e-9), (ours, metrics)


def test_loaded_model_scores_equal_albefs_score_matrices(tmp_path):
    """The same run's model and task code, score matrices compared entry by entry."""
    from simla_bench.assemble import assemble
    from simla_bench.config import load_config
    from simla_bench.registry import get_registry
    from simla_bench.tasks.retrieval import retrieval_scores

    oracle = torch.load(FIX / "retrieval_oracle.pt", weights_only=True)
    cfg = load_config(_config(tmp_path))
    built = assemble(cfg.model)
    assert built.load_report.format == "albef_retrieval" and not built.load_report.unused
    source = get_registry().load("dataset", "flickr30k")("tiny", cfg.datasets["tiny"].options)
    split = source.load("retrieval", "test")
    # the caption cleaning and ALBEF's special-token rule give the oracle's ids
    from simla_bench.tasks.data import tokenize

    ids, _ = tokenize(built.tokenizer, split.texts, 30)
    assert torch.equal(ids, oracle["input_ids"][:, :ids.shape[1]])
    s_i2t, s_t2i = retrieval_scores(built.model, split, built.tokenizer, k=3, image_size=32, max_len=30,
                                    batch_size=16, device="cpu")
    torch.testing.assert_close(torch.as_tensor(s_i2t).float(), oracle["score_matrix_i2t"].float(), atol=1e-4, rtol=0)
    torch.testing.assert_close(torch.as_tensor(s_t2i).float(), oracle["score_matrix_t2i"].float(), atol=1e-4, rtol=0)


def test_nlvr2_zero_shot_uses_the_checkpoints_head(tmp_path):
    """ALBEF's nlvr.pth layout: twin fusion layers and cls_head reach the NLVR2 task's zero-shot path."""
    from simla_bench.assemble import assemble
    from simla_bench.config import ModelConfig
    from simla_bench.tasks.nlvr2 import NLVR2Task, checkpoint_head

    io = torch.load(FIX / "albef_nlvr_tiny_io.pt", weights_only=True)
    built = assemble(ModelConfig(name="vlp", options={**TINY_ALBEF, "checkpoint": str(FIX / "albef_nlvr_tiny.pth")}))
    model = built.model.eval()
    head = checkpoint_head(model, "cpu")
    inputs = io["inputs"] if "inputs" in io else io
    outputs = io["outputs"] if "outputs" in io else io
    with torch.no_grad():
        pooled = NLVR2Task.fused_pooled(model, inputs["images0"], inputs["images1"], inputs["input_ids"],
                                        inputs["attention_mask"])
        torch.testing.assert_close(head(pooled), outputs["logits"], atol=1e-4, rtol=0)
    with pytest.raises(Exception, match="needs the NLVR2 head of a loaded checkpoint"):
        checkpoint_head(assemble(ModelConfig(name="vlp", options={**TINY_ALBEF})).model, "cpu")


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    rnd = tmp_path / "random.pth"
    rnd.write_bytes(bytes(range(256)) * 8)
    trunc = tmp_path / "truncated.pth"
    trunc.write_bytes((FIX / "albef_retrieval_tiny.pth").read_bytes()[:5000])
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"model": _Evil()}))
    return {"random": (rnd, "auto"), "truncated": (trunc, "auto"), "pickled code": (evil, "auto"),
            "another layout": (FIX / "albef_retrieval_tiny.pth", "simla")}


@pytest.mark.parametrize("which", ["random", "truncated", "pickled code", "another layout"])
def test_a_wrong_checkpoint_is_one_line_and_nothing_runs(tmp_path, which):
    path, fmt = _bad_files(tmp_path)[which]
    result = _run(["--config", str(_config(tmp_path, format=fmt)), "--checkpoint", str(path), "--no-pretrain"])
    assert result.exit_code != 0
    errors = [line for line in result.output.splitlines() if line.strip()]
    assert errors and errors[0].lower().startswith("error:") and len(errors) <= 2 and "Traceback" not in result.output, result.output
    assert "pwned" not in result.output
    assert not (tmp_path / "run").exists()  # nothing run, nothing written


def test_pretraining_checkpoint_carries_its_itc_queue_to_the_objective():
    """ALBEF_4M-style checkpoints hold the ITC queues ([E, Q]); continuing pretraining starts from them."""
    from simla_bench.assemble import assemble
    from simla_bench.config import ModelConfig
    from simla_bench.registry import get_registry

    ckpt = torch.load(FIX / "albef_pretrain_tiny.pth", weights_only=True)["model"]
    built = assemble(ModelConfig(name="vlp", options={**TINY_ALBEF, "checkpoint": str(FIX / "albef_pretrain_tiny.pth")}))
    assert built.load_report.format == "albef_pretrain"
    itc = get_registry().load("objective", "itc")("itc")
    itc.setup(built.model, [])
    itc.load_state_dict(built.model.objective_states["itc"])  # what the trainer does after set-up
    queue = itc.state_dict()["queue"]
    assert torch.equal(queue["image"], ckpt["image_queue"].t()) and torch.equal(queue["text"], ckpt["text_queue"].t())
    assert queue["ptr"] == int(ckpt["queue_ptr"])
    # the momentum copy is the checkpoint's *_m weights, not the online ones
    mom = built.model.momentum_model()
    torch.testing.assert_close(mom.vision_proj.weight, ckpt["vision_proj_m.weight"])
    assert not torch.equal(built.model.vision_proj.weight, ckpt["vision_proj_m.weight"])
