"""Scene sampling and rendering: 1-6 coloured shapes on a noisy background.

A scene is a list of :class:`Obj` (shape, colour, size, centre, half-extent) plus background
parameters; :func:`render` draws it with PIL + numpy, deterministically from the scene's
``noise_seed``.  Boxes are the tight pixel boxes (x, y, w, h) of each object's full mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

from .vocab import COLOUR_NAMES, COLOURS, HELD_OUT, SHAPES, SIZES


@dataclass
class Obj:
    shape: str
    colour: str
    size: str
    cx: float
    cy: float
    r: float
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # filled by render()

    @property
    def combo(self) -> tuple[str, str]:
        return (self.colour, self.shape)

    def to_dict(self) -> dict:
        """The object as ``world_meta.jsonl`` holds it (:mod:`.meta` reads it back)."""
        return {"shape": self.shape, "colour": self.colour, "size": self.size,
                "cx": self.cx, "cy": self.cy, "r": self.r, "box": list(self.box)}


@dataclass
class Scene:
    objects: list[Obj]
    bg: tuple[int, int, int]
    bg_grad: tuple[float, float]
    noise_seed: int
    size: int
    #: (kind, a, b, c): 0 plain, 1 stripes (angle, period, amplitude), 2 checker (period, amplitude),
    #: 3 blotches (count, amplitude) -- all low-contrast, so objects stay easy to see
    texture: tuple = (0, 0.0, 0.0, 0.0)


def polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]] | None:
    """Vertices of a shape (None for the circle, drawn as an ellipse)."""
    if shape == "circle":
        return None
    if shape == "square":
        s = r * 0.85
        return [(cx - s, cy - s), (cx + s, cy - s), (cx + s, cy + s), (cx - s, cy + s)]
    if shape == "triangle":
        return [(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + r * 0.7, cy), (cx, cy + r), (cx - r * 0.7, cy)]
    if shape == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else r * 0.45
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
        return pts
    if shape == "cross":
        a = r * 0.36
        return [(cx - a, cy - r), (cx + a, cy - r), (cx + a, cy - a), (cx + r, cy - a), (cx + r, cy + a),
                (cx + a, cy + a), (cx + a, cy + r), (cx - a, cy + r), (cx - a, cy + a), (cx - r, cy + a),
                (cx - r, cy - a), (cx - a, cy - a)]
    if shape == "hexagon":
        return [(cx + r * math.cos(k * math.pi / 3), cy + r * math.sin(k * math.pi / 3)) for k in range(6)]
    raise ValueError(f"unknown shape {shape!r}")


def _draw(draw: ImageDraw.ImageDraw, o: Obj, fill) -> None:
    pts = polygon(o.shape, o.cx, o.cy, o.r)
    if pts is None:
        draw.ellipse([o.cx - o.r, o.cy - o.r, o.cx + o.r, o.cy + o.r], fill=fill)
    else:
        draw.polygon(pts, fill=fill)


def object_mask(o: Obj, size: int) -> np.ndarray:
    """Boolean mask of one object's full (unoccluded) pixels."""
    m = Image.new("L", (size, size), 0)
    _draw(ImageDraw.Draw(m), o, 255)
    return np.asarray(m) > 0


def half_extent(size_name: str, image_size: int, rng: np.random.Generator) -> float:
    base = 0.085 if size_name == "small" else 0.155
    return image_size * base * float(rng.uniform(0.92, 1.08))


def random_attrs(rng: np.random.Generator, allow_held_out: bool) -> tuple[str, str]:
    while True:
        combo = (COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))], SHAPES[rng.integers(len(SHAPES))])
        if allow_held_out or combo not in HELD_OUT:
            return combo


def place(objs: list[Obj], new: Obj, size: int) -> bool:
    """Whether ``new`` fits: inside the image, and overlapping others only a little."""
    m = 1.0
    if new.cx - new.r < m or new.cy - new.r < m or new.cx + new.r > size - m or new.cy + new.r > size - m:
        return False
    for o in objs:
        d = math.hypot(o.cx - new.cx, o.cy - new.cy)
        if d < 0.85 * (o.r + new.r):  # mild overlap at most
            return False
    return True


