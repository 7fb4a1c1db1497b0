"""The leaderboard: load cell records from one or more run directories, group
them into rows (objective sets) x tasks, aggregate seeds, test differences
against a baseline row with a paired bootstrap, and render or export.

* :mod:`.records` — loading and merging run directories
* :mod:`.bootstrap` — paired bootstrap significance (numpy, vectorised)
* :mod:`.leaderboard` — the table model (means, stds, best, deltas, marks)
* :mod:`.sensitivity` — per column: the best row vs the control rows, the minimum detectable effect
* :mod:`.export` — rich / markdown / csv / json / latex renderers
* :mod:`.plot` — grouped bars and the data-efficiency curve (matplotlib)
"""
