"""Helpers for testing simla-bench plugins (also exported as pytest fixtures
through the ``pytest11`` entry point, see :mod:`simla_bench.testing.fixtures`)."""
