"""Shared test helpers (imported as ``helpers.<module>``, never collected as tests).

- :mod:`helpers.runner_fakes`: fake objectives, tasks, sources and pipelines for the runner's tests
- :mod:`helpers.training_toys`: toy models, records and tokenizers for the trainer's tests
- :mod:`helpers.objectives_tiny`: a tiny VLP model and batches for the objectives' training tests
- :mod:`helpers.retrieval_chance`: the exact chance level of the retrieval metrics
- :mod:`helpers.training_dist_worker`: the worker script of the distributed-training tests
- :mod:`helpers.hf_checkpoints`: tiny random Hugging Face checkpoints (CLIP, SigLIP, BLIP, ViLT) saved to a folder
"""
