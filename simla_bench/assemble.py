"""One way to turn a config into parts: the model recipe, its tokenizer, the
model (with its checkpoint loaded) and the objectives.

The runner's pipeline, the plugin test kit and the benchmarks all call these
functions; none of them imports a model, tokenizer or objective by module
path.  Components are looked up in the registry by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from simla_bench.interfaces import ModelPlugin


def model_recipe(model_cfg: Any, registry: Any = None) -> ModelPlugin:
    """The registered model recipe ``model_cfg.name`` with ``model_cfg.options``
    (a ``ModelConfig`` or a mapping ``{name, options}``); options are validated here."""
    from simla_bench.config import ModelConfig
    from simla_bench.registry import get_registry

    if not isinstance(model_cfg, ModelConfig):
        model_cfg = ModelConfig.model_validate(model_cfg)
    registry = registry or get_registry()
    return registry.load("model", model_cfg.name)(model_cfg.name, model_cfg.options)


def build_objectives(specs: Mapping[str, Any], registry: Any = None) -> dict[str, tuple[Any, float]]:
    """``{name: (objective instance, weight)}`` from ``{name: {weight, options}}``
    (an ``ObjectiveConfig``, a mapping, or None for the defaults)."""
    from simla_bench.registry import get_registry

    registry = registry or get_registry()
    out: dict[str, tuple[Any, float]] = {}
    for name, spec in specs.items():
        if spec is None:
            spec = {}
        elif not isinstance(spec, Mapping):
            spec = spec.model_dump()
        cls = registry.load("objective", name)
        out[name] = (cls(name, dict(spec.get("options") or {})), float(spec.get("weight", 1.0)))
    return out


def build_tokenizer(recipe: ModelPlugin, captions: Iterable[str] | Callable[[], Iterable[str]] | None = None,
                    tokenizer_dir: str | Path | None = None) -> Any:
    """The recipe's tokenizer; ``captions`` (or a callable giving them) are read
    only when the recipe learns its vocabulary from them."""
    texts = None
    if recipe.tokenizer_needs_captions():
        texts = list(captions() if callable(captions) else (captions or []))
    return recipe.build_tokenizer(texts, Path(tokenizer_dir) if tokenizer_dir else None)


@dataclass
class Assembly:
    """What :func:`assemble` returns."""

    recipe: ModelPlugin
    tokenizer: Any
    model: Any
    objectives: dict[str, tuple[Any, float]] = field(default_factory=dict)
    load_report: Any = None


def assemble(model_cfg: Any, *, captions: Iterable[str] | Callable[[], Iterable[str]] | None = None,
             tokenizer: Any = None, objectives: Mapping[str, Any] | None = None,
             tokenizer_dir: str | Path | None = None, load_weights: bool = True,
             registry: Any = None) -> Assembly:
    """Recipe -> tokenizer (unless given; ``captions`` may be a callable so
    that a recipe with its own vocabulary never reads the corpus) -> model ->
    checkpoint (when the options name one and ``load_weights``) -> objectives."""
    recipe = model_recipe(model_cfg, registry)
    if tokenizer is None:
        tokenizer = build_tokenizer(recipe, captions, tokenizer_dir)
    model = recipe.build(tokenizer)
    report = recipe.load_weights(model) if load_weights else None
    objs = build_objectives(objectives or {}, registry)
    return Assembly(recipe, tokenizer, model, objs, report)
