"""Sentences about scenes: captions, referring expressions, VQA questions with 10 annotator
answers, and NLVR2 statements.  Every generator returns the text and its meaning
(:mod:`.semantics`), and only emits sentences whose meaning holds in the scene."""

from __future__ import annotations

import numpy as np

from . import semantics as sem
from .vocab import (COLOUR_NAMES, COLOUR_WORDS, HELD_OUT, NUMBER_WORDS, RELATIONS, SHAPE_PLURALS, SHAPE_WORDS,
                    SHAPES, SIZE_WORDS)


def pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def phrase(desc: dict, rng: np.random.Generator, plural: bool = False, synonyms: bool = True) -> str:
    words = []
    if "size" in desc:
        words.append(pick(rng, SIZE_WORDS[desc["size"]]) if synonyms else desc["size"])
    if "colour" in desc:
        words.append(pick(rng, COLOUR_WORDS[desc["colour"]]) if synonyms else desc["colour"])
    if "shape" in desc:
        if plural:
            words.append(SHAPE_PLURALS[desc["shape"]])
        else:
            words.append(pick(rng, SHAPE_WORDS[desc["shape"]]) if synonyms else desc["shape"])
    else:
        words.append(("objects" if plural else "object") if rng.random() < 0.6 else ("shapes" if plural else "shape"))
    return " ".join(words)


def describe(obj, rng: np.random.Generator, p_colour: float = 0.85, p_size: float = 0.4) -> dict:
    d = {"shape": obj.shape}
    if rng.random() < p_colour:
        d["colour"] = obj.colour
    if rng.random() < p_size:
        d["size"] = obj.size
    return d


def full(obj) -> dict:
    return {"colour": obj.colour, "shape": obj.shape}


# ---------------------------------------------------------------------------------- captions
def caption_exists(descs: list[dict], rng) -> str:
    nps = [article(phrase(d, rng)) for d in descs]
    body = nps[0] if len(nps) == 1 else " and ".join(nps)
    return pick(rng, ("{}", "there is {}", "a picture of {}", "an image with {}", "{} in the scene")).format(body) \
        if len(nps) == 1 else pick(rng, ("{}", "there is {}", "an image showing {}")).format(body)


def caption_rel(a: dict, rel: str, b: dict, rng) -> str:
    words = pick(rng, RELATIONS[rel])
    t = pick(rng, ("{a} {r} {b}", "{a} is {r} {b}", "there is {a} {r} {b}"))
    return t.format(a=article(phrase(a, rng)), r=words, b=article(phrase(b, rng)))


def caption_count(desc: dict, n: int, rng) -> str:
    if n == 1:
        return pick(rng, ("one {}", "there is one {}", "exactly one {}")).format(phrase(desc, rng))
    return pick(rng, ("{} {}", "there are {} {}", "exactly {} {}")).format(NUMBER_WORDS[n], phrase(desc, rng, plural=True))


def clear_relations(scene, a, b) -> list[str]:
    return [r for r in RELATIONS if sem.relation(a, b, r, scene.size) is True]


def random_caption(scene, rng, focus=None) -> tuple[str, dict]:
    """One true caption mentioning some of the objects (``focus`` must be mentioned when given,
    with its colour and shape)."""
    objs = scene.objects
    for _ in range(30):
        kind = pick(rng, ("exists", "exists", "pair", "rel", "rel", "rel", "count"))
        a = focus if focus is not None else pick(rng, objs)
        da = full(a) | ({"size": a.size} if rng.random() < 0.4 else {}) if focus is not None else describe(a, rng)
        others = [o for o in objs if o is not a]
        if kind == "exists":
            meaning = {"kind": "exists", "objs": [da]}
            text = caption_exists([da], rng)
        elif kind == "pair" and others:
            b = pick(rng, others)
            db = describe(b, rng)
            meaning = {"kind": "exists", "objs": [da, db]}
            text = caption_exists([da, db], rng)
        elif kind == "rel" and others:
            b = pick(rng, others)
            rels = clear_relations(scene, a, b)
            if not rels:
                continue
            rel = pick(rng, rels)
            db = describe(b, rng)
            meaning = {"kind": "rel", "a": da, "rel": rel, "b": db}
            text = caption_rel(da, rel, db, rng)
        elif kind == "count":
            d = dict(da)
            d.pop("size", None)
            if focus is None and rng.random() < 0.3:
                d = {"colour": a.colour}
            n = sem.count(objs, d)
            meaning = {"kind": "count", "obj": d, "n": n}
            text = caption_count(d, n, rng)
        else:
            continue
        if sem.holds(meaning, objs, scene.size) and not sem.says_everything(meaning, objs):
            return text, meaning
    d = full(focus if focus is not None else objs[0])
    return caption_exists([d], rng), {"kind": "exists", "objs": [d]}


