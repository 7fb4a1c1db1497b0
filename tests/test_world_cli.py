"""`simla-bench world generate` and `simla-bench world show` through click's CliRunner."""

from __future__ import annotations

import json

from click.testing import CliRunner
from PIL import Image

from simla_bench.cli import main


def test_generate_then_show(tmp_path):
    out = tmp_path / "world"
    runner = CliRunner()
    res = runner.invoke(main, ["world", "generate", "--preset", "tiny", "--out", str(out), "--seed", "2"])
    assert res.exit_code == 0, res.output
    assert "generated" in res.output and "pretrain" in res.output
    (world,) = [p.parent for p in out.glob("*/manifest.json")]  # its own folder under --out
    assert world.name.startswith("tiny-s2-64px-g") and str(world) in res.output.replace("\n", "")
    manifest = json.loads((world / "manifest.json").read_text())
    assert manifest["seed"] == 2 and manifest["preset"] == "tiny"
    res = runner.invoke(main, ["world", "generate", "--preset", "tiny", "--out", str(out), "--seed", "2"])
    assert res.exit_code == 0 and "reused" in res.output
    sheet = tmp_path / "sheet.png"
    res = runner.invoke(main, ["world", "show", str(out), "--out", str(sheet)])
    assert res.exit_code == 0, res.output
    assert str(manifest["records"]["images"]) in res.output and "contact sheet" in res.output
    with Image.open(sheet) as img:
        assert img.size[0] > 400 and img.size[1] > 400
    assert sheet.stat().st_size < 300_000


def test_show_on_a_folder_without_world_is_one_line(tmp_path):
    res = CliRunner().invoke(main, ["world", "show", str(tmp_path)])
    assert res.exit_code == 2
    assert "manifest.json is missing" in res.output and "Traceback" not in res.output
