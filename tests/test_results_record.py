"""The typed cell record (simla_bench/runner/record.py): round trip, old records, corrupt ones, and the docs.

``fixtures/cell_record_schema1.json`` is an nlvr2 record written by simla-bench
0.4.0 before the record was typed (``run --world tiny --steps 3 --objectives
itc,itm``); records written before 0.4.0 are the same without ``components``
and ``data_checksums`` (the only fields added since schema 1 began).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from simla_bench.report.records import load_run_dirs
from simla_bench.runner.record import SCHEMA_VERSION, CellRecord, CorruptRecordError
from simla_bench.runner.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "cell_record_schema1.json"


def stored() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def pre_040(data: dict) -> dict:
    return {k: v for k, v in data.items() if k not in ("components", "data_checksums")}


def store_with(tmp_path: Path, data: dict) -> RunStore:
    store = RunStore(tmp_path / "run")
    store.ensure()
    store.update_manifest({"schema": SCHEMA_VERSION, "rows": [], "cells": [], "runs": []})
    store.record_path(data["key"]).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return store


def test_a_record_written_and_read_back_is_equal_and_the_file_is_unchanged(tmp_path):
    record = CellRecord.from_json(stored(), stored()["key"])
    store = RunStore(tmp_path / "run")
    path = store.write_record(record)
    assert path.read_bytes() == FIXTURE.read_bytes()  # the typed record writes the same file as before
    back = store.read_record(record.key)
    assert back.problem is None and back.record == record
    assert back.data == stored()
    assert isinstance(back.record.timings.task_seconds, float) and back.record.schema_version == SCHEMA_VERSION


@pytest.mark.parametrize("old", [stored, lambda: pre_040(stored())], ids=["0.4.0", "before-0.4.0"])
def test_an_old_schema_1_record_still_reads_and_reports(tmp_path, old):
    data = old()
    store = store_with(tmp_path, data)
    read = store.read_record(data["key"])
    assert read.problem is None and read.data == data  # fields it lacked stay absent
    loaded = load_run_dirs([store.root])
    assert loaded.records == [data] and not loaded.warnings


@pytest.mark.parametrize("change, problem", [
    ({"seed": "0"}, "field 'seed': Input should be a valid integer"),
    ({"metrics": {"test/acc": "high"}}, "field 'metrics.test/acc': Input should be a valid number"),
    ({"timings": {"task_seconds": 1.0, "pretrain_seconds": None, "pretrain_reused": "no"}},
     "field 'timings.pretrain_reused': Input should be a valid boolean"),
    ({"colour": "red"}, "field 'colour': unknown field"),
])
def test_a_record_with_a_wrong_field_is_corrupt_in_one_line(tmp_path, change, problem):
    data = {**stored(), **change}
    with pytest.raises(CorruptRecordError, match=re.escape(problem)):
        CellRecord.from_json(data)
    read = store_with(tmp_path, data).read_record(data["key"])
    assert read.record is None and read.problem == problem and "\n" not in read.problem


def test_the_report_names_the_corrupt_field(tmp_path):
    good = stored()
    store = store_with(tmp_path, good)
    bad = {**good, "key": "bad", "seed": "0"}
    store.record_path("bad").write_text(json.dumps(bad), encoding="utf-8")
    loaded = load_run_dirs([store.root])
    assert [r["key"] for r in loaded.records] == [good["key"]]
    (warning,) = loaded.warnings
    assert "bad.json: field 'seed': Input should be a valid integer" in warning


def doc_table(text: str) -> dict[str, str]:
    section = text.split("## Record fields", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `([a-z_]+)` \| (.*) \|$", section, flags=re.M))


def test_docs_results_lists_every_record_field_with_its_description():
    documented = doc_table((ROOT / "docs" / "results.md").read_text(encoding="utf-8"))
    assert documented == CellRecord.fields_described()
    assert CellRecord.markdown_table() in (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    assert all(documented.values())


def test_docs_architecture_lists_the_record_fields():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    sentence = text.split("Record fields:", 1)[1].split("(what each holds", 1)[0]
    listed = re.findall(r"`([a-z_]+)`", re.sub(r"\([^)]*\)", "", sentence))
    assert listed == list(CellRecord.fields_described())
