"""``simla-bench world``: generate the built-in world and look at it.

The world dataset plugin's own command, added to ``simla-bench`` through the
``register_commands`` hook (``plugins/datasets/__init__.py``), as a third-party
plugin adds one; it uses the world's public API (:class:`.source.WorldSource`).

* ``world generate --preset small --out DIR`` writes (or reuses) a world in its own folder
  under ``DIR`` (``DIR/<preset>-s<seed>-<size>px-g<version>-<digest>``, never replaced);
* ``world show DIR`` prints its counts and writes a PNG contact sheet (``DIR``: a world
  folder, or a folder holding one world).
"""

from __future__ import annotations

from pathlib import Path

import click

from simla_bench.cli.common import SimlaGroup, console


@click.group("world", cls=SimlaGroup)
def world_group() -> None:
    """Generate and inspect the built-in procedurally generated world.

    \b
    Example:
      simla-bench world generate --preset small --out data/world
      simla-bench world show data/world
    """


@world_group.command("generate")
@click.option("--preset", type=click.Choice(["tiny", "small", "base"]), default="small", show_default=True)
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=Path("data/world"),
              show_default=True, help="Parent folder: the world goes in its own subfolder (reused when already generated alike).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--image-size", type=int, default=64, show_default=True, help="Image side in pixels.")
def generate_cmd(preset: str, out: Path, seed: int, image_size: int) -> None:
    """Generate the world in the official dataset formats (ALBEF JSON, RefCOCO+, VQA v2, NLVR2).

    \b
    Example:
      simla-bench world generate --preset tiny --out /tmp/world --seed 1
    """
    import time

    from .source import WorldSource

    src = WorldSource("world", {"preset": preset, "root": str(out), "seed": seed, "image_size": image_size})
    reused = src.is_generated()
    start = time.perf_counter()
    manifest = src.prepare()
    took = time.perf_counter() - start
    verb = "reused" if reused else f"generated in {took:.1f}s"
    console.print(f"world {verb}: {src.root} (preset {preset}, seed {seed}, checksum {manifest['checksum'][:12]})",
                  highlight=False, markup=False)
    _print_counts(manifest)


def _print_counts(manifest: dict) -> None:
    from rich.table import Table

    table = Table("kind", "split", "records", title="world records")
    recs = manifest["records"]
    table.add_row("images", "", str(recs["images"]))
    table.add_row("pretrain", "train", str(recs["pretrain"]))
    for kind in ("retrieval", "grounding", "vqa", "nlvr2"):
        for split, n in recs[kind].items():
            table.add_row(kind, split, str(n))
    console.print(table)


@world_group.command("show")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PNG to write (default: contact_sheet.png in the world's folder).")
def show_cmd(directory: Path, out: Path | None) -> None:
    """Print a world's counts and write a PNG contact sheet of sample scenes.

    \b
    Example:
      simla-bench world show data/world --out sheet.png
    """
    from .source import WorldSource

    world = WorldSource.open(directory)
    manifest = world.prepare()
    console.print(f"world {world.root}: preset {manifest['preset']}, seed {manifest['seed']}, "
                  f"{manifest['image_size']}px, checksum {manifest['checksum'][:12]}", highlight=False, markup=False)
    _print_counts(manifest)
    path = world.contact_sheet(out or world.root / "contact_sheet.png")
    console.print(f"contact sheet: {path}", highlight=False, markup=False)

