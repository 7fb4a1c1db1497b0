"""Hugging Face model families as simla-bench models: ``hf_clip``, ``hf_siglip``
(dual encoders), ``hf_blip`` (BLIP's ITC + ITM retrieval model) and ``hf_vilt``
(ViLT's single stream with its ITM, VQA or NLVR2 head).

Each is a model recipe (:mod:`.recipes`) over transformers' own classes that
loads a local ``save_pretrained`` directory (the hub only with ``online:
true``) and wraps the loaded model in an adapter (:mod:`.adapter` and one
module per family) offering the model API the built-in tasks call
(``encode_image``, ``image_feat``, ``fuse``, ``itm_logits`` ...) for the parts
the family has, and declaring those parts as ``capabilities``.  docs/models.md
is the user's page.  Nothing here is imported by ``simla-bench list``: the
recipes are registered lazily in :mod:`simla_bench.plugins.models`.
"""
