"""``report --format html`` (simla_bench/report/html_page.py, thumbnails.py): a
well-formed self-contained page with the leaderboard rows, the † marks and
their notes, the plot and thumbnails as data URIs, every text escaped, no
network reference, and the per-task comparisons against the reference row.
A slow test loads the page in headless Chromium."""

from __future__ import annotations

import html.parser
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from simla_bench.cli import main
from simla_bench.errors import UserError
from simla_bench.interfaces import Example
from simla_bench.report import leaderboard
from simla_bench.report.html_page import reference_row, report_page

from test_report_leaderboard import record, write_run
from test_report_sensitivity import control_records

VOID = {"meta", "img", "br", "hr", "link", "input", "col", "area", "base", "wbr", "source"}
TRICKY = 'a <b>bold</b> & "quoted" <script>alert(1)</script>'


class TagChecker(html.parser.HTMLParser):
    """Every opened tag closed in order; collects the tags, the img sources and the text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.tags, self.srcs, self.text, self.errors = [], [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.srcs.append(dict(attrs)["src"])
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> TagChecker:
    checker = TagChecker()
    checker.feed(page)
    checker.close()
    assert checker.errors == [] and checker.stack == [], (checker.errors, checker.stack)
    return checker


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("img")
    out = []
    for i, colour in enumerate(("red", "blue", "green")):
        path = folder / f"scene <{i}>.png"  # a file name that needs escaping too
        Image.new("RGB", (320, 240), colour).save(path)
        out.append(path)
    return out


def recs_with_tricky_row():
    """The sensitivity tests' control records (nlvr2 marked †), plus a row whose label needs escaping."""
    recs = control_records()
    recs += [record("itc<mlm>&", ["itc", "mlm"], seed, task, acc)
             for task, accs in (("retrieval", (65, 66)), ("nlvr2", (52, 50))) for seed, acc in enumerate(accs)]
    return recs


def make_loader(images):
    """NLVR2 cells: 10 statements with images, right on a row-dependent set; retrieval: no predictions."""
    right = {"none (control)": {0, 1}, "itc,itm": {0, 2, 3, 4}, "itc": {1}, "shuffled (control)": set(),
             "itc<mlm>&": {5}}

    def load(rec):
        if rec["task"] == "retrieval":
            raise UserError(f"cell retrieval [{rec['row']}] seed {rec['seed']} has no saved predictions")
        ok = right[rec["row"]]
        return [Example(f"s{i}", 1.0 if i in ok else 0.0, i in ok, truth=True, text=f"{TRICKY} #{i}",
                        images=(str(images[i % 3]), str(images[(i + 1) % 3])) if i != 4 else ("/nonexistent.png",))
                for i in range(10)]

    return load


def test_html_report_page(images):
    recs = recs_with_tricky_row()
    board = leaderboard.build(recs, n_boot=300)
    assert reference_row(board).label == "none (control)"
    page = report_page(board, recs, make_loader(images), title="report <of> runs/x")
    checker = parse(page)
    text = " ".join(" ".join(checker.text).split())
    for label in ("itc,itm", "itc", "none (control)", "shuffled (control)", "itc<mlm>&"):
        assert f"<td>{label}</td>".replace("<mlm>&", "&lt;mlm&gt;&amp;") in page
    assert "nlvr2 test/acc ↑ †" in text and "† nlvr2: best row" in text  # the mark and its note
    assert "report <of> runs/x" in text and "<of>" not in page.replace("&lt;of&gt;", "")
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page and TRICKY in text
    assert not re.search(r"https?:", page)  # nothing from the network
    assert checker.tags.count("table") >= 5 and "style" in checker.tags
    pngs = [s for s in checker.srcs if s.startswith("data:image/png;base64,")]
    jpegs = {s for s in checker.srcs if s.startswith("data:image/jpeg;base64,")}
    assert len(pngs) == 1 and len(pngs[0]) > 5000  # the plot
    assert len(jpegs) == 3 and all(len(s) < 4000 for s in jpegs)  # one small thumbnail per distinct image
    assert "/nonexistent.png (not found)" in text
    assert "itc,itm vs none (control)" in text and "3 wins, 1 losses" in text  # per seed and pooled: 2 seeds
    assert "seed 0: 3 wins, 1 losses" in text
    assert text.count("has no saved predictions") == 4  # each retrieval comparison, one line each
    assert "shuffled (control) vs none (control)" in text and "0 wins, 2 losses" in text


