"""Building blocks for testing plugins: a tiny world, a tiny model, a
pretraining batch, the per-step context an objective receives, and a task
context.  The pytest fixtures in :mod:`simla_bench.testing.fixtures` are thin
wrappers over these; plugin authors may also call them directly.

Everything is CPU-sized (a 64px world at the ``tiny`` preset, a 2-layer ViT
and a 2-layer BERT of width 64) so that a plugin's tests run in seconds.  The
tiny model is the default experiment's model (``configs/default.yaml``: e.g.
its text side pools the token mean under the attention mask) at tiny sizes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: the sizes that make the default model tiny: a 2-layer ViT and a 2-layer BERT at width 64, a 32-d ITC
#: space, a 300-token WordPiece vocabulary
TINY_SIZES = {
    "image": {"name": "vit_world_tiny", "options": {"embed_dim": 64, "depth": 2, "num_heads": 2}},
    "text": {"name": "bert_world_tiny", "options": {"config": {
        "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128}}},
    "embed_dim": 32,
    "vocab_size": 300,
    "max_text_len": 25,
}


def default_model_options() -> dict[str, Any]:
    """The ``vlp`` options of the default experiment (``configs/default.yaml``'s
    ``model.options``: layout, ``text_pool``, queue, temperature ...)."""
    from simla_bench.config import load_config

    return load_config().model.options


def _tiny_model_options() -> dict[str, Any]:
    from simla_bench.config import deep_merge

    return deep_merge(default_model_options(), TINY_SIZES)


#: the tiny model's options (model ``vlp``): the default experiment's model (its layout, its
#: ``text_pool: mean``, its queue ...) at :data:`TINY_SIZES`, so that a plugin that works on
#: the tiny model works on the model ``simla-bench run`` builds
TINY_MODEL = _tiny_model_options()


def tiny_world(root: str | Path, seed: int = 0):
    """The built-in world at the ``tiny`` preset under ``root`` (generated if
    missing, reused otherwise); a prepared :class:`DatasetSource`
    (:func:`simla_bench.testing.world.make_tiny_world`)."""
    from simla_bench.testing.world import make_tiny_world

    return make_tiny_world(root, seed=seed)


def tiny_model_config(**overrides: Any):
    """The ``model:`` section of the tiny model (``ModelConfig``, model ``vlp``;
    ``overrides`` replace top-level options, e.g. ``layout="split"`` or
    ``image={"name": "my_backbone", "options": {}}``)."""
    from simla_bench.config import ModelConfig

    return ModelConfig(name="vlp", options={**TINY_MODEL, **overrides})


def tiny_model(world, seed: int = 0, **overrides: Any):
    """A freshly initialised tiny vision-language model whose WordPiece
    tokenizer (``model.tokenizer``) is trained on the world's pretraining captions."""
    import torch

    from simla_bench.assemble import assemble, build_tokenizer, model_recipe

    cfg = tiny_model_config(**overrides)
    tokenizer = build_tokenizer(model_recipe(cfg), [r.caption for r in world.load("pretrain", "train")])
    torch.manual_seed(seed)
    return assemble(cfg, tokenizer=tokenizer).model


def make_batch(model, world, size: int = 8, start: int = 0) -> dict[str, Any]:
    """A pretraining batch (the dict the trainer builds) of ``size`` pairs of the
    world's pretraining corpus, with the evaluation image transform."""
    from simla_bench.training.data import Collate, PairDataset

    records = list(world.load("pretrain", "train"))[start:start + size]
    dataset = PairDataset(records, model.image_transform(train=False), seed=0)
    return Collate(model.tokenizer, model.max_text_len)([dataset[(i, 0)] for i in range(len(records))])


def make_step(model, batch: dict[str, Any], step: int = 0, alpha: float = 0.0, momentum: Any = "auto"):
    """The :class:`~simla_bench.training.StepContext` the trainer would pass to
    ``Objective.loss`` for ``batch`` (one process; ``momentum="auto"`` uses the
    model's EMA copy when it has one)."""
    from simla_bench.training.step_context import StepContext

    if momentum == "auto":
        has = "momentum" in getattr(model, "capabilities", ()) and hasattr(model, "momentum_model")
        momentum = model.momentum_model() if has else None
    return StepContext(batch=batch, model=model, momentum=momentum, alpha=alpha, step=step)


def task_context(model, world, workdir: str | Path, seed: int = 0, options: dict | None = None):
    """A :class:`~simla_bench.interfaces.TaskContext` for ``model`` on ``world`` (CPU)."""
    from simla_bench.interfaces import TaskContext

    return TaskContext(model=model, tokenizer=model.tokenizer, data=world, options=dict(options or {}), seed=seed,
                       device="cpu", workdir=Path(workdir))
