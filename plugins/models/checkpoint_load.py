"""Loading a full model checkpoint (simla-bench's own, ALBEF's, SIMLA's) into a :class:`VLPModel`.

Public API (docs/model.md, "Loading a full checkpoint"):

* :func:`read_checkpoint` reads a file safely (``torch.load(weights_only=True)``
  or safetensors) into one flat state dict; every failure is a one-line
  :class:`~simla_bench.errors.UserError`.
* :func:`detect_format` names the key layout: ``simla_bench``,
  ``albef_pretrain``, ``albef_retrieval``, ``albef_grounding`` (same keys as
  retrieval; only given explicitly), ``albef_vqa``, ``albef_nlvr``, ``simla``.
* :func:`load_checkpoint` maps the keys onto the model (online modules, the
  momentum copy from ``*_m`` keys, ``temp``, NLVR twin layers, resized
  position embeddings, SIMLA's missing token types, the MIM head size), checks
  the result and returns a :class:`LoadReport`; what the model has no place
  for (ITC queues, the VQA answer decoder, ALBEF's NLVR classifier) goes to
  ``report.extras``.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from simla_bench.errors import UserError
from simla_bench.heads import mark_trained
from simla_bench.training.checkpoint import torch_load_plain

FORMATS = ("simla_bench", "albef_pretrain", "albef_retrieval", "albef_grounding", "albef_vqa", "albef_nlvr", "simla")
_STRICT_HINT = "strict: false to load anyway"

#: model parameters an official checkpoint of each format has no weights for
#: (kept at the model's initialisation and listed in the report)
_SIMLA_ONLY = ("visual_encoder.mask_token", "concept_head.", "mim_head.")
_HEADLESS = ("vision_proj.", "text_proj.", "itm_head.", "temp", "mlm_head.")
_FORMAT_ABSENT = {
    "simla_bench": (),
    "albef_pretrain": _SIMLA_ONLY,
    "albef_retrieval": _SIMLA_ONLY + ("mlm_head.",),
    "albef_grounding": _SIMLA_ONLY + ("mlm_head.",),
    "albef_vqa": _SIMLA_ONLY + _HEADLESS,
    "albef_nlvr": _SIMLA_ONLY + _HEADLESS,
    "simla": (),
}
#: keys of a flat checkpoint state that are not tensors of the model
_NON_TENSOR_KEYS = ("objectives", "trained_heads")
#: momentum modules no official checkpoint has (ALBEF/SIMLA have no itm_head_m); copied from the online model
_MOMENTUM_ABSENT = ("itm_head.", "mlm_head.", "temp")


@dataclass
class LoadReport:
    """What :func:`load_checkpoint` did.

    ``matched``: model tensors filled (online + momentum); ``unused``:
    checkpoint keys nothing used; ``unfilled``: model parameters the
    checkpoint should have filled and did not (``momentum.`` prefix for the
    momentum copy); ``absent``: parameters this format never has (kept at
    initialisation, or for the momentum copy, copied from the online model);
    ``notes``: conversions applied; ``extras``: state the model does not hold
    (``itc`` = what ``ITC.load_state_dict`` takes, ``answer_decoder`` /
    ``answer_decoder_m``, ``nlvr_head`` / ``nlvr_head_m``, ``objectives``)."""

    format: str
    matched: int = 0
    unused: list[str] = field(default_factory=list)
    unfilled: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    #: heads (``*_head`` modules) the checkpoint filled with trained weights, recorded in
    #: ``model.trained_heads`` (:mod:`simla_bench.heads`)
    trained_heads: list[str] = field(default_factory=list)

    def summary(self, max_names: int = 8) -> str:
        """A one-screen text report: counts, then up to ``max_names`` names per list."""

        def names(items: list[str]) -> str:
            shown = ", ".join(items[:max_names])
            more = f" (+{len(items) - max_names} more)" if len(items) > max_names else ""
            return shown + more

        lines = [f"checkpoint{' ' + self.source if self.source else ''}: format {self.format}, "
                 f"{self.matched} tensors loaded, {len(self.unused)} checkpoint keys unused, "
                 f"{len(self.unfilled)} model parameters unfilled, {len(self.absent)} not in this format"]
        if self.unused:
            lines.append(f"  unused: {names(self.unused)}")
        if self.unfilled:
            lines.append(f"  unfilled: {names(self.unfilled)}")
        if self.absent:
            lines.append(f"  not in this format (kept / copied from online): {names(self.absent)}")
        for note in self.notes:
            lines.append(f"  note: {note}")
        if self.extras:
            lines.append(f"  extras: {', '.join(sorted(self.extras))}")
        return "\n".join(lines)


# ------------------------------------------------------------------------- reading
def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split("\n")[0].split())
    return (text[:160] + "...") if len(text) > 160 else text


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A flat state dict from a checkpoint file, read without running code.

    ``.safetensors`` through safetensors, anything else through
    ``torch.load(weights_only=True)``.  ``{'model': ...}`` / ``{'state_dict':
    ...}`` wrappers and ``module.`` prefixes are removed.  A simla-bench
    trainer checkpoint (``model`` + ``momentum`` + ``objectives``) becomes the
    model's keys, the momentum copy's keys under ``momentum.``, and the
    objective states under the key ``objectives`` (a dict)."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"checkpoint '{p}' does not exist", hint="give the path of a .pth/.pt/.bin/.safetensors file")
    if p.is_dir():
        raise UserError(f"checkpoint '{p}' is a directory", hint="give the checkpoint file itself")
    if p.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file

            return _unwrap(dict(load_file(str(p))), p)
        except Exception as exc:  # noqa: BLE001
            raise UserError(f"checkpoint '{p}' is not a readable safetensors file ({_first_line(exc)})",
                            hint="re-save it with safetensors.torch.save_file") from None
    try:
        obj = torch_load_plain(p)  # weights_only: nothing in the file runs
    except Exception as exc:  # noqa: BLE001
        raise _read_error(p, exc) from None
    return _unwrap(obj, p)


def _read_error(p: Path, exc: BaseException) -> UserError:
    text = str(exc)
    unsafe = (re.search(r"unsupported (?:global:? )?GLOBAL ([\w.]+)", text, re.IGNORECASE)
              or re.search(r"Unsupported operand (\d+)", text))
    if "Weights only load failed" in text:
        what = unsafe.group(1) if unsafe else "an object outside tensors and plain containers"
        return UserError(f"checkpoint '{p}' holds pickled code or objects ({what}) that a safe load refuses to run",
                         hint="re-save only tensors: torch.save({'model': model.state_dict()}) or safetensors")
    if zipfile.is_zipfile(p) or "zip archive" in text or "central directory" in text:
        return UserError(f"checkpoint '{p}' is truncated or corrupt ({_first_line(exc)})",
                         hint="copy or download the file again")
    size = p.stat().st_size
    return UserError(f"checkpoint '{p}' ({size} bytes) is not a PyTorch or safetensors checkpoint "
                     f"({type(exc).__name__}: {_first_line(exc)})",
                     hint="give a file written by torch.save or safetensors (is the download complete?)")


def _unwrap(obj: Any, p: Path | None = None) -> dict[str, Any]:
    where = f"checkpoint '{p}'" if p is not None else "the checkpoint"
    if not isinstance(obj, Mapping):
        raise UserError(f"{where} holds a {type(obj).__name__}, not a state dict",
                        hint="save a dict of tensors (model.state_dict())")
    if isinstance(obj.get("model"), Mapping) and ("momentum" in obj or "objectives" in obj):
        flat: dict[str, Any] = dict(obj["model"])  # simla-bench trainer checkpoint
        if isinstance(obj.get("momentum"), Mapping):
            flat.update({f"momentum.{k}": v for k, v in obj["momentum"].items()})
        if isinstance(obj.get("objectives"), Mapping):
            flat["objectives"] = dict(obj["objectives"])
        if isinstance(obj.get("trained_heads"), (list, tuple)):
            flat["trained_heads"] = [str(h) for h in obj["trained_heads"]]
        return _strip_module(flat)
    for key in ("model", "state_dict", "module"):
        if isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    state = _strip_module(dict(obj))
    if not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{where} holds no tensors (keys: {', '.join(list(map(str, state))[:6])})",
                        hint="give a model checkpoint (a state dict, or a dict wrapping 'model')")
    return state


def _strip_module(state: dict[str, Any]) -> dict[str, Any]:
    if state and all(str(k).startswith("module.") or k in _NON_TENSOR_KEYS for k in state):
        return {(k[len("module."):] if k not in _NON_TENSOR_KEYS else k): v for k, v in state.items()}
    return state


# ------------------------------------------------------------------------ detecting
_LAYER = re.compile(r"^(text_encoder(?:_m)?\.(?:bert\.)?encoder\.layer\.)(\d+)\.(.*)$")


def _bert_layers(state: Mapping[str, Any], prefix: str = "text_encoder.") -> tuple[int, int | None]:
    """(number of BERT layers, first layer with cross-attention) under ``prefix``."""
    n, first_cross = 0, None
    for key in state:
        m = _LAYER.match(key)
        if not m or not m.group(1).startswith(prefix):
            continue
        i = int(m.group(2))
        n = max(n, i + 1)
        if m.group(3).startswith("crossattention.") and (first_cross is None or i < first_cross):
            first_cross = i
    return n, first_cross


def _layer_prefix(state: Mapping[str, Any]) -> str:
    return "text_encoder.bert." if any(k.startswith("text_encoder.bert.") for k in state) else "text_encoder."


def _nlvr_shared(state: Mapping[str, Any]) -> bool:
    """ALBEF's NLVR BERT: after the text layers, pairs of layers share cross-attention key/value."""
    n, first = _bert_layers(state)
    if first is None or (n - first) < 2 or (n - first) % 2:
        return False
    pre = _layer_prefix(state) + "encoder.layer."
    for j in range((n - first) // 2):
        a, b = first + 2 * j, first + 2 * j + 1
        for part in ("key.weight", "value.weight"):
            ka, kb = f"{pre}{a}.crossattention.self.{part}", f"{pre}{b}.crossattention.self.{part}"
            if ka not in state or kb not in state or not torch.equal(state[ka], state[kb]):
                return False
    return True


def detect_format(state: Mapping[str, Any]) -> str:
    """The key layout of a flat state dict (see the module docstring)."""
    keys = [k for k in state if isinstance(k, str)]
    has = lambda prefix: any(k.startswith(prefix) for k in keys)  # noqa: E731
    if has("visual_encoder.vit.") or has("text_encoder.embeddings.") and has("mlm_head."):
        return "simla_bench"
    if has("text_decoder."):
        return "albef_vqa"
    simla_marks = has("visual_encoder.mask_token") or has("mim_head.") or has("concept_head.")
    no_token_type = has("text_encoder.") and not any("token_type_embeddings" in k for k in keys
                                                     if k.startswith("text_encoder"))
    if has("text_encoder.") and (simla_marks or no_token_type):
        return "simla"
    if has("cls_head.") or (has("text_encoder.") and not has("text_encoder.bert.") and _nlvr_shared(state)):
        return "albef_nlvr"
    if has("text_encoder.bert.") and has("visual_encoder."):
        return "albef_pretrain"
    if has("text_encoder.embeddings.") and has("visual_encoder.") and ("idx_queue" in state or has("itm_head.")):
        return "albef_retrieval"
    tops = sorted({k.split(".")[0] for k in keys})
    raise UserError(f"unknown checkpoint layout: top-level keys {', '.join(tops[:12]) or '(none)'}"
                    f"{' ...' if len(tops) > 12 else ''}",
                    hint=f"give format: one of {', '.join(FORMATS)}")


# ------------------------------------------------------------------------- mapping
def _split_owner(key: str) -> tuple[bool, str]:
    """(is_momentum, key without the ``_m`` module suffix)."""
    head, _, rest = key.partition(".")
    if head.endswith("_m") and head not in ("temp",):
        return True, f"{head[:-2]}.{rest}" if rest else head[:-2]
    return False, key


def _map_official_key(key: str, fmt: str, nlvr: tuple[int, int] | None) -> tuple[str, str | None]:
    """Map one ALBEF/SIMLA key (without the ``_m`` suffix) to
    ``(kind, simla-bench key)``; kind is ``model``, ``drop`` (a buffer or
    alias), ``extra`` or ``unknown``."""
    if key.startswith("visual_encoder."):
        rest = key[len("visual_encoder."):]
        return "model", ("visual_encoder.mask_token" if rest == "mask_token" else f"visual_encoder.vit.{rest}")
    if key.startswith("text_encoder."):
        rest = key[len("text_encoder."):]
        if rest.startswith("cls.predictions."):
            sub = rest[len("cls.predictions."):]
            if sub.startswith("decoder."):
                return "drop", None  # tied to the word embeddings / alias of the bias
            return "model", f"mlm_head.{sub}"
        if rest.startswith("bert."):
            rest = rest[len("bert."):]
        if rest.endswith("embeddings.position_ids"):
            return "drop", None
        if rest.startswith("pooler."):
            return "unknown", None
        m = re.match(r"^encoder\.layer\.(\d+)\.(.*)$", rest)
        if m and nlvr is not None:
            i, tail = int(m.group(1)), m.group(2)
            first, _ = nlvr
            if i >= first:
                j, odd = divmod(i - first, 2)
                twin = ".twin" if odd else ""
                return "model", f"text_encoder.encoder.layer.{first + j}{twin}.{tail}"
        return "model", f"text_encoder.{rest}"
    head = key.split(".")[0]
    if head in ("vision_proj", "text_proj", "itm_head", "concept_head", "mim_head", "temp"):
        return "model", key
    if head in ("image_queue", "text_queue", "queue_ptr", "idx_queue", "text_decoder", "cls_head"):
        return "extra", None
    return "unknown", None


def _hint_for(key: str, shape: tuple[int, ...]) -> str:
    if key.endswith("word_embeddings.weight") or key.startswith(("mlm_head.bias", "concept_head.")):
        return f"use the checkpoint's tokenizer ({shape[0]} tokens): model.tokenizer"
    if "position_embeddings" in key:
        return f"set the model.options.text config max_position_embeddings: {shape[0]}"
    if key.startswith("text_encoder.") or key.startswith("mlm_head."):
        return "set the model.options.text config (hidden_size, intermediate_size, num_attention_heads) to the checkpoint's"
    if key.startswith("visual_encoder."):
        return "set the model.options.image options (embed_dim, depth, patch_size, mlp_ratio) to the checkpoint's"
    if key.startswith(("vision_proj", "text_proj")):
        return f"set model.options.embed_dim: {shape[0]}"
    return "build the model with the checkpoint's configuration"


def _resize_pos_embed(pos: torch.Tensor, target: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """ALBEF's ``interpolate_pos_embed``: the patch grid resized with plain
    bicubic interpolation (``align_corners=False``, no antialiasing)."""
    try:
        from simla_bench.plugins.backbones import vit as vit_mod

        fn = getattr(vit_mod, "resize_pos_embed_albef", None)
    except ImportError:  # pragma: no cover
        fn = None
    if callable(fn):
        try:
            return fn(pos, grid)
        except TypeError:
            pass
    extra = target.shape[1] - grid[0] * grid[1]
    n_old = pos.shape[1] - extra
    side = int(round(n_old ** 0.5))
    if side * side != n_old:
        raise UserError(f"checkpoint position embedding has {n_old} patch positions, not a square grid",
                        hint="build the model at the checkpoint's image size")
    prefix, patches = pos[:, :extra], pos[:, extra:]
    dim = pos.shape[-1]
    patches = patches.reshape(1, side, side, dim).permute(0, 3, 1, 2).float()
    patches = F.interpolate(patches, size=grid, mode="bicubic", align_corners=False)
    patches = patches.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], dim).to(pos.dtype)
    return torch.cat([prefix, patches], dim=1)


