"""NLVR2 accuracy and consistency with the official identifier rule."""

from __future__ import annotations

import pytest

from simla_bench.tasks.metrics.nlvr2 import nlvr2_scores, sentence_key


def test_sentence_key_blanks_the_pair_index():
    assert sentence_key("dev-850-0-1") == "dev-850--1"
    assert sentence_key("dev-850-3-1") == "dev-850--1"
    assert sentence_key("dev-850-0-0") != sentence_key("dev-850-0-1")
    assert sentence_key("test1-12-2-0") == "test1-12--0"
    with pytest.raises(ValueError):
        sentence_key("dev-850")


def test_one_wrong_pair_breaks_consistency():
    labels = {"dev-1-0-0": True, "dev-1-1-0": False, "dev-1-2-0": True,   # sentence dev-1--0
              "dev-2-0-1": False, "dev-2-1-1": True}                      # sentence dev-2--1
    preds = dict(labels)
    res = nlvr2_scores(preds, labels)
    assert res.accuracy == 100.0 and res.consistency == 100.0 and res.sentences == 2
    preds["dev-1-1-0"] = True  # one wrong pair
    res = nlvr2_scores(preds, labels)
    assert res.accuracy == 80.0 and res.accuracy_fraction == 0.8
    assert res.consistency == 50.0 and res.consistency_fraction == 0.5
    assert res.per_example["dev-1-1-0"] is False


def test_same_set_different_sentence_are_separate():
    labels = {"dev-7-0-0": True, "dev-7-0-1": True}
    res = nlvr2_scores({"dev-7-0-0": True, "dev-7-0-1": False}, labels)
    assert res.sentences == 2 and res.consistency == 50.0


def test_missing():
    labels = {"dev-1-0-0": True, "dev-1-1-0": True}
    with pytest.raises(KeyError):
        nlvr2_scores({"dev-1-0-0": True}, labels)
    res = nlvr2_scores({"dev-1-0-0": True}, labels, allow_missing=True)
    assert res.missing == 1 and res.accuracy == 50.0 and res.consistency == 0.0


def literal_official(pred_lines, label_rows):
    """The official script's loop on strings, written out plainly."""
    predictions = {}
    for line in pred_lines:
        splits = line.strip().split(",")
        predictions[splits[0]] = splits[1]
    num_correct, consistency = 0.0, {}
    for ex in label_rows:
        anon = ex["identifier"].split("-")
        anon[2] = ""
        anon = "-".join(anon)
        consistency.setdefault(anon, True)
        if predictions[ex["identifier"]].lower() == ex["label"].lower():
            num_correct += 1.0
        else:
            consistency[anon] = False
    n_cons = float(sum(1 for v in consistency.values() if v))
    return num_correct / len(label_rows), n_cons / len(consistency)


def test_equals_literal_official_script():
    import random

    rng = random.Random(0)
    rows = [{"identifier": f"dev-{s}-{p}-{k}", "label": rng.choice(["True", "False"])}
            for s in range(40) for k in range(2) for p in range(rng.randint(1, 4))]
    lines = [f"{r['identifier']},{rng.choice(['True', 'False', 'true', 'FALSE'])}" for r in rows]
    acc, cons = literal_official(lines, rows)
    preds = {ln.split(",")[0]: ln.split(",")[1].lower() == "true" for ln in lines}
    res = nlvr2_scores(preds, {r["identifier"]: r["label"] == "True" for r in rows})
    assert res.accuracy_fraction == acc and res.consistency_fraction == cons
    assert 0 < cons < acc < 1
