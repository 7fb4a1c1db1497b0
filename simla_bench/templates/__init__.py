"""File templates for ``simla-bench new-plugin`` (package data, read with
:mod:`importlib.resources`).  Placeholders are ``{{name}}``-style; see
:func:`simla_bench.cli.plugin_cmd.skeleton_names` for the values."""