def _architecture_checks(model, state: Mapping[str, Any], fmt: str) -> None:
    """Layer counts before any shape check, so the message names the real cause."""
    if fmt == "simla_bench":
        return
    n_ck, first_cross = _bert_layers(state)
    text = model.text_encoder
    if fmt in ("simla",):
        if model.layout != "single_stream":
            raise UserError("a SIMLA checkpoint needs the single-stream model", hint="set model.options.layout: single_stream")
    elif model.layout != "split":
        raise UserError(f"an ALBEF checkpoint ({fmt}) needs the split model (text layers, then fusion layers)",
                        hint="set model.options.layout: split")
    if fmt == "albef_nlvr":
        if first_cross is None or (n_ck - first_cross) % 2:
            raise UserError("NLVR checkpoint has no pairs of fusion layers", hint="give format explicitly")
        want_layers, want_fusion = first_cross + (n_ck - first_cross) // 2, (n_ck - first_cross) // 2
    else:
        want_layers = n_ck
        want_fusion = None if first_cross is None else n_ck - first_cross
    if want_layers and want_layers != text.num_layers:
        raise UserError(f"checkpoint BERT has {want_layers} layers, the model {text.num_layers}",
                        hint=f"set the model.options.text config num_hidden_layers: {want_layers}")
    if model.layout == "split" and want_fusion is not None:
        have = model.fusion_range[1] - model.fusion_range[0]
        if have != want_fusion:
            raise UserError(f"checkpoint has {want_fusion} fusion (cross-attention) layers, the model {have}",
                            hint=f"set model.options.fusion_layers: {want_fusion}")
    depth = 1 + max([int(m.group(1)) for k in state for m in [re.match(r"^visual_encoder\.blocks\.(\d+)\.", k)] if m],
                    default=-1)
    have_depth = len(model.visual_encoder.vit.blocks)
    if depth and depth != have_depth:
        raise UserError(f"checkpoint ViT has {depth} blocks, the model {have_depth}",
                        hint=f"set the model.options.image options depth: {depth}")


