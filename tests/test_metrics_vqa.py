"""VQA accuracy: hand-computed cases with known answers, official quirks, and a
check against an independent, literal transcription of the official steps."""

from __future__ import annotations

import random
import re

import pytest

from simla_bench.tasks.metrics.vqa import (
    normalize_prediction,
    process_punctuation,
    question_accuracy,
    vqa_accuracy,
)
from simla_bench.tasks.metrics.vqa_tables import CONTRACTIONS


# ---------------------------------------------------------------- normalisation
@pytest.mark.parametrize("raw, expected", [
    ("Two", "2"),
    ("two", "2"),
    ("none", "0"),
    ("ten", "10"),
    ("eleven", "eleven"),
    ("the dog", "dog"),
    ("A Dog", "dog"),
    ("an apple", "apple"),
    ("yes.", "yes"),
    ("yes!", "yes"),
    ("Yes?", "yes"),
    ("3.5", "3.5"),          # a period before a digit stays
    ("mr. smith", "mr smith"),
    ("1,000", "1000"),       # digit-comma-digit: every mark is deleted
    ("10,000 cats!", "10000 cats"),
    ("red, white", "red white"),
    ("t-shirt", "t shirt"),  # mark without a space next to it -> space
    ("black / white", "black white"),
    ("dont", "don't"),
    ("isnt", "isn't"),
    ("Im", "im"),            # the table's capitalised keys can never match
    ("somebody'd", "somebodyd"),
    ("  \tyes\n", "yes"),
    ("don't", "don't"),      # apostrophe is not punctuation
    ("a:b", "a:b"),          # nor is the colon
    ("rock & roll", "rock & roll"),
])
def test_normalize_prediction(raw, expected):
    assert normalize_prediction(raw) == expected


def test_punctuation_rule_uses_the_original_string():
    # "- " occurs in the original, so '-' is deleted (not spaced) everywhere
    assert process_punctuation("t-shirt - blue") == "tshirt  blue"
    # digit,digit anywhere deletes all marks, even ones far from the digits
    assert process_punctuation("a/b 1,2") == "ab 12"
    assert process_punctuation("a/b") == "a b"


def test_period_removal_is_capped_at_32():
    text = "." * 40
    assert process_punctuation(text) == "." * 8


def test_contraction_table_size():
    assert len(CONTRACTIONS) == 120
    assert CONTRACTIONS["cant"] == "can't"


# ---------------------------------------------------------------- one question
def test_all_identical_ground_truth_is_compared_raw():
    assert question_accuracy("2", ["2"] * 10) == 1.0
    assert question_accuracy("Two", ["2"] * 10) == 1.0
    # identical answers are NOT normalised: "Two" in the GT never matches "2"
    assert question_accuracy("Two", ["Two"] * 10) == 0.0
    assert question_accuracy("the dog", ["dog"] * 10) == 1.0
    assert question_accuracy("yes.", ["yes"] * 10) == 1.0


def test_mixed_ground_truth_gets_punctuation_only():
    # not identical -> punctuation only, no lower-casing: "Yes" stays "Yes"
    # drop a "Yes" (9x): 1 match -> 1/3; drop the "yes": 0 -> mean 0.3
    assert question_accuracy("yes", ["Yes"] * 9 + ["yes"]) == pytest.approx(0.3)
    # "t-shirt" becomes "t shirt" on both sides
    assert question_accuracy("t-shirt", ["t-shirt"] * 5 + ["shirt"] * 5) == 1.0
    # but identical "t-shirt" answers stay raw and never match
    assert question_accuracy("t-shirt", ["t-shirt"] * 10) == 0.0


