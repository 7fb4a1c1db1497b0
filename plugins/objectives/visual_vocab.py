"""Discrete visual tokens for masked image modelling: a pluggable visual tokenizer.

SIMLA's target is the DALL-E dVAE's code (8,192 codes) of a half-resolution
view, one code per ViT patch.  No dVAE weights exist here, so the built-in
default is :class:`KMeansCodebook`: each ViT patch of the (normalised) image
is average-pooled to half resolution, flattened, and assigned to its nearest
centroid of a k-means codebook fitted with scikit-learn's ``MiniBatchKMeans``
over patches of the training images (deterministic from the seed; the
centroids are saved and restored with the objective state).

A user tokenizer for real runs is named by the option ``visual_tokenizer:
"module:attr"``; ``attr`` is called as ``attr(model)`` and must return an
object with ``vocab_size: int`` and ``__call__(images [B,3,H,W]) ->
LongTensor[B, N]`` (N = number of ViT patches, row-major), optionally with
``state_dict()`` / ``load_state_dict()``.
"""

from __future__ import annotations

import importlib
from typing import Any, Iterable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from simla_bench.errors import ConfigError, PluginError


def patch_vectors(images: torch.Tensor, patch: int) -> torch.Tensor:
    """``[B,3,H,W]`` -> ``[B, N, 3*(patch/2)^2]``: each ViT patch at half resolution."""
    if patch % 2:
        raise ValueError(f"the half-resolution view needs an even patch size, got {patch}")
    half = F.avg_pool2d(images.float(), kernel_size=2)
    p = patch // 2
    b, c, h, w = half.shape
    cols = F.unfold(half, kernel_size=p, stride=p)  # [B, c*p*p, N]
    return cols.transpose(1, 2).contiguous()


class KMeansCodebook:
    """The built-in visual vocabulary: k-means centroids of half-resolution patches."""

    def __init__(self, vocab_size: int, patch: int, centroids: torch.Tensor | None = None):
        self.vocab_size = int(vocab_size)
        self.patch = int(patch)
        self.centroids = centroids

    @classmethod
    def fit(cls, images: Iterable[torch.Tensor], *, vocab_size: int, patch: int, seed: int,
            max_patches: int = 50_000) -> "KMeansCodebook":
        """Fit on batches of normalised images ``[B,3,H,W]`` (already the size the model sees)."""
        from sklearn.cluster import MiniBatchKMeans

        chunks = [patch_vectors(batch, patch).flatten(0, 1) for batch in images]
        if not chunks:
            raise PluginError("visual codebook: no training images to fit on", hint="check the pretraining dataset")
        data = torch.cat(chunks).numpy().astype(np.float64)
        if len(data) > max_patches:
            rng = np.random.default_rng(seed)
            data = data[np.sort(rng.choice(len(data), max_patches, replace=False))]
        k = min(int(vocab_size), len(np.unique(data, axis=0)))
        from threadpoolctl import threadpool_limits

        km = MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=2048, n_init=3, max_iter=100)
        with threadpool_limits(1):  # small fits: OpenMP threads only add overhead (and spin on busy CPUs)
            km.fit(data)
        centroids = torch.tensor(km.cluster_centers_, dtype=torch.float32)
        return cls(vocab_size, patch, centroids)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.centroids is None:
            raise PluginError("visual codebook used before it was fitted")
        vecs = patch_vectors(images, self.patch)  # [B, N, D]
        cent = self.centroids.to(vecs.device)
        dist = (vecs.pow(2).sum(-1, keepdim=True) - 2 * vecs @ cent.T + cent.pow(2).sum(-1))
        return dist.argmin(-1)

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "kmeans", "vocab_size": self.vocab_size, "patch": self.patch,
                "centroids": None if self.centroids is None else self.centroids.clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.vocab_size = int(state["vocab_size"])
        self.patch = int(state["patch"])
        self.centroids = None if state["centroids"] is None else state["centroids"].clone().float()


def load_user_tokenizer(spec: str, model: Any) -> Any:
    """Import ``module:attr``, call it with the model, check the result's shape of API."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"visual_tokenizer '{spec}' is not of the form 'module:attr'",
                          hint="e.g. visual_tokenizer: mypkg.dvae:load_tokenizer")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"visual_tokenizer '{spec}' cannot be imported: {exc}",
                          hint="check the module is installed and the attribute name") from exc
    tokenizer = factory(model)
    if not callable(tokenizer) or not isinstance(getattr(tokenizer, "vocab_size", None), int):
        raise PluginError(f"visual_tokenizer '{spec}' returned {type(tokenizer).__name__}, "
                          "which lacks vocab_size:int or __call__(images)")
    return tokenizer
