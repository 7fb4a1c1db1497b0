"""Test-only support for the objective tests: a tiny model implementing the
documented ``VLPModel`` API (docs/architecture.md), a tiny tokenizer, and tiny
learnable image-caption data (each image shows one of a few colours in one of a
few positions; its caption names them).  Independent of plugins/backbones so the
objective tests run whatever state the real model is in.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

PAD, CLS, SEP, MASK, UNK = 0, 1, 2, 3, 4
VOCAB = 32
COLOURS = torch.tensor([[1.0, -1, -1], [-1, 1.0, -1], [-1, -1, 1.0], [1.0, 1.0, -1]])
COLOUR_WORDS = [10, 11, 12, 13]
PLACE_WORDS = [20, 21, 22, 23]  # quadrant: top-left, top-right, bottom-left, bottom-right
FILLER = [5, 6]  # "a", "the"
WORDS = {"a": 5, "the": 6, "red": 10, "green": 11, "blue": 12, "yellow": 13,
         "top-left": 20, "top-right": 21, "bottom-left": 22, "bottom-right": 23}
NAMES = {v: k for k, v in WORDS.items()}


class TinyTokenizer:
    pad_token_id, cls_token_id, sep_token_id, mask_token_id, unk_token_id = PAD, CLS, SEP, MASK, UNK
    all_special_ids = [PAD, CLS, SEP, MASK, UNK]
    vocab_size = VOCAB

    def __len__(self) -> int:
        return VOCAB

    def __call__(self, texts, truncation=True, max_length=8):
        ids = [[CLS] + [WORDS.get(w, UNK) for w in t.split()][: max_length - 2] + [SEP] for t in texts]
        return {"input_ids": ids}


@dataclass
class FusionOutput:
    hidden: torch.Tensor
    cross_attentions: list | None = None
    self_attentions: list | None = None
    pooled: torch.Tensor | None = None


class Attn(nn.Module):
    def __init__(self, dim: int, heads: int = 2):
        super().__init__()
        self.heads, self.hd = heads, dim // heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x, ctx=None, key_mask=None):
        ctx = x if ctx is None else ctx
        b, lq, d = x.shape
        q = self.q(x).view(b, lq, self.heads, self.hd).transpose(1, 2)
        k = self.k(ctx).view(b, ctx.shape[1], self.heads, self.hd).transpose(1, 2)
        v = self.v(ctx).view(b, ctx.shape[1], self.heads, self.hd).transpose(1, 2)
        s = q @ k.transpose(-1, -2) / self.hd ** 0.5
        if key_mask is not None:
            s = s.masked_fill(~key_mask.bool()[:, None, None, :], float("-inf"))
        p = s.softmax(-1)
        out = (p @ v).transpose(1, 2).reshape(b, lq, d)
        return self.norm(x + self.o(out)), p


class Block(nn.Module):
    def __init__(self, dim: int, cross: bool):
        super().__init__()
        self.self_attn = Attn(dim)
        self.cross = Attn(dim) if cross else None
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x, mask=None, ctx=None, ctx_mask=None):
        x, p = self.self_attn(x, key_mask=mask)
        cp = None
        if ctx is not None:
            x, cp = self.cross(x, ctx, ctx_mask)
        return self.norm(x + self.mlp(x)), p, cp


class TinyVLP(nn.Module):
    """16x16 images, patch 4 (4x4 grid), width 32, single-stream 2-layer text/fusion."""

    def __init__(self, dim: int = 32, embed_dim: int = 16, mim_vocab: int = 8, queue_size: int = 16):
        super().__init__()
        self.tokenizer = TinyTokenizer()
        self.image_size, self.patch_grid, self.patch = 16, (4, 4), 4
        self.embed_dim, self.queue_size, self.mim_vocab_size, self.max_text_len = embed_dim, queue_size, mim_vocab, 8
        self.capabilities = frozenset({"text", "fusion", "itm_head", "mlm_head", "mim_head", "concept_head", "momentum",
                                       "fuse_image", "patch_mask"})
        # image encoder
        self.patch_embed = nn.Linear(3 * 16, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, 17, dim) * 0.02)
        self.vit = nn.ModuleList([Block(dim, cross=False)])
        # text / fusion (single stream)
        self.word = nn.Embedding(VOCAB, dim)
        self.tpos = nn.Parameter(torch.randn(1, 16, dim) * 0.02)
        self.bert = nn.ModuleList([Block(dim, cross=True) for _ in range(2)])
        # heads
        self.vision_proj, self.text_proj = nn.Linear(dim, embed_dim), nn.Linear(dim, embed_dim)
        self.itm_head = nn.Linear(dim, 2)
        self.mlm_head = nn.Linear(dim, VOCAB)
        self.mim_head = nn.Linear(dim, mim_vocab)
        self.concept_head = nn.Linear(embed_dim, VOCAB)
        self.temp = nn.Parameter(torch.tensor(0.07))
        self._momentum: list[TinyVLP] = []

    # -- momentum -----------------------------------------------------------
    def enable_momentum(self) -> "TinyVLP":
        m = copy.deepcopy(self)
        m._momentum = []
        for p in m.parameters():
            p.requires_grad_(False)
        self._momentum = [m]  # a list so it is not a registered submodule
        return self

    def momentum_model(self):
        return self._momentum[0] if self._momentum else None

    @torch.no_grad()
    def update_momentum(self, m: float) -> None:
        for p, q in zip(self.parameters(), self._momentum[0].parameters()):
            q.mul_(m).add_(p.detach(), alpha=1 - m)

    # -- API ------------------------------------------------------------------
    def encode_image(self, images, patch_mask=None):
        x = F.unfold(images, 4, stride=4).transpose(1, 2)
        x = self.patch_embed(x)
        if patch_mask is not None:
            x = torch.where(patch_mask[..., None], self.mask_token.expand_as(x), x)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], 1) + self.pos
        for blk in self.vit:
            x, _, _ = blk(x)
        return x

    def _embed(self, ids):
        return self.word(ids) + self.tpos[:, : ids.shape[1]]

    def encode_text(self, input_ids, attention_mask):
        x = self._embed(input_ids)
        for blk in self.bert:
            x, _, _ = blk(x, attention_mask)
        return x

    def fuse(self, input_ids, attention_mask, image_embeds, image_atts=None, text_embeds=None,
             output_attentions=False):
        x = self._embed(input_ids)
        sa, ca = [], []
        for blk in self.bert:
            x, p, cp = blk(x, attention_mask, image_embeds, image_atts)
            sa.append(p)
            ca.append(cp)
        return FusionOutput(x, ca if output_attentions else None, sa if output_attentions else None, x[:, 0])

    def fuse_image(self, image_embeds, input_ids, attention_mask):
        x, ctx = image_embeds, self.word(input_ids)
        for blk in self.bert:
            x, _, _ = blk(x, None, ctx, attention_mask)
        return x

    def image_feat(self, image_embeds):
        return F.normalize(self.vision_proj(image_embeds[:, 0]), dim=-1)

    def text_feat(self, text_embeds, attention_mask=None):
        return F.normalize(self.text_proj(text_embeds[:, 0]), dim=-1)

    def itm_logits(self, h):
        h = h.pooled if isinstance(h, FusionOutput) else h
        return self.itm_head(h if h.dim() == 2 else h[:, 0])

    def mlm_logits(self, h):
        return self.mlm_head(h)

    def mim_logits(self, h):
        return self.mim_head(h)

    def concept_logits(self, f):
        return self.concept_head(f)


def make_batch(n: int, generator: torch.Generator) -> dict:
    """Images: a coloured 8x8 square in one quadrant of a dark 16x16 image plus noise.
    Captions: [CLS] filler colour place [SEP] [PAD]?"""
    colour = torch.randint(0, 4, (n,), generator=generator)
    place = torch.randint(0, 4, (n,), generator=generator)
    images = torch.randn(n, 3, 16, 16, generator=generator) * 0.1 - 1.0
    for i in range(n):
        r, c = divmod(int(place[i]), 2)
        images[i, :, r * 8:(r + 1) * 8, c * 8:(c + 1) * 8] += COLOURS[colour[i]].view(3, 1, 1) + 1.0
    ids = torch.full((n, 6), PAD)
    att = torch.zeros(n, 6, dtype=torch.long)
    for i in range(n):
        filler = FILLER[int(torch.randint(0, 2, (1,), generator=generator))]
        toks = [CLS, filler, COLOUR_WORDS[colour[i]], PLACE_WORDS[place[i]], SEP]
        ids[i, : len(toks)] = torch.tensor(toks)
        att[i, : len(toks)] = 1
    image_ids = [f"img{int(colour[i])}-{int(place[i])}" for i in range(n)]
    return {"images": images, "input_ids": ids, "attention_mask": att, "image_ids": image_ids,
            "captions": [" ".join(NAMES[int(t)] for t in ids[i, 1:4]) for i in range(n)]}


def make_step(model, batch, alpha=0.4, step=0):
    from simla_bench.training.step_context import StepContext

    return StepContext(batch=batch, model=model, momentum=model.momentum_model(), alpha=alpha, step=step)
