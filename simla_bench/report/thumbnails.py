"""Images embedded in an HTML page as ``data:`` URIs: small JPEG thumbnails of
example images (PIL; each file read once per page) and the leaderboard plot as
a PNG (:func:`simla_bench.report.plot.plot`)."""

from __future__ import annotations

import base64
import io
import tempfile
from pathlib import Path

from simla_bench.report.leaderboard import Leaderboard

#: the longest side of a thumbnail, pixels, and its JPEG quality
THUMB_SIZE = 96
THUMB_QUALITY = 80


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def thumbnail_bytes(path: str | Path, size: int = THUMB_SIZE) -> bytes:
    """The image at ``path`` shrunk to at most ``size`` x ``size`` (aspect kept), as JPEG."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((size, size))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=THUMB_QUALITY)
    return buf.getvalue()


class Thumbnails:
    """Thumbnail URIs by file, made once; None for a file that cannot be read as an image."""

    def __init__(self, size: int = THUMB_SIZE):
        self.size = size
        self._done: dict[str, str | None] = {}

    def uri(self, path: str | Path) -> str | None:
        key = str(path)
        if key not in self._done:
            try:
                self._done[key] = data_uri(thumbnail_bytes(path, self.size), "image/jpeg")
            except (OSError, ValueError):  # missing, unreadable or not an image (PIL's errors are OSErrors)
                self._done[key] = None
        return self._done[key]


def plot_uri(board: Leaderboard) -> str:
    """The leaderboard plot (``report --plot``'s figure) as a PNG ``data:`` URI."""
    from simla_bench.report.plot import plot

    with tempfile.TemporaryDirectory() as tmp:
        path = plot(board, Path(tmp) / "leaderboard.png")
        return data_uri(path.read_bytes(), "image/png")
