"""Pretraining data: a Dataset over ``PairRecord``s, a deterministic global-batch
sampler, and a collate that tokenises.

Determinism does not depend on worker count or world size:

* the order of an epoch is ``randperm(n)`` from a generator seeded with
  ``(seed, epoch)``; micro-batch ``p`` of the run is the contiguous global
  slice ``p*B .. (p+1)*B`` of its epoch's order (``B`` = global batch), and
  rank ``r`` of ``W`` takes the ``r``-th of ``W`` equal contiguous pieces of it.
  Gathering the ranks' pieces in rank order therefore gives exactly the batch
  a single process sees, and a run can resume at any world size from the
  global micro-batch position (like ``DistributedSampler``, but sharding by
  contiguous slices of each global batch instead of by stride);
* every sample's random augmentation is seeded from ``(seed, epoch, index)``.

``data_fraction`` keeps a nested subset (:func:`subset_records`, the one
subsetting function; the runner cuts a row's records with it once, the trainer
trains on what it is given): the first ``ceil(f*n)`` records of a fixed
(seed-independent) permutation, so smaller fractions are subsets of larger ones
and every seed trains on the same subset.

:func:`shuffle_pairs` re-pairs the captions with other images (the ``shuffled``
control of ``run --controls``): a seeded derangement by image, so that no
record keeps a caption of its own image while the set of images and the set of
captions stay exactly the same.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from simla_bench.training.errors import DataTooSmallError
from simla_bench.training.seeding import seed_everything

_SUBSET_SEED = 20220329  # fixed: the data_fraction subset does not change with the run seed


def subset_records(records: Sequence[Any], fraction: float) -> list[Any]:
    """The nested, seed-independent ``fraction`` of ``records`` (order kept)."""
    records = list(records)
    if fraction >= 1.0:
        return records
    n = len(records)
    keep = max(1, math.ceil(fraction * n))
    gen = torch.Generator().manual_seed(_SUBSET_SEED)
    chosen = sorted(torch.randperm(n, generator=gen)[:keep].tolist())
    return [records[i] for i in chosen]


_SHUFFLE_SALT = 5_181_327  # the shuffled pairs' stream is not the seed's other streams


def caption_derangement(image_ids: Sequence[Any], seed: int) -> list[int]:
    """A permutation ``p`` of ``range(n)`` with ``image_ids[p[i]] != image_ids[i]``
    for every ``i`` (record ``i`` takes record ``p[i]``'s caption), deterministic
    from ``seed``: a uniform permutation whose clashes (a caption landing on a
    record of its own image) are swapped away with other random positions.
    Raises ``ValueError`` when none exists (one image holds more than half the records)."""
    ids = list(image_ids)
    n = len(ids)
    if n == 0:
        return []
    _, group = np.unique(np.asarray([str(i) for i in ids]), return_inverse=True)
    largest = int(np.bincount(group).max())
    if 2 * largest > n:
        raise ValueError(f"cannot shuffle the pairs: one image has {largest} of the {n} records, more than half, "
                         "so some caption would stay with its image")
    rng = np.random.default_rng([int(seed), _SHUFFLE_SALT])
    perm = rng.permutation(n)
    clashes = np.flatnonzero(group[perm] == group)
    while clashes.size:
        for i in clashes:
            if group[perm[i]] != group[i]:
                continue  # fixed by an earlier swap
            for j in rng.permutation(n):  # a partner whose swap fixes i and breaks nothing at j
                if group[perm[j]] != group[i] and group[perm[i]] != group[j]:
                    perm[i], perm[j] = perm[j], perm[i]
                    break
        clashes = np.flatnonzero(group[perm] == group)
    return perm.tolist()


def shuffle_pairs(records: Sequence[Any], seed: int) -> list[Any]:
    """``records`` (each with ``caption`` and ``image_id``) with the captions
    deranged among the images (:func:`caption_derangement`); order, images and the
    multiset of captions unchanged.  Dataclass records are rebuilt with
    ``dataclasses.replace``, others copied."""
    records = list(records)
    perm = caption_derangement([r.image_id for r in records], seed)
    out = []
    for i, rec in enumerate(records):
        caption = records[perm[i]].caption
        if dataclasses.is_dataclass(rec) and not isinstance(rec, type):
            out.append(dataclasses.replace(rec, caption=caption))
        else:
            new = copy.copy(rec)
            new.caption = caption
            out.append(new)
    return out


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of one sample (a pure function of its position)."""
    return (((seed * 1_000_003) + epoch) * 10_000_019 + index) % (2**63 - 1)


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Restore the python/numpy/torch (CPU) RNG states after the block."""
    py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)


@contextmanager
def seeded_rng(seed: int) -> Iterator[None]:
    """Seed python/numpy/torch (CPU) RNGs for a block and restore them after."""
    with preserved_rng():
        seed_everything(seed)
        yield


class PairDataset(Dataset):
    """Indexed by ``(index, epoch)``; returns ``(image tensor, caption, image_id, index)``."""

    def __init__(self, records: Sequence[Any], transform: Callable[[Any], torch.Tensor], seed: int,
                 loader: Callable[[Any], Any] | None = None):
        self.records = list(records)
        self.transform = transform
        self.seed = int(seed)
        if loader is None:
            from simla_bench.imagefiles import load_image

            loader = load_image
        self.loader = loader

    def __len__(self) -> int:
        return len(self.records)

    def _item(self, key: tuple[int, int]) -> tuple[torch.Tensor, str, str, int]:
        index, epoch = key
        rec = self.records[index]
        image = self.loader(rec.image)
        seed_everything(sample_seed(self.seed, epoch, index))
        return self.transform(image), rec.caption, str(rec.image_id), index

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, str, str, int]:
        with preserved_rng():
            return self._item(key)

    def __getitems__(self, keys: list[tuple[int, int]]) -> list[tuple[torch.Tensor, str, str, int]]:
        """A whole batch (the DataLoader's batched fetch): the RNG states are saved and restored once."""
        with preserved_rng():
            return [self._item(k) for k in keys]


class GlobalBatchSampler(Sampler):
    """Yields, for micro-batch positions ``start, start+1, ...`` (forever), this
    rank's list of ``(index, epoch)`` keys (see the module docstring)."""

    def __init__(self, n: int, global_batch: int, seed: int, rank: int = 0, world_size: int = 1, start: int = 0):
        if global_batch % world_size:
            raise DataTooSmallError(
                f"pretrain.batch_size {global_batch} is not divisible by the world size {world_size}",
                hint="choose a batch size that is a multiple of the number of processes")
        if n < global_batch:
            raise DataTooSmallError(
                f"only {n} pretraining pairs, fewer than one batch of {global_batch}",
                hint="lower pretrain.batch_size or raise pretrain.data_fraction / the dataset size")
        self.n = n
        self.global_batch = global_batch
        self.local_batch = global_batch // world_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start = start
        self.per_epoch = n // global_batch  # incomplete global batches are dropped
        self._perm_epoch = -1
        self._perm: list[int] = []

    def epoch_order(self, epoch: int) -> list[int]:
        if epoch != self._perm_epoch:
            gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._perm = torch.randperm(self.n, generator=gen).tolist()
            self._perm_epoch = epoch
        return self._perm

    def keys_at(self, position: int) -> list[tuple[int, int]]:
        epoch, within = divmod(position, self.per_epoch)
        order = self.epoch_order(epoch)
        lo = within * self.global_batch + self.rank * self.local_batch
        return [(i, epoch) for i in order[lo:lo + self.local_batch]]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        position = self.start
        while True:
            yield self.keys_at(position)
            position += 1


class Collate:
    """Stacks images and tokenises captions (``max_len`` tokens, padded to the longest)."""

    def __init__(self, tokenizer: Any, max_len: int):
        self.tokenizer = tokenizer
        self.max_len = max_len

    def __call__(self, items: list[tuple[torch.Tensor, str, str, int]]) -> dict[str, Any]:
        images = torch.stack([it[0] for it in items])
        captions = [it[1] for it in items]
        clean = getattr(self.tokenizer, "clean_text", None)  # the model's caption cleaning (e.g. ALBEF's)
        tok = self.tokenizer(clean(captions, "caption") if clean else captions, padding="longest", truncation=True, max_length=self.max_len,
                             return_tensors="pt")
        return {
            "images": images,
            "input_ids": tok["input_ids"],
            "attention_mask": tok["attention_mask"],
            "captions": captions,
            "image_ids": [it[2] for it in items],
            "indices": torch.tensor([it[3] for it in items], dtype=torch.long),
        }


def build_loader(records: Sequence[Any], *, tokenizer: Any, max_text_len: int,
                 transform: Callable[[Any], torch.Tensor], global_batch: int, seed: int, start: int = 0,
                 rank: int = 0, world_size: int = 1, num_workers: int = 0,
                 pin_memory: bool = False) -> tuple[DataLoader, GlobalBatchSampler]:
    """An endless loader of this rank's micro-batches from position ``start``
    (``transform``: the model's image transform, ``model.image_transform(train, size)``)."""
    dataset = PairDataset(records, transform, seed)
    sampler = GlobalBatchSampler(len(dataset), global_batch, seed, rank, world_size, start)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=Collate(tokenizer, max_text_len),
                        num_workers=num_workers, pin_memory=pin_memory, persistent_workers=False,
                        # its own generator: creating the iterator must not draw from the global RNG
                        generator=torch.Generator().manual_seed(seed))
    return loader, sampler


def move_batch(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    nb = device.type == "cuda"
    return {k: (v.to(device, non_blocking=nb) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