def binding_caption(scene, a, b, rng) -> tuple[str, dict]:
    """A caption fixing the colour-shape binding (and maybe the relation) of objects a and b."""
    da, db = full(a), full(b)
    rels = clear_relations(scene, a, b)
    if rels and rng.random() < 0.5:
        rel = pick(rng, rels)
        return caption_rel(da, rel, db, rng), {"kind": "rel", "a": da, "rel": rel, "b": db}
    return caption_exists([da, db], rng), {"kind": "exists", "objs": [da, db]}


def relation_caption(scene, a, b, rng, name_a: bool = False) -> tuple[str, dict] | None:
    """A left/right caption about a and b (``name_a``: always give a's colour and shape)."""
    rels = [r for r in clear_relations(scene, a, b) if r in ("left", "right")]
    if not rels:
        return None
    da = full(a) if name_a or rng.random() < 0.5 else {"shape": a.shape}
    db = full(b) if rng.random() < 0.5 else {"shape": b.shape}
    return caption_rel(da, rels[0], db, rng), {"kind": "rel", "a": da, "rel": rels[0], "b": db}


# ------------------------------------------------------------------------------- grounding
def unique_descriptors(objs, target) -> list[dict]:
    """Appearance-only descriptors that single ``target`` out (most concise first)."""
    out = []
    for keys in (("shape",), ("colour", "shape"), ("size", "shape"), ("size", "colour", "shape"), ("colour",),
                 ("size", "colour")):
        d = {k: getattr(target, k) for k in keys}
        if sem.unique(objs, d) is target:
            out.append(d)
    return out


def referring_expression(desc: dict, rng) -> str:
    p = phrase(desc, rng)
    if "colour" in desc and "shape" in desc and rng.random() < 0.25:
        rest = {k: v for k, v in desc.items() if k != "colour"}
        return f"the {phrase(rest, rng)} that is {pick(rng, COLOUR_WORDS[desc['colour']])}"
    return pick(rng, ("the {}", "{}", "the {}", "the one {}" if "shape" not in desc else "the {}")).format(p)


# ------------------------------------------------------------------------------------- VQA
VARIANTS = {"yes": ("yes", "yes", "Yes", "yeah"), "no": ("no", "no", "No", "nope")}
VARIANTS |= {str(i): (NUMBER_WORDS[i],) for i in range(11)}
VARIANTS |= {"purple": ("violet",), "cyan": ("turquoise", "light blue"), "orange": ("orange color",),
             "white": ("white color",), "circle": ("ball", "round"), "square": ("box",), "diamond": ("rhombus",),
             "cross": ("plus", "plus sign"), "large": ("big",), "small": ("little", "tiny")}


def annotator_answers(answer: str, wrong_pool: list[str], rng) -> list[str]:
    """10 answers: mostly the canonical one, some synonyms / '2' vs 'two', occasionally wrong.
    The canonical answer is always the strict majority (>= 4 and more than any other)."""
    wrong = [w for w in wrong_pool if w != answer]
    while True:
        out = []
        for _ in range(10):
            u = rng.random()
            if u < 0.76:
                out.append(answer)
            elif u < 0.93:
                out.append(pick(rng, VARIANTS[answer]) if answer in VARIANTS else answer)
            else:
                out.append(pick(rng, wrong) if wrong else answer)
        top = out.count(answer)
        if top >= 4 and all(out.count(a) < top for a in set(out) if a != answer):
            return out


