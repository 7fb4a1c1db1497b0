"""Image loading and the train/eval image transforms shared by every task.

``load_image(path)`` returns an RGB :class:`PIL.Image.Image`; ``image_transform(size, train)``
returns a callable PIL -> ``FloatTensor[3, size, size]`` normalised with the ImageNet
mean/std that timm uses (``normalize="clip"``: CLIP's, as ALBEF and SIMLA do).  Training
augmentation is ``RandomResizedCrop(scale=(0.5, 1.0))`` only: **no horizontal flip**,
because captions, questions and statements use left/right relations and a flip would make
them false.  The evaluation transform -- ``Resize((size, size))`` bicubic, ``ToTensor``,
``Normalize`` -- is ALBEF's test transform exactly when ``normalize="clip"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PIL import Image

from simla_bench.errors import ConfigError
from simla_bench.imagefiles import load_image  # noqa: F401 - the one implementation, re-exported

#: ImageNet statistics (timm.data.IMAGENET_DEFAULT_MEAN / _STD)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: CLIP's statistics, which ALBEF and SIMLA normalise with
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

#: the values of ``image_transform``'s options
NORMALIZE_CHOICES = ("imagenet", "clip")
INTERPOLATION_CHOICES = ("bicubic", "bilinear", "nearest")
RESIZE_CHOICES = ("square", "shorter_side")


def normalization(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` of a ``normalize`` option value: ``imagenet`` (timm's
    constants when timm is installed) or ``clip``."""
    if name == "imagenet":
        try:  # use timm's constants when present, so the two can never drift apart
            from timm.data import IMAGENET_DEFAULT_MEAN as mean, IMAGENET_DEFAULT_STD as std
        except Exception:  # noqa: BLE001
            mean, std = IMAGENET_MEAN, IMAGENET_STD
        return tuple(mean), tuple(std)
    if name == "clip":
        return CLIP_MEAN, CLIP_STD
    raise ConfigError(f"image normalisation must be one of {', '.join(NORMALIZE_CHOICES)}, got {name!r}")


def image_transform(size: int, train: bool, *, normalize: str = "imagenet", interpolation: str = "bicubic",
                    resize: str = "square") -> Callable[[Image.Image], "object"]:
    """PIL image -> normalised ``FloatTensor[3, size, size]``.

    ``train=True``: RandomResizedCrop(size, scale=(0.5, 1.0)), no flip.
    ``train=False``: ``resize="square"`` (default): resize to ``size x size``
    (aspect ratio not kept), as ALBEF's test transform; ``"shorter_side"``:
    resize the shorter side to ``size`` and centre-crop ``size x size``.
    ``normalize``: ``"imagenet"`` (default) or ``"clip"`` (ALBEF/SIMLA).
    ``interpolation``: ``"bicubic"`` (default, ALBEF's), ``"bilinear"`` or
    ``"nearest"``.  The defaults are the transform this function always gave;
    ``normalize="clip"`` gives ALBEF's test transform exactly.
    """
    from torchvision import transforms

    mean, std = normalization(normalize)
    if interpolation not in INTERPOLATION_CHOICES:
        raise ConfigError(f"image interpolation must be one of {', '.join(INTERPOLATION_CHOICES)}, "
                          f"got {interpolation!r}")
    if resize not in RESIZE_CHOICES:
        raise ConfigError(f"image resize must be one of {', '.join(RESIZE_CHOICES)}, got {resize!r}")
    interp = getattr(transforms.InterpolationMode, interpolation.upper())
    if train:
        geometry = [transforms.RandomResizedCrop(size, scale=(0.5, 1.0), interpolation=interp)]
    elif resize == "square":
        geometry = [transforms.Resize((size, size), interpolation=interp)]
    else:
        geometry = [transforms.Resize(size, interpolation=interp), transforms.CenterCrop(size)]
    return transforms.Compose([*geometry, transforms.ToTensor(), transforms.Normalize(mean, std)])
