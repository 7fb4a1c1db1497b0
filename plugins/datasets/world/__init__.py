"""The built-in procedurally generated world (scenes, language, splits, writer, source).

Import the submodules directly; this package module stays empty so it imports nothing heavy.
"""
