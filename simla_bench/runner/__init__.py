"""The evaluation matrix: expand rows x seeds x tasks into cells, key each cell
by its content, run what is not finished (resuming pretraining from its last
checkpoint), and store one JSON record per finished cell.

* :mod:`.cells` — rows/cells expansion and up-front name/capability checks
* :mod:`.keys` — content-addressed keys
* :mod:`.store` — the run directory: records, manifest, locks
* :mod:`.pipeline` — the concrete steps (data, model, pretraining, tasks)
* :mod:`.matrix` — the loop that ties them together (rank-aware under torchrun)
* :mod:`.executors` — run (row, seed) groups here or as submitit/Slurm jobs
* :mod:`.curves` — loss-curve NaN/inf check and summary
* :mod:`.progress` — rich / plain / quiet progress display

The runner knows no particular objective or task: it reaches them through the
registry and the interfaces in :mod:`simla_bench.interfaces`.
"""
