"""The plain record dataclasses every dataset source returns (see docs/architecture.md, "Data records").

Image fields are absolute :class:`pathlib.Path` objects.  Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class PairRecord:
    """One image-caption pair (pretraining corpus, retrieval train split)."""

    image: Path
    caption: str
    image_id: str


@dataclass
class RetrievalSplit:
    """An evaluation split for image-text retrieval (Karpathy test format).

    ``txt2img[t]`` is the index in ``images`` of text ``t``; ``img2txt[i]`` the
    indices in ``texts`` of image ``i``'s captions.
    """

    images: list[Path]
    texts: list[str]
    txt2img: list[int]
    img2txt: list[list[int]]


@dataclass(frozen=True)
class RefRecord:
    """One referring expression (one sentence of a RefCOCO+-style ref)."""

    ref_id: int
    image: Path
    image_id: int
    sentence: str
    box: Box
    proposals: list[Box]
    category: str
    image_size: tuple[int, int]
    #: the sentence's ``sent_id`` in the refs file (None when the source has none)
    sent_id: int | None = None


@dataclass(frozen=True)
class VQARecord:
    """One VQA v2 question with its 10 annotator answers."""

    question_id: int
    image: Path
    image_id: int
    question: str
    answers: list[str]
    multiple_choice_answer: str
    answer_type: str
    question_type: str


@dataclass
class VQASplit:
    """A VQA split plus the official files it came from (for the official evaluation)."""

    records: list[VQARecord]
    questions_file: Path
    annotations_file: Path


@dataclass(frozen=True)
class NLVR2Record:
    """One NLVR2 example: a statement about an image pair and its truth value."""

    identifier: str
    left: Path
    right: Path
    sentence: str
    label: bool


@dataclass
class LoadReport:
    """What a loader skipped (``skip_bad: true``); ``problems`` holds one line each."""

    source: str
    skipped: int = 0
    problems: list[str] = field(default_factory=list)
