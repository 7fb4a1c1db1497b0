"""plugins/datasets/images.py: RGB loading with clear errors, and transforms normalised with
timm's ImageNet statistics whose training augmentation never flips left/right."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from simla_bench.errors import DataError
from simla_bench.plugins.datasets.images import image_transform, load_image


def test_load_image_rgb_and_errors(tmp_path):
    Image.new("L", (5, 4), 128).save(tmp_path / "g.png")
    img = load_image(tmp_path / "g.png")
    assert img.mode == "RGB" and img.size == (5, 4)
    with pytest.raises(DataError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(DataError, match="could not be decoded"):
        load_image(tmp_path / "bad.png")


def test_eval_transform_normalises_with_imagenet_stats():
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    img = Image.new("RGB", (40, 30), (255, 0, 128))
    x = image_transform(32, train=False)(img)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    expect = [(v / 255 - m) / s for v, m, s in zip((255, 0, 128), IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)]
    assert torch.allclose(x.mean(dim=(1, 2)), torch.tensor(expect), atol=1e-2)


def test_train_transform_crops_but_never_flips():
    arr = np.zeros((64, 64, 3), np.uint8)
    arr[:, :32, 0] = 255  # red on the left
    arr[:, 32:, 2] = 255  # blue on the right
    img = Image.fromarray(arr)
    t = image_transform(32, train=True)
    outputs = []
    for seed in range(40):
        torch.manual_seed(seed)
        x = t(img)
        assert x.shape == (3, 32, 32)
        outputs.append(x)
        red_col = x[0].mean(dim=0)  # red channel per column
        left, right = red_col[:4].mean(), red_col[-4:].mean()
        assert left >= right  # red never ends up on the right
    assert any(not torch.equal(outputs[0], o) for o in outputs[1:])  # it does augment (random crops)
