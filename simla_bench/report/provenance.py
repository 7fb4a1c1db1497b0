"""Whether the records of one row came from different data or code.

A cell key covers the data checksums and every component's version, code
digest and resolved options (``docs/results.md``), so a change recomputes the
cells it affects under new keys; the old records stay in the run directory.
When records that the report shows under one row label (across seeds and
tasks) disagree on one of these, the table mixes results from before and after
the change: :func:`mixed_provenance` returns one warning line per such row.

Rows are grouped by *label* (not by ``row_key``, which itself changes with the
pretraining side's data and code), and task-side values are compared per task,
dataset values per dataset.
"""

from __future__ import annotations

import json
from typing import Any, Iterable


def _facts(record: dict) -> dict[str, str]:
    """What a record says about its data and code: ``{what: value}``."""
    out: dict[str, str] = {}
    for name, checksum in (record.get("data_checksums") or {}).items():
        out[f"data '{name}' (checksum)"] = str(checksum)
    comps = record.get("components") or {}

    def add(label: str, comp: Any) -> None:
        if not isinstance(comp, dict):
            return
        for field, what in (("version", "version"), ("dist", "distribution"), ("code", "code")):
            if field in comp:
                out[f"{label} {what}"] = str(comp[field])

    add(f"model '{(comps.get('model') or {}).get('name', '?')}'", comps.get("model"))
    for name, comp in (comps.get("objectives") or {}).items():
        add(f"objective '{name}'", comp)
    for name, comp in (comps.get("datasets") or {}).items():
        add(f"dataset '{name}'", comp)
    task = comps.get("task") or {}
    add(f"task '{task.get('name', record.get('task'))}'", task)
    parts = record.get("key_parts") or {}
    pre, cell = parts.get("pretrain") or {}, parts.get("cell") or {}
    if pre:
        out["model options"] = json.dumps((pre.get("model") or {}).get("options"), sort_keys=True, default=str)
        for name, obj in (pre.get("objectives") or {}).items():
            out[f"objective '{name}' options"] = json.dumps(obj.get("options"), sort_keys=True, default=str)
    if cell:
        out[f"task '{cell.get('task')}' options"] = json.dumps(cell.get("task_config"), sort_keys=True, default=str)
    return out


def _subject(what: str) -> tuple[str, str]:
    """``"objective 'itc' code"`` -> ``("objective 'itc'", "code")``."""
    if what.endswith(" (checksum)"):
        return what[: -len(" (checksum)")], "checksum"
    subject, _, field = what.rpartition(" ")
    return subject, field


def mixed_provenance(records: Iterable[dict], most: int = 4) -> list[str]:
    """One line per row label whose records differ in data or code, naming
    what differs (at most ``most`` subjects, then a count)."""
    by_label: dict[str, dict[str, set[str]]] = {}
    row_keys: dict[str, set[str]] = {}
    for r in records:
        label = r.get("row", "?")
        facts = by_label.setdefault(label, {})
        row_keys.setdefault(label, set()).add(str(r.get("row_key")))
        for what, value in _facts(r).items():
            facts.setdefault(what, set()).add(value)
    lines = []
    for label, facts in by_label.items():
        subjects: dict[str, list[str]] = {}
        for what, values in facts.items():
            if len(values) > 1:
                subject, field = _subject(what)
                subjects.setdefault(subject, []).append(field)
        if not subjects:
            continue
        named = [f"{subject} ({', '.join(fields)})" for subject, fields in subjects.items()]
        if len(named) > most:
            named = named[:most] + [f"{len(named) - most} more"]
        n_rows = len(row_keys[label])
        shown = (f"the report shows them as {n_rows} rows, one per pretraining" if n_rows > 1
                 else "its numbers combine results from before and after the change")
        lines.append(f"row '{label}' mixes records from different data or code: {'; '.join(named)} differ; "
                     f"{shown} — rerun into a fresh --out (or move the older cells/*.json away) to compare "
                     "like with like")
    return lines
