"""Readers and writers for the official on-disk dataset formats (one module per format).

The world generator writes through the writers and every source reads through the
readers, so the generated world and the real datasets share one validated code path.
"""
