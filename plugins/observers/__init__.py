"""Built-in run observer: appends every finished cell record as one JSON line.

Enabled by setting ``SIMLA_BENCH_JSONL=/path/to/log.jsonl`` (or
``simla-bench run --log-jsonl PATH``).  A TensorBoard or W&B logger is written
the same way: implement ``on_cell_finished(record)`` in a plugin.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from simla_bench.hookspecs import hookimpl

SIMLA_BENCH_CONTRACT = 1
ENV_VAR = "SIMLA_BENCH_JSONL"


def _append(event: dict) -> None:
    path = os.environ.get(ENV_VAR)
    if not path:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(event, sort_keys=True, default=str)
    with open(path, "a", encoding="utf-8") as fh:  # one write per line: appends stay whole
        fh.write(line + "\n")


@hookimpl
def on_run_start(run):
    _append({"event": "run_start", **dict(run)})


@hookimpl
def on_cell_finished(record):
    _append({"event": "cell_finished", **dict(record)})


@hookimpl
def on_run_finished(run, records):
    _append({"event": "run_finished", **dict(run), "cells": len(records)})