def test_html_report_baseline_detail_and_no_comparisons(images):
    recs = recs_with_tricky_row()
    board = leaderboard.build(recs, n_boot=300, baseline="itc", detail=True)
    assert reference_row(board).label == "itc"
    page = report_page(board, recs, make_loader(images), plot=False)
    checker = parse(page)
    assert "column sensitivity" in page and "itc (baseline)" in page and "vs itc" in page
    assert not any(s.startswith("data:image/png") for s in checker.srcs)
    bare = report_page(board, recs, None, plot=False)
    parse(bare)
    assert "Examples that changed" not in bare and "Leaderboard" in bare


@pytest.fixture
def html_run(tmp_path, monkeypatch, images):
    run = write_run(tmp_path / "run", recs_with_tricky_row())
    fake = types.ModuleType("simla_bench.report.examples")
    loader = make_loader(images)
    fake.cell_examples = lambda run_dir, rec: loader(rec)
    monkeypatch.setitem(sys.modules, "simla_bench.report.examples", fake)
    return run


def test_cli_report_html(html_run, tmp_path):
    out = tmp_path / "report.html"
    res = CliRunner().invoke(main, ["report", str(html_run), "--format", "html", "--out", str(out),
                                    "--bootstrap", "300"])
    assert res.exit_code == 0, res.output
    page = out.read_text(encoding="utf-8")
    parse(page)
    assert "data:image/png;base64," in page and "data:image/jpeg;base64," in page and "† nlvr2" in page


#: appended to a copy of the page: records in the DOM whether every image decoded and any script error
PROBE = """<script>
window.addEventListener('error', e => document.body.setAttribute('data-errors', (document.body.getAttribute('data-errors') || '') + ' ' + e.message));
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length;
  document.body.setAttribute('data-images', imgs.length + ' ' + bad);
});
</script>"""


def chromium() -> str | None:
    return next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="no chromium binary (Debian: apt-get install chromium)")
def test_html_report_in_headless_chromium(html_run, tmp_path):
    """The page loads in a real browser: no console error, the tables in the DOM, every
    thumbnail and the plot decoded (all but the one missing file, shown as text)."""
    out = tmp_path / "report.html"
    res = CliRunner().invoke(main, ["report", str(html_run), "--format", "html", "--out", str(out),
                                    "--bootstrap", "300"])
    assert res.exit_code == 0, res.output
    probe = tmp_path / "probe.html"
    probe.write_text(out.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    base = [chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr", "--v=0",
            f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    env = {**os.environ, "HOME": str(tmp_path)}
    dom = subprocess.run([*base, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120, env=env)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout).group(0)
    images = re.search(r'data-images="(\d+) (\d+)"', body)
    assert images and int(images.group(1)) >= 4 and images.group(2) == "0", body  # all decoded
    assert "data-errors" not in body
    assert dom.stdout.count("<table") >= 5 and "nlvr2 test/acc ↑ †" in dom.stdout
    shot = tmp_path / "shot.png"
    run = subprocess.run([*base, f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars",
                          out.as_uri()], capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0 and shot.stat().st_size > 20000, run.stderr[-2000:]
    console = [line for line in (dom.stderr + run.stderr).splitlines() if ":CONSOLE" in line]
    assert console == []  # chromium logs each console message as INFO:CONSOLE
