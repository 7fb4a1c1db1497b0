"""Shared test set-up: the same numeric settings as a real run, and a file
cache (simla_bench.filecache) of the test session's own instead of the
user's ~/.cache/simla-bench."""

import os
import tempfile

import pytest

from simla_bench.runtime import configure_math

configure_math()


@pytest.fixture(autouse=True, scope="session")
def _session_file_cache():
    with tempfile.TemporaryDirectory(prefix="simla-bench-test-cache-") as folder:
        old = os.environ.get("SIMLA_BENCH_CACHE")
        os.environ["SIMLA_BENCH_CACHE"] = folder  # subprocesses of the tests inherit it
        yield folder
        if old is None:
            os.environ.pop("SIMLA_BENCH_CACHE", None)
        else:
            os.environ["SIMLA_BENCH_CACHE"] = old
