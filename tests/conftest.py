"""Shared test set-up: the same numeric settings as a real run."""

from simla_bench.runtime import configure_math

configure_math()
