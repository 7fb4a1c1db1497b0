"""Image loading and the train/eval image transforms shared by every task.

``load_image(path)`` returns an RGB :class:`PIL.Image.Image`; ``image_transform(size, train)``
returns a callable PIL -> ``FloatTensor[3, size, size]`` normalised with the ImageNet
mean/std that timm uses.  Training augmentation is ``RandomResizedCrop(scale=(0.5, 1.0))``
only: **no horizontal flip**, because captions, questions and statements use left/right
relations and a flip would make them false.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PIL import Image

from simla_bench.errors import DataError

#: ImageNet statistics (timm.data.IMAGENET_DEFAULT_MEAN / _STD)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_image(path: str | Path) -> Image.Image:
    """Open an image file as RGB; a missing or undecodable file is a :class:`DataError`."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise DataError(f"image {path} does not exist", hint="check the dataset's image_root option") from None
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for bad files
        raise DataError(f"image {path} could not be decoded: {type(exc).__name__}: {exc}") from None


def image_transform(size: int, train: bool) -> Callable[[Image.Image], "object"]:
    """PIL image -> normalised ``FloatTensor[3, size, size]``.

    ``train=True``: RandomResizedCrop(size, scale=(0.5, 1.0)) (bicubic), no flip.
    ``train=False``: resize to ``size x size`` (bicubic).
    """
    from torchvision import transforms

    try:  # use timm's constants when present, so the two can never drift apart
        from timm.data import IMAGENET_DEFAULT_MEAN as mean, IMAGENET_DEFAULT_STD as std
    except Exception:  # noqa: BLE001
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    interp = transforms.InterpolationMode.BICUBIC
    if train:
        geometry = [transforms.RandomResizedCrop(size, scale=(0.5, 1.0), interpolation=interp)]
    else:
        geometry = [transforms.Resize((size, size), interpolation=interp)]
    return transforms.Compose([*geometry, transforms.ToTensor(), transforms.Normalize(mean, std)])
