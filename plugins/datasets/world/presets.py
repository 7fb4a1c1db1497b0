"""Size presets of the world (numbers of images / statements per split) and the file layout."""

from __future__ import annotations

from simla_bench.errors import ConfigError

GENERATOR_VERSION = "2"

RETRIEVAL_SPLITS = ("train", "val", "test", "test_comp")
GROUNDING_SPLITS = ("train", "val", "testA", "testB", "test_comp")
VQA_SPLITS = ("train", "val", "test", "test_comp")
NLVR2_SPLITS = ("train", "dev", "test", "test_comp")


def _counts(pretrain: int, *, retrieval: tuple[int, ...], grounding: tuple[int, ...], vqa: tuple[int, ...],
            nlvr2: tuple[int, ...], captions_per_image: int = 2) -> dict[str, int]:
    """One preset's counts: ``pretrain``, ``captions_per_image`` and ``<kind>_<split>`` for
    every split of each kind, the sizes given in the order of the kind's ``*_SPLITS``."""
    counts = {"pretrain": pretrain, "captions_per_image": captions_per_image}
    for kind, splits, sizes in (("retrieval", RETRIEVAL_SPLITS, retrieval), ("grounding", GROUNDING_SPLITS, grounding),
                                ("vqa", VQA_SPLITS, vqa), ("nlvr2", NLVR2_SPLITS, nlvr2)):
        counts.update({f"{kind}_{split}": n for split, n in zip(splits, sizes, strict=True)})
    return counts


#: pretrain: images (x captions_per_image pairs); retrieval/grounding/vqa: images per split
#: (grounding: one ref with two sentences per image; vqa: three questions per image);
#: nlvr2: statements per split (four image pairs each)
PRESETS: dict[str, dict[str, int]] = {
    "tiny": _counts(150, retrieval=(24, 10, 16, 10), grounding=(40, 12, 12, 12, 12),
                    vqa=(40, 10, 10, 10), nlvr2=(10, 5, 5, 5)),
    "small": _counts(3000, retrieval=(500, 100, 200, 100), grounding=(1000, 150, 150, 150, 150),
                     vqa=(1000, 100, 100, 100), nlvr2=(250, 50, 50, 50)),
    "base": _counts(20000, retrieval=(5000, 500, 1000, 500), grounding=(8000, 750, 750, 750, 500),
                    vqa=(8000, 500, 1000, 500), nlvr2=(2000, 250, 250, 250)),
}

#: identifier prefix of each NLVR2 split (the official test-P file is test1.json)
NLVR2_PREFIX = {"train": "train", "dev": "dev", "test": "test1", "test_comp": "testcomp"}

# ---- layout (paths relative to the world root) ------------------------------------------
PRETRAIN_FILE = "pretrain/world_pretrain.json"


def retrieval_file(split: str) -> str:
    return f"retrieval/world_karpathy_{split}.json"


REFS_FILE = "refcoco+/refs(unc).p"
INSTANCES_FILE = "refcoco+/instances.json"
PROPOSALS_FILE = "refcoco+/proposals.json"
VQA_PATTERN = "vqa/images/{data_subtype}/COCO_{data_subtype}_{image_id:012d}.png"


def vqa_subtype(split: str) -> str:
    return f"world_{split.replace('_', '')}"


def vqa_files(split: str) -> tuple[str, str]:
    sub = vqa_subtype(split)
    return f"vqa/v2_OpenEnded_mscoco_{sub}_questions.json", f"vqa/v2_mscoco_{sub}_annotations.json"


def nlvr2_file(split: str) -> str:
    return f"nlvr2/{NLVR2_PREFIX[split]}.json"


def nlvr2_images(split: str) -> str:
    return f"nlvr2/images/{NLVR2_PREFIX[split]}"


def resolve_counts(preset: str, overrides: dict) -> dict[str, int]:
    if preset not in PRESETS:
        raise ConfigError(f"dataset 'world': unknown preset '{preset}'; presets: {', '.join(PRESETS)}")
    counts = dict(PRESETS[preset])
    for key, value in (overrides or {}).items():
        if key not in counts:
            raise ConfigError(f"dataset 'world': unknown count '{key}'; counts: {', '.join(counts)}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"dataset 'world': count '{key}' must be a positive integer, got {value!r}")
        counts[key] = value
    for key in ("retrieval_train", "retrieval_val", "retrieval_test", "retrieval_test_comp"):
        counts[key] += counts[key] % 2  # retrieval images come in twins
    return counts