@pytest.mark.parametrize("n_match, expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_leave_one_out_counts_duplicates_separately(n_match, expected):
    answers = ["red"] * n_match + ["blue"] * (10 - n_match)
    # n matches: dropping a match leaves n-1, dropping another leaves n
    hand = (n_match * min(1, (n_match - 1) / 3) + (10 - n_match) * min(1, n_match / 3)) / 10
    assert hand == pytest.approx(expected)
    assert question_accuracy("red", answers) == pytest.approx(expected)


# ---------------------------------------------------------------- aggregation
def _ann(qid, answers, atype="other", qtype="what is"):
    return {"question_id": qid, "answers": answers, "answer_type": atype, "question_type": qtype}


def test_overall_per_type_and_rounding():
    anns = [
        _ann(1, ["yes"] * 10, "yes/no", "is the"),
        _ann(2, ["no"] * 10, "yes/no", "is the"),
        _ann(3, ["2"] * 10, "number", "how many"),
        _ann(4, ["red"] * 2 + ["blue"] * 8, "other", "what color"),
    ]
    preds = {1: "Yes", 2: "yes", 3: "two", 4: "red"}
    res = vqa_accuracy(preds, anns)
    # accuracies 1, 0, 1, 0.6 -> mean 0.65
    assert res.overall == 65.0
    assert res.per_answer_type == {"yes/no": 50.0, "number": 100.0, "other": 60.0}
    assert res.per_question_type == {"is the": 50.0, "how many": 100.0, "what color": 60.0}
    assert res.per_question == {1: 100.0, 2: 0.0, 3: 100.0, 4: 60.0}
    # official answer dicts are accepted too
    res2 = vqa_accuracy(preds, [dict(a, answers=[{"answer": x, "answer_id": i + 1} for i, x in enumerate(a["answers"])])
                                for a in anns])
    assert res2.overall == res.overall


def test_rounding_two_decimals():
    anns = [_ann(i, ["yes"] * 10) for i in range(3)]
    res = vqa_accuracy({0: "yes", 1: "no", 2: "no"}, anns)
    assert res.overall == 33.33
    res = vqa_accuracy({0: "red"}, [_ann(0, ["red"] + ["x"] * 9)])  # acc 0.3
    assert res.overall == 30.0 and res.per_question[0] == 30.0
    # 1/3 of a question: ["red"]*1 with 9 blue -> 0.3 ; 2 questions (0.3, 0) -> 15.0
    res = vqa_accuracy({0: "red", 1: "no"}, [_ann(0, ["red"] + ["x"] * 9), _ann(1, ["yes"] * 10)])
    assert res.overall == 15.0


def test_missing_prediction():
    anns = [_ann(1, ["yes"] * 10), _ann(2, ["yes"] * 10)]
    with pytest.raises(KeyError):
        vqa_accuracy({1: "yes"}, anns)
    res = vqa_accuracy({1: "yes"}, anns, allow_missing=True)
    assert res.overall == 50.0 and res.missing == 1


# ---------------------------------------------------------------- independent transcription
class LiteralOfficial:
    """The official evaluator's steps, written out one by one, as plainly as possible."""

    marks = [';', '/', '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\', '_', '-', '>', '<', '@', '`', ',', '?', '!']
    numbers = {'none': '0', 'zero': '0', 'one': '1', 'two': '2', 'three': '3', 'four': '4', 'five': '5',
               'six': '6', 'seven': '7', 'eight': '8', 'nine': '9', 'ten': '10'}

    def punct(self, s):
        out = s
        for p in self.marks:
            if (p + ' ' in s) or (' ' + p in s) or (re.search(r'(\d)(,)(\d)', s) is not None):
                out = out.replace(p, '')
            else:
                out = out.replace(p, ' ')
        return re.sub(r'(?!<=\d)(\.)(?!\d)', '', out, 32)

    def digits(self, s):
        words = []
        for w in s.lower().split():
            if w in self.numbers:
                w = self.numbers[w]
            if w in ('a', 'an', 'the'):
                continue
            words.append(w)
        for i in range(len(words)):
            if words[i] in CONTRACTIONS:
                words[i] = CONTRACTIONS[words[i]]
        return ' '.join(words)

    def accuracy(self, pred, answers):
        pred = pred.replace('\n', ' ').replace('\t', ' ').strip()
        pred = self.digits(self.punct(pred))
        gts = [{'answer': a, 'answer_id': i} for i, a in enumerate(answers)]
        if len(set(answers)) > 1:
            for g in gts:
                g['answer'] = self.punct(g['answer'])
        scores = []
        for g in gts:
            others = [o for o in gts if o != g]
            matching = [o for o in others if o['answer'] == pred]
            scores.append(min(1, float(len(matching)) / 3))
        return float(sum(scores)) / len(scores)


TRICKY = ["Two", "two", "2", "the dog", "dog", "Dog", "yes.", "yes", "Yes", "no!", "1,000", "1000", "1.000",
          "t-shirt", "t shirt", "tshirt", "dont", "don't", "isnt", "none", "0", "a", "the", "an apple", "apple",
          "black/white", "black and white", "3.5", "3.5.", "mr. smith", "(yes)", "yes - no", "10,000 cats!",
          "oclock", "o'clock", "ten", "10", "Im", "let's", "yall", "  red  ", "red\n", "?", "", "..", "a.b",
          "x,y", "1,a", "2, 3", "up;down", "<b>", "@home", "`x`", "a_b", "a+b=c", "{}", "[1]", "back\\slash"]


def test_matches_literal_transcription_on_tricky_answers():
    ref = LiteralOfficial()
    rng = random.Random(0)
    cases = [(p, [g] * 10) for p in TRICKY for g in TRICKY[:12]]
    for _ in range(3000):
        pool = rng.sample(TRICKY, rng.randint(1, 4))
        cases.append((rng.choice(TRICKY), [rng.choice(pool) for _ in range(10)]))
    for pred, answers in cases:
        assert question_accuracy(pred, answers) == ref.accuracy(pred, answers), (pred, answers)
    for s in TRICKY:
        assert process_punctuation(s) == ref.punct(s)
        assert normalize_prediction(s) == ref.digits(ref.punct(s.replace('\n', ' ').replace('\t', ' ').strip()))


def test_overall_equals_literal_aggregation():
    ref = LiteralOfficial()
    rng = random.Random(1)
    anns, preds = [], {}
    for qid in range(400):
        pool = rng.sample(TRICKY, rng.randint(1, 3))
        anns.append(_ann(qid, [rng.choice(pool) for _ in range(10)], rng.choice(["yes/no", "number", "other"]),
                         rng.choice(["what", "how many", "is the"])))
        preds[qid] = rng.choice(pool + ["zzz"])
    res = vqa_accuracy(preds, anns)
    accs = [ref.accuracy(preds[a["question_id"]], a["answers"]) for a in anns]
    assert res.overall == round(100 * float(sum(accs)) / len(accs), 2)
    for atype in ("yes/no", "number", "other"):
        sub = [acc for acc, a in zip(accs, anns) if a["answer_type"] == atype]
        assert res.per_answer_type[atype] == round(100 * float(sum(sub)) / len(sub), 2)
