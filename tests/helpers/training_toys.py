"""A tiny model, tokenizer, data and objectives with the documented APIs, used
to test the generic pretraining loop independently of the real VLP model."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from simla_bench.config import parse_config
from simla_bench.interfaces import Objective
from simla_bench.plugins.datasets.records import PairRecord

COLORS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220),
          "yellow": (230, 220, 30), "purple": (150, 30, 170), "cyan": (30, 210, 210)}
SHAPES = ["square", "stripe"]


def toy_tokenizer():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "image", *COLORS, *SHAPES]
    tok = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def toy_records(root: Path, per_class: int = 4, size: int = 8, write: bool = True) -> list[PairRecord]:
    """Solid-colour images with a shape; caption names colour and shape
    (``write=False``: the records of images an earlier call wrote)."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for color, rgb in COLORS.items():
        for shape in SHAPES:
            for k in range(per_class):
                arr = np.tile(np.array(rgb, dtype=np.float64), (size, size, 1))
                if shape == "stripe":
                    arr[:, : size // 2] *= 0.3
                arr += rng.normal(0, 12, arr.shape)
                path = root / f"{color}_{shape}_{k}.png"
                if write:
                    Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(path)
                records.append(PairRecord(image=path, caption=f"a {color} {shape} image", image_id=path.stem))
    return records


class ToyEncoders(nn.Module):
    def __init__(self, vocab: int, size: int, dim: int = 24, embed: int = 16):
        super().__init__()
        self.patch = nn.Linear(3 * 4 * 4, dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.img_norm = nn.LayerNorm(dim)
        self.word = nn.Embedding(vocab, dim)
        self.txt_norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(0.1)
        self.img_proj = nn.Linear(dim, embed)
        self.txt_proj = nn.Linear(dim, embed)

    def encode_image(self, images, patch_mask=None):
        b = images.shape[0]
        patches = F.unfold(images, kernel_size=4, stride=4).transpose(1, 2)  # [B, N, 48]
        x = self.patch(patches)
        cls = self.cls.expand(b, -1, -1) + x.mean(1, keepdim=True)
        return self.img_norm(self.drop(torch.cat([cls, x], 1)))

    def encode_text(self, input_ids, attention_mask):
        x = self.word(input_ids)
        m = attention_mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * m).sum(1, keepdim=True) / m.sum(1, keepdim=True)
        return self.txt_norm(self.drop(torch.cat([pooled, x], 1)))

    def image_feat(self, image_embeds):
        return F.normalize(self.img_proj(image_embeds[:, 0]).float(), dim=-1)

    def text_feat(self, text_embeds, attention_mask=None):
        return F.normalize(self.txt_proj(text_embeds[:, 0]).float(), dim=-1)


class ToyVLP(nn.Module):
    """Has the documented VLPModel surface used by contrastive objectives."""

    def __init__(self, tokenizer, size: int = 8, capabilities=("text", "momentum")):
        super().__init__()
        self.tokenizer = tokenizer
        self.image_size = size
        self.max_text_len = 8
        self.ema = 0.995  # the momentum coefficient (the VLP model's is model.options.momentum)
        self.capabilities = frozenset(capabilities)
        self.online = ToyEncoders(len(tokenizer), size)
        self.temp = nn.Parameter(torch.tensor(0.07))
        self.momentum = copy.deepcopy(self.online)
        for p in self.momentum.parameters():
            p.requires_grad_(False)

    def image_transform(self, train: bool, size=None):
        from simla_bench.plugins.datasets.images import image_transform

        return image_transform(int(size or self.image_size), train=train)

    def encode_image(self, images, patch_mask=None):
        return self.online.encode_image(images, patch_mask)

    def encode_text(self, input_ids, attention_mask):
        return self.online.encode_text(input_ids, attention_mask)

    def image_feat(self, e):
        return self.online.image_feat(e)

    def text_feat(self, e, attention_mask=None):
        return self.online.text_feat(e, attention_mask)

    def momentum_model(self):
        return self.momentum

    @torch.no_grad()
    def update_momentum(self, m: float | None = None):
        m = self.ema if m is None else m
        for p, q in zip(self.online.parameters(), self.momentum.parameters()):
            q.mul_(m).add_(p.detach(), alpha=1 - m)


class ToyITC(Objective):
    """Contrastive loss over gathered features plus a queue of momentum text
    features (objective state) and momentum distillation."""

    needs = frozenset({"text", "momentum"})
    defaults = {"queue": 8}

    def __init__(self, name="toy_itc", options=None):
        super().__init__(name, options)
        self.queue = None
        self.calls = 0
        self.key_counts = []  # how many text keys (negatives + positive) each row was compared with

    def setup(self, model, data):
        self.queue = F.normalize(torch.randn(self.options["queue"], 16), dim=-1)

    def loss(self, step):
        self.calls += 1
        img, txt = step.image_feat, step.text_feat
        g_txt = step.gather(txt)
        g_img = step.gather(img)
        keys = torch.cat([g_txt, self.queue.to(img.device)])
        self.key_counts.append(keys.shape[0])
        logits = img @ keys.T / 0.1
        b = img.shape[0]
        target = torch.arange(b, device=img.device) + step.rank * b
        hard = F.one_hot(target, keys.shape[0]).float()
        with torch.no_grad():
            m_keys = torch.cat([step.gather(step.m_text_feat), self.queue.to(img.device)])
            soft = F.softmax(step.m_image_feat @ m_keys.T / 0.1, dim=1)
        tgt = step.alpha * soft + (1 - step.alpha) * hard
        i2t = -(F.log_softmax(logits, 1) * tgt).sum(1).mean()
        t2i = F.cross_entropy(txt @ g_img.T / 0.1, target)
        with torch.no_grad():
            self.queue = torch.cat([step.gather(step.m_text_feat).cpu(), self.queue])[: self.options["queue"]]
        return (i2t + t2i) / 2

    def state_dict(self):
        return {"queue": self.queue.clone()}

    def load_state_dict(self, state):
        self.queue = state["queue"].clone()


class ToyNoise(Objective):
    """Uses the global torch RNG each step (so RNG state matters for resume)."""

    needs = frozenset()

    def __init__(self, name="toy_noise", options=None):
        super().__init__(name, options)

    def loss(self, step):
        emb = step.image_embeds
        noise = torch.randn_like(emb[:, 0])
        return ((emb[:, 0] - 0.1 * noise) ** 2).mean() * 0.01


class NaNAt(Objective):
    """Returns NaN from optimizer step ``at`` on."""

    defaults = {"at": 3}

    def loss(self, step):
        value = step.image_feat.sum() * 0.0
        return value + float("nan") if step.step + 1 >= self.options["at"] else value


def toy_cfg(**pretrain: Any):
    base = dict(steps=6, batch_size=8, lr=3e-3, min_lr=1e-4, warmup_steps=2, checkpoint_every=2,
                image_size=8, augment=True, weight_decay=0.02, grad_clip=1.0)
    base.update(pretrain)
    return parse_config({"device": "cpu", "pretrain": base, "model": {"max_text_len": 8}})


def toy_model(seed: int = 0, **kw):
    torch.manual_seed(seed)
    return ToyVLP(toy_tokenizer(), **kw)