def sample_scene(rng: np.random.Generator, image_size: int, specs: list[tuple[str | None, str | None, str | None]],
                 n_total: int, allow_held_out: bool = False, forbid=None) -> Scene | None:
    """A scene holding objects matching ``specs`` ((colour, shape, size), None = random) plus
    random fillers up to ``n_total`` objects.  ``forbid(colour, shape, size)`` rejects fillers.
    Returns None when the objects do not fit (the caller retries)."""
    objs: list[Obj] = []
    wanted = list(specs) + [(None, None, None)] * max(0, n_total - len(specs))
    for i, (colour, shape, size_name) in enumerate(wanted):
        filler = i >= len(specs)
        for _attempt in range(40):
            c, s = random_attrs(rng, allow_held_out)
            c, s = colour or c, shape or s
            z = size_name or SIZES[rng.integers(2)]
            if not allow_held_out and (c, s) in HELD_OUT and not (colour and shape):
                continue
            if filler and forbid is not None and forbid(c, s, z):
                continue
            r = half_extent(z, image_size, rng)
            cx, cy = rng.uniform(r + 1, image_size - r - 1, size=2)
            o = Obj(s, c, z, float(cx), float(cy), r)
            if place(objs, o, image_size):
                objs.append(o)
                break
        else:
            if not filler:
                return None
    order = rng.permutation(len(objs))  # planted objects should not always be drawn first
    objs = [objs[k] for k in order]
    v = int(rng.integers(25, 115))
    tint = rng.integers(-18, 19, size=3)
    bg = tuple(int(np.clip(v + t, 0, 255)) for t in tint)
    grad = (float(rng.uniform(-30, 30)), float(rng.uniform(-30, 30)))
    kind = int(rng.integers(4))
    texture = (kind, float(rng.uniform(0, math.pi)), float(rng.uniform(0.12, 0.3)), float(rng.uniform(6, 14)))
    return Scene(objs, bg, grad, int(rng.integers(2**31)), image_size, texture)


_GRIDS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    if size not in _GRIDS:
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1) - 0.5
        _GRIDS[size] = (xx[..., None], yy[..., None])
    return _GRIDS[size]


def _texture(texture: tuple, xx: np.ndarray, yy: np.ndarray, rng: np.random.Generator) -> np.ndarray | float:
    kind, a, period, amp = texture
    if kind == 1:  # stripes at angle a
        return amp * np.sign(np.sin((np.cos(a) * xx + np.sin(a) * yy) * (2 * math.pi / period)))
    if kind == 2:  # checker
        return amp * np.sign(np.sin(xx * 2 * math.pi / period) * np.sin(yy * 2 * math.pi / period))
    if kind == 3:  # soft blotches
        out = np.zeros_like(xx)
        for _ in range(3):
            cx, cy = rng.uniform(-0.5, 0.5, size=2)
            out += amp * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (period * 0.8) ** 2))
        return out
    return 0.0


def render(scene: Scene) -> np.ndarray:
    """uint8 [H, W, 3] image; fills each object's ``box`` (tight box of its full mask)."""
    size = scene.size
    rng = np.random.default_rng(scene.noise_seed)
    xx, yy = _grid(size)
    base = np.asarray(scene.bg, np.float32) + scene.bg_grad[0] * xx + scene.bg_grad[1] * yy
    base = base + _texture(scene.texture, xx, yy, rng)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for o in scene.objects:
        jitter = rng.integers(-12, 13, size=3)
        colour = tuple(int(min(255, max(0, c + j))) for c, j in zip(COLOURS[o.colour], jitter))
        _draw(draw, o, colour)
        o.box = mask_box(o, size)
    arr = np.asarray(img).astype(np.int16)
    arr += rng.integers(-9, 10, size=arr.shape, dtype=np.int16)  # sensor-like noise everywhere
    return np.clip(arr, 0, 255).astype(np.uint8)


def mask_box(o: Obj, size: int) -> tuple[int, int, int, int]:
    """Tight x, y, w, h box of an object's full (unoccluded) mask, rasterised in a small
    window around the object (the same pixels as :func:`object_mask`, integer-shifted)."""
    ox, oy = int(math.floor(o.cx - o.r)) - 2, int(math.floor(o.cy - o.r)) - 2
    side = int(math.ceil(2 * o.r)) + 5
    m = Image.new("L", (side, side), 0)
    _draw(ImageDraw.Draw(m), Obj(o.shape, o.colour, o.size, o.cx - ox, o.cy - oy, o.r), 255)
    ys, xs = np.nonzero(np.asarray(m))
    x0, y0 = max(0, int(xs.min()) + ox), max(0, int(ys.min()) + oy)
    x1, y1 = min(size, int(xs.max()) + ox + 1), min(size, int(ys.max()) + oy + 1)
    return (x0, y0, x1 - x0, y1 - y0)


def mirrored(scene: Scene) -> Scene:
    """The scene mirrored left-right (objects' x flipped; same background)."""
    objs = [replace(o, cx=scene.size - o.cx) for o in scene.objects]
    return Scene(objs, scene.bg, (-scene.bg_grad[0], scene.bg_grad[1]), scene.noise_seed + 1, scene.size, scene.texture)


def with_colours(scene: Scene, colours: list[str]) -> Scene:
    objs = [replace(o, colour=c) for o, c in zip(scene.objects, colours)]
    return Scene(objs, scene.bg, scene.bg_grad, scene.noise_seed + 1, scene.size, scene.texture)
