"""Reading image files: ``load_image(path)`` -> RGB PIL image, with a one-line
:class:`~simla_bench.errors.DataError` for a missing or undecodable file.

Core code (the trainer's data loader) and plugins (datasets, tasks) share it;
the image *transform* belongs to the model (``model.image_transform``).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from simla_bench.errors import DataError


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