def vqa_question(scene, kind: str, rng, focus=None, allow_held_out=False):
    """(question, answer, answer_type, question_type, wrong_pool) or None when the scene does
    not support a question of this kind."""
    objs = scene.objects
    if kind == "yes/no":
        form = pick(rng, ("exists", "exists", "rel") if focus is not None else ("exists", "exists", "rel", "any"))
        if form == "rel":
            a = focus if focus is not None else pick(rng, objs)
            others = [o for o in objs if o is not a]
            if not others:
                return None
            b = pick(rng, others)
            da, db = unique_descriptors(objs, a), unique_descriptors(objs, b)
            da = [d for d in da if "shape" in d]
            db = [d for d in db if "shape" in d]
            if not da or not db:
                return None
            rel = pick(rng, tuple(RELATIONS))
            truth = sem.relation(a, b, rel, scene.size)
            if truth is None:
                return None
            q = f"is the {phrase(da[0], rng, synonyms=False)} {RELATIONS[rel][0]} the {phrase(db[0], rng, synonyms=False)}?"
            return q, "yes" if truth else "no", "yes/no", "is the", ["yes", "no"]
        if form == "any":
            shape = focus.shape if focus is not None else pick(rng, SHAPES)
            ans = "yes" if sem.count(objs, {"shape": shape}) else "no"
            return f"are there any {SHAPE_PLURALS[shape]}?", ans, "yes/no", "are there any", ["yes", "no"]
        absent_held = sorted(h for h in HELD_OUT if not sem.count(objs, {"colour": h[0], "shape": h[1]}))
        if focus is not None and absent_held and rng.random() < 0.5:  # a held-out pair that is not there
            c, s = pick(rng, absent_held)
        elif focus is not None or rng.random() < 0.5:
            o = focus if focus is not None else pick(rng, objs)
            c, s = o.colour, o.shape
        else:
            for _ in range(50):
                c, s = pick(rng, COLOUR_NAMES), pick(rng, SHAPES)
                if (c, s) not in HELD_OUT or allow_held_out:
                    break
        ans = "yes" if sem.count(objs, {"colour": c, "shape": s}) else "no"
        return f"is there {article(c + ' ' + s)}?", ans, "yes/no", "is there a", ["yes", "no"]
    if kind == "number":
        if focus is not None:
            d = {"colour": focus.colour, "shape": focus.shape}
        elif rng.random() < 0.1:  # something that may well be absent: answers 0 occur too
            d = {"shape": pick(rng, SHAPES)}
        else:
            cands = [{}] + [{"shape": o.shape} for o in objs] + [{"colour": o.colour} for o in objs] \
                + [{"colour": o.colour, "shape": o.shape} for o in objs]
            multi = [c for c in cands if sem.count(objs, c) >= 2]
            d = pick(rng, multi) if multi and rng.random() < 0.6 else pick(rng, cands)
        n = sem.count(objs, d)
        noun = phrase(d, rng, plural=True, synonyms=False) if d else "objects"
        q = f"how many {noun} are there?" if rng.random() < 0.7 else f"how many {noun} are in the picture?"
        return q, str(n), "number", "how many", [str(k) for k in range(0, 7)]
    # other
    form = pick(rng, ("colour", "shape", "size"))
    candidates = [focus] if focus is not None else list(objs)
    rng.shuffle(candidates)
    for o in candidates:
        if form == "colour" and sem.unique(objs, {"shape": o.shape}) is o:
            return (f"what color is the {o.shape}?", o.colour, "other", "what color is the", list(COLOUR_NAMES))
        if form == "shape" and sem.unique(objs, {"colour": o.colour}) is o:
            return (f"what shape is the {o.colour} object?", o.shape, "other", "what shape is the", list(SHAPES))
        if form == "size" and sem.unique(objs, {"colour": o.colour, "shape": o.shape}) is o:
            return (f"what size is the {o.colour} {o.shape}?", o.size, "other", "what size is the", ["small", "large"])
    return None


# ----------------------------------------------------------------------------------- NLVR2
def thing_phrase(thing: dict, plural: bool) -> str:
    words = []
    if "colour" in thing:
        words.append(thing["colour"])
    if "shape" in thing:
        words.append(SHAPE_PLURALS[thing["shape"]] if plural else thing["shape"])
    else:
        words.append("objects" if plural else "object")
    return " ".join(words)


NLVR2_FORMS = ("left_exact", "right_exact", "both", "exactly_one", "more", "total", "left_atleast")


def nlvr2_truth(spec: dict, L: int, R: int) -> bool:
    """Whether a statement with meaning ``spec`` holds when the left/right images hold L/R things."""
    form, n = spec["form"], spec.get("n", 0)
    return {
        "left_exact": L == n, "right_exact": R == n, "both": L >= 1 and R >= 1,
        "exactly_one": (L >= 1) != (R >= 1), "more": L > R, "total": L + R == n, "left_atleast": L >= 2,
    }[form]


def nlvr2_statement(thing: dict, rng) -> tuple[str, dict]:
    """A statement about counts of ``thing`` in the left/right image, and its meaning
    ``{"form", "n", "thing"}`` (see :func:`nlvr2_truth`)."""
    one, many = thing_phrase(thing, False), thing_phrase(thing, True)
    form = pick(rng, NLVR2_FORMS)
    n = int(rng.integers(2, 5)) if form == "total" else int(rng.integers(1, 4))
    noun = one if n == 1 else many
    text = {
        "left_exact": f"The left image contains exactly {NUMBER_WORDS[n]} {noun}.",
        "right_exact": f"There {'is' if n == 1 else 'are'} exactly {NUMBER_WORDS[n]} {noun} in the right image.",
        "both": f"Both images contain at least one {one}.",
        "exactly_one": f"Exactly one image contains {article(one)}.",
        "more": f"There are more {many} in the left image than in the right image.",
        "total": f"There are {NUMBER_WORDS[n]} {many} in total.",
        "left_atleast": f"The left image contains at least two {many}.",
    }[form]
    return text, {"form": form, "n": n, "thing": dict(thing)}
