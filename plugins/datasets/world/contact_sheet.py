"""A PNG contact sheet of a generated world, for people to look at: retrieval images with
their five captions, grounding images with the proposal boxes (grey) and the ground-truth
box (green) under the expression, VQA images with questions and majority answers, and
NLVR2 image pairs with the statement and label.  Everything is read back through the
loaders, so the sheet shows exactly what the tasks see."""

from __future__ import annotations

import textwrap
from pathlib import Path

from ..images import load_image


def open_world(root: Path):
    """A :class:`WorldSource` for an already generated world folder (from its manifest)."""
    import json

    from simla_bench.errors import DataError

    from .source import MANIFEST, WorldSource

    path = Path(root) / MANIFEST
    if not path.is_file():  # a parent folder of worlds (the ``root`` option): its one world
        worlds = sorted(p.parent for p in Path(root).glob(f"*/{MANIFEST}")) if Path(root).is_dir() else []
        if len(worlds) > 1:
            raise DataError(f"{root} holds {len(worlds)} worlds: {', '.join(w.name for w in worlds)}",
                            hint="name one of their folders")
        if not worlds:
            raise DataError(f"{root} holds no world ({MANIFEST} is missing)",
                            hint="generate one with `simla-bench world generate --out DIR`")
        root, path = worlds[0], worlds[0] / MANIFEST
    m = json.loads(path.read_text(encoding="utf-8"))
    src = WorldSource("world", {"root": str(root), "preset": m["preset"], "seed": m["seed"],
                                "image_size": m["image_size"], "counts": m["counts"]})
    if src._current() is None:
        raise DataError(f"{path} was written by another generator version ({m.get('generator_version')})",
                        hint="regenerate the world")
    return src


def _wrap(text: str, width: int = 34) -> str:
    return "\n".join(textwrap.wrap(text, width))


def contact_sheet(root: Path, out: Path, dpi: int = 72) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patches as patches
    import matplotlib.pyplot as plt

    src = open_world(root)
    ret = src.load("retrieval", "test")
    refs = src.load("grounding", "val")
    vqa = src.load("vqa", "val").records
    nlvr = src.load("nlvr2", "dev")
    comp = src.load("retrieval", "test_comp")

    cols = 4
    fig, axes = plt.subplots(5, cols, figsize=(13, 22), gridspec_kw={"hspace": 1.1, "wspace": 0.15})
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])

    def show(ax, path, title, fontsize=7.5):
        ax.imshow(load_image(path), interpolation="nearest")
        ax.set_xlabel(title, fontsize=fontsize, loc="left")

    for j in range(cols):  # retrieval: twins side by side
        if j < len(ret.images):
            caps = [ret.texts[t] for t in ret.img2txt[j]]
            show(axes[0, j], ret.images[j], "\n".join(_wrap("- " + c) for c in caps))
    axes[0, 0].set_title("retrieval (test; images 0/1 and 2/3 are twins)", fontsize=9, loc="left")
    seen, j = set(), 0
    for r in refs:
        if r.ref_id in seen or j >= cols:
            continue
        seen.add(r.ref_id)
        ax = axes[1, j]
        show(ax, r.image, _wrap(f'"{r.sentence}"  [{r.category}]'), 9)
        for b in r.proposals:
            ax.add_patch(patches.Rectangle((b[0] - 0.5, b[1] - 0.5), b[2], b[3], fill=False, ec="0.7", lw=1, ls="--"))
        b = r.box
        ax.add_patch(patches.Rectangle((b[0] - 0.5, b[1] - 0.5), b[2], b[3], fill=False, ec="lime", lw=2))
        j += 1
    axes[1, 0].set_title("grounding (val): proposals dashed, ground truth green", fontsize=9, loc="left")
    by_image: dict = {}
    for q in vqa:
        by_image.setdefault(q.image, []).append(q)
    for j, (image, qs) in enumerate(list(by_image.items())[:cols]):
        lines = [_wrap(f"Q: {q.question}") + f"\nA: {q.multiple_choice_answer}  ({', '.join(sorted(set(q.answers)))})"
                 for q in qs]
        show(axes[2, j], image, "\n".join(lines))
    axes[2, 0].set_title("VQA (val): majority answer (distinct annotator answers)", fontsize=9, loc="left")
    picks = [next((e for e in nlvr if e.label), None), next((e for e in nlvr if not e.label), None)]
    for k, ex in enumerate(p for p in picks if p is not None):  # one true and one false example
        show(axes[3, 2 * k], ex.left, _wrap(f"{ex.identifier}: {ex.sentence} -> {ex.label}", 40), 8)
        show(axes[3, 2 * k + 1], ex.right, "(right image)", 8)
    axes[3, 0].set_title("NLVR2 (dev): left | right image, statement -> label", fontsize=9, loc="left")
    for j in range(cols):
        if j < len(comp.images):
            caps = [comp.texts[t] for t in comp.img2txt[j]][:3]
            show(axes[4, j], comp.images[j], "\n".join(_wrap("- " + c) for c in caps))
    axes[4, 0].set_title("compositional split (held-out colour-shape pairs)", fontsize=9, loc="left")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    from PIL import Image

    with Image.open(out) as img:  # a 256-colour palette keeps the sheet small (README-friendly)
        small = img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(out, optimize=True)
    return out