def _to_simla_bench(state: Mapping[str, Any], fmt: str, model) -> tuple[dict, dict, dict, list, list]:
    """(online, momentum, extras, unused, notes) in simla-bench key names."""
    online: dict[str, torch.Tensor] = {}
    momentum: dict[str, torch.Tensor] = {}
    extras: dict[str, Any] = {}
    unused: list[str] = []
    notes: list[str] = []
    if fmt == "simla_bench":
        for key, value in state.items():
            if key == "trained_heads":
                extras["trained_heads"] = list(value)
            elif key == "objectives":
                extras["objectives"] = value
                if isinstance(value, Mapping) and isinstance(value.get("itc"), Mapping) and value["itc"]:
                    extras["itc"] = value["itc"]
            elif key.startswith("momentum."):
                momentum[key[len("momentum."):]] = value
            else:
                online[key] = value
        return online, momentum, extras, unused, notes

    nlvr = None
    if fmt == "albef_nlvr":
        n_ck, first = _bert_layers(state)
        nlvr = (first, n_ck)
    decoder: dict[str, dict[str, torch.Tensor]] = {"answer_decoder": {}, "answer_decoder_m": {}}
    heads: dict[str, dict[str, torch.Tensor]] = {"nlvr_head": {}, "nlvr_head_m": {}}
    queue: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            unused.append(key)
            continue
        is_m, base = _split_owner(key)
        kind, target = _map_official_key(base, fmt, nlvr)
        if kind == "model":
            (momentum if is_m else online)[target] = value
        elif kind == "drop":
            continue
        elif kind == "extra":
            head = base.split(".")[0]
            rest = base[len(head) + 1:]
            if head == "text_decoder":
                decoder["answer_decoder_m" if is_m else "answer_decoder"][rest] = value
            elif head == "cls_head":
                heads["nlvr_head_m" if is_m else "nlvr_head"][rest] = value
            else:
                queue[head] = value
        else:
            unused.append(key)
    for name, sd in {**decoder, **heads}.items():
        if sd:
            extras[name] = sd
    if "nlvr_head" in extras:
        notes.append("nlvr_head: ALBEF's cls_head (Linear, ReLU, Linear) state dict, keys 0.* and 2.*")
    if "image_queue" in queue and "text_queue" in queue:
        image_q, text_q = queue["image_queue"].t().contiguous(), queue["text_queue"].t().contiguous()
        ids = queue.get("idx_queue")
        ids = (ids.reshape(-1).long().clone() if ids is not None
               else torch.full((image_q.shape[0],), -1, dtype=torch.long))
        ptr = int(queue["queue_ptr"].reshape(-1)[0]) if "queue_ptr" in queue else 0
        extras["itc"] = {"queue": {"image": image_q, "text": text_q, "ids": ids, "ptr": ptr}}
    else:
        unused.extend(k for k in queue)
    if fmt == "simla" and "text_encoder.embeddings.token_type_embeddings.weight" not in online:
        notes.append("SIMLA's BERT has no token-type embeddings: the model's token-type rows are set to zero")
    return online, momentum, extras, unused, notes


