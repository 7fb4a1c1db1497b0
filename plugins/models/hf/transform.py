"""The image transform of a Hugging Face model: its checkpoint's own image processor.

:class:`ProcessorTransform` turns one PIL image into the ``[3, S, S]`` tensor
the model reads, through the processor saved with the checkpoint
(``preprocessor_config.json``: its resize, crop, rescale and normalisation).
The tasks stack images of one split into one tensor, so every image must come
out square at the model's working size: processors that keep the aspect ratio
(ViLT's resizes the shorter side and pads) get the image resized to a square
first (``square=True``).  There is no training-time augmentation: fine-tuning
sees the evaluation transform.
"""

from __future__ import annotations

from typing import Any


class ProcessorTransform:
    """``PIL.Image -> FloatTensor[3, size, size]`` through ``processor``."""

    def __init__(self, processor: Any, size: int, square: bool = False):
        self.processor = processor
        self.size = int(size)
        self.square = square

    def __call__(self, image: Any):
        kwargs: dict[str, Any] = {}
        if self.square:
            from PIL import Image

            image = image.convert("RGB").resize((self.size, self.size), Image.BICUBIC)
            kwargs["do_resize"] = False
        pixels = self.processor(images=image, return_tensors="pt", **kwargs)["pixel_values"][0]
        if tuple(pixels.shape[-2:]) != (self.size, self.size):
            from simla_bench.errors import UserError

            raise UserError(f"the image processor gives {tuple(pixels.shape[-2:])} pixels, not the model's "
                            f"{self.size}x{self.size}",
                            hint="save an image processor whose size and crop are the model's image_size")
        return pixels
