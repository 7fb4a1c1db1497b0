"""Size presets of the world (numbers of images / statements per split) and the file layout."""

from __future__ import annotations

from simla_bench.errors import ConfigError

GENERATOR_VERSION = "2"

#: pretrain: images (x captions_per_image pairs); retrieval/grounding/vqa: images per split
#: (grounding: one ref with two sentences per image; vqa: three questions per image);
#: nlvr2: statements per split (four image pairs each)
PRESETS: dict[str, dict[str, int]] = {
    "tiny": {
        "pretrain": 150, "captions_per_image": 2,
        "retrieval_train": 24, "retrieval_val": 10, "retrieval_test": 16, "retrieval_test_comp": 10,
        "grounding_train": 40, "grounding_val": 12, "grounding_testA": 12, "grounding_testB": 12, "grounding_test_comp": 12,
        "vqa_train": 40, "vqa_val": 10, "vqa_test": 10, "vqa_test_comp": 10,
        "nlvr2_train": 10, "nlvr2_dev": 5, "nlvr2_test": 5, "nlvr2_test_comp": 5,
    },
    "small": {
        "pretrain": 3000, "captions_per_image": 2,
        "retrieval_train": 500, "retrieval_val": 100, "retrieval_test": 200, "retrieval_test_comp": 100,
        "grounding_train": 1000, "grounding_val": 150, "grounding_testA": 150, "grounding_testB": 150, "grounding_test_comp": 150,
        "vqa_train": 1000, "vqa_val": 100, "vqa_test": 100, "vqa_test_comp": 100,
        "nlvr2_train": 250, "nlvr2_dev": 50, "nlvr2_test": 50, "nlvr2_test_comp": 50,
    },
    "base": {
        "pretrain": 20000, "captions_per_image": 2,
        "retrieval_train": 5000, "retrieval_val": 500, "retrieval_test": 1000, "retrieval_test_comp": 500,
        "grounding_train": 8000, "grounding_val": 750, "grounding_testA": 750, "grounding_testB": 750, "grounding_test_comp": 500,
        "vqa_train": 8000, "vqa_val": 500, "vqa_test": 1000, "vqa_test_comp": 500,
        "nlvr2_train": 2000, "nlvr2_dev": 250, "nlvr2_test": 250, "nlvr2_test_comp": 250,
    },
}

RETRIEVAL_SPLITS = ("train", "val", "test", "test_comp")
GROUNDING_SPLITS = ("train", "val", "testA", "testB", "test_comp")
VQA_SPLITS = ("train", "val", "test", "test_comp")
NLVR2_SPLITS = ("train", "dev", "test", "test_comp")
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