def _groups(named: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Key -> identity of its tensor (``state_dict(keep_vars=True)``): tied or
    shared parameters (MLM decoder = word embeddings, a twin's shared
    cross-attention key/value) are one object under several keys."""
    return {key: id(tensor) for key, tensor in named.items()}


def _fill(target_model, source: Mapping[str, torch.Tensor], fmt: str, grid: tuple[int, int],
          notes: list[str]) -> tuple[int, set[str], list[str]]:
    """Copy ``source`` into ``target_model``'s tensors; returns (count, filled groups' keys, unused source keys)."""
    own = target_model.state_dict(keep_vars=True)
    groups = _groups(own)
    filled_groups: set[int] = set()
    unused: list[str] = []
    count = 0
    with torch.no_grad():
        for key, value in source.items():
            if key not in own:
                unused.append(key)
                continue
            dest = own[key]
            value = value.detach()
            if key == "visual_encoder.vit.pos_embed" and value.shape != dest.shape and value.dim() == 3 \
                    and value.shape[-1] == dest.shape[-1]:
                value = _resize_pos_embed(value, dest, grid)
                note = f"position embeddings resized from {tuple(source[key].shape)} to {tuple(dest.shape)} (bicubic)"
                if note not in notes:
                    notes.append(note)
            if tuple(value.shape) != tuple(dest.shape):
                raise UserError(f"checkpoint '{key}' has shape {tuple(value.shape)}, the model expects "
                                f"{tuple(dest.shape)}", hint=_hint_for(key, tuple(value.shape)))
            dest.copy_(value.to(dest.dtype))
            filled_groups.add(groups[key])
            count += 1
    filled = {k for k, g in groups.items() if g in filled_groups}
    return count, filled, unused


def _filled_heads(model, filled: set[str], recorded: list[str] | None) -> list[str]:
    """The ``*_head`` modules whose every tensor the checkpoint filled.  A released
    checkpoint's heads are trained; a simla-bench trainer checkpoint says which
    of its heads were (``trained_heads``: a head of an objective it never ran is
    saved at its initialisation); one written before that record counts as trained."""
    heads = []
    for name, module in model.named_children():
        keys = list(module.state_dict()) if name.endswith("_head") and module is not None else []
        if keys and all(f"{name}.{k}" in filled for k in keys):
            heads.append(name)
    return heads if recorded is None else [h for h in heads if h in set(recorded)]


def _needed(model) -> list[str]:
    """Model state keys that must be filled (parameters and persistent buffers)."""
    return list(model.state_dict(keep_vars=True))


def _absent(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p) for p in prefixes)


def load_checkpoint(model, path_or_state: str | Path | Mapping[str, Any], format: str = "auto",
                    strict: bool = True) -> LoadReport:
    """Load a full checkpoint into ``model`` (a :class:`VLPModel`) and report.

    ``format``: ``auto`` (:func:`detect_format`) or one of :data:`FORMATS`.
    With ``strict`` a needed parameter left unfilled or a checkpoint key left
    unused is a :class:`UserError` (the parameters a format never has, listed
    in ``report.absent``, are allowed).  Architecture mismatches are always
    errors, naming the key/count and the setting to change."""
    source = None
    if isinstance(path_or_state, (str, Path)):
        source = str(path_or_state)
        state = read_checkpoint(path_or_state)
    elif isinstance(path_or_state, Mapping):
        state = _unwrap(path_or_state)
    else:
        raise UserError(f"load_checkpoint takes a path or a state dict, not {type(path_or_state).__name__}")
    fmt = detect_format(state) if format in (None, "auto") else str(format)
    if fmt not in FORMATS:
        raise UserError(f"unknown checkpoint format '{fmt}'", hint=f"use auto or one of {', '.join(FORMATS)}")
    report = LoadReport(format=fmt, source=source)
    _architecture_checks(model, state, fmt)
    if fmt == "albef_nlvr":
        model.enable_two_image_fusion()
        report.notes.append("two-image fusion enabled: ALBEF layers 2j/2j+1 after the text layers -> layer and twin")
    online, momentum, extras, unused, notes = _to_simla_bench(state, fmt, model)
    recorded_heads = extras.pop("trained_heads", None)
    report.extras, report.notes = extras, report.notes + notes
    report.unused.extend(unused)

    mim = online.get("mim_head.weight")
    if mim is not None and hasattr(model, "set_mim_vocab") and model.mim_vocab_size != int(mim.shape[0]):
        model.set_mim_vocab(int(mim.shape[0]))
        report.notes.append(f"MIM head sized to {int(mim.shape[0])} outputs")
    grid = tuple(model.patch_grid)
    count, filled, unused_online = _fill(model, online, fmt, grid, report.notes)
    report.matched += count
    report.unused.extend(unused_online)
    zero_token_type = fmt == "simla" and "text_encoder.embeddings.token_type_embeddings.weight" not in online
    if zero_token_type:
        with torch.no_grad():
            model.text_encoder.embeddings.token_type_embeddings.weight.zero_()
        filled.add("text_encoder.embeddings.token_type_embeddings.weight")
    absent_prefixes = _FORMAT_ABSENT[fmt]
    for key in _needed(model):
        if key in filled:
            continue
        (report.absent if _absent(key, absent_prefixes) else report.unfilled).append(key)
    report.trained_heads = _filled_heads(model, filled, recorded_heads)
    mark_trained(model, report.trained_heads)

    if momentum or model.has_momentum():
        mom = model.momentum_model()
        # start from the online weights (ALBEF's copy_params), then the checkpoint's momentum modules
        with torch.no_grad():
            online_state = model.state_dict(keep_vars=True)
            for key, p_m in mom.state_dict(keep_vars=True).items():
                if key in online_state and p_m.shape == online_state[key].shape:
                    p_m.copy_(online_state[key])
        count, m_filled, unused_m = _fill(mom, momentum, fmt, grid, report.notes)
        report.matched += count
        report.unused.extend(f"momentum.{k}" for k in unused_m)
        if zero_token_type:
            m_filled.add("text_encoder.embeddings.token_type_embeddings.weight")
        if momentum:
            allowed = () if fmt == "simla_bench" else absent_prefixes + _MOMENTUM_ABSENT
            for key in _needed(mom):
                if key not in m_filled:
                    (report.absent if _absent(key, allowed) else report.unfilled).append(f"momentum.{key}")
        else:
            report.notes.append("the checkpoint has no momentum modules: the momentum copy now equals the model")
        object.__setattr__(model, "_ema_pairs", None)

    if strict and (report.unused or report.unfilled):
        if report.unfilled:
            first = report.unfilled[0]
            raise UserError(f"checkpoint ({fmt}) leaves {len(report.unfilled)} model parameter(s) unfilled, "
                            f"e.g. '{first}'" + (f"; {len(report.unused)} checkpoint key(s) unused, e.g. "
                                                 f"'{report.unused[0]}'" if report.unused else ""),
                            hint=_STRICT_HINT)
        raise UserError(f"checkpoint ({fmt}) has {len(report.unused)} key(s) the model does not use, "
                        f"e.g. '{report.unused[0]}'", hint=_STRICT_HINT)
    return report
