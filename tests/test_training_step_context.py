"""StepContext: shared encodings computed once and only when used, momentum
encodings without gradient, gather is the identity on one process."""

import torch

from simla_bench.training.step_context import StepContext
from helpers.training_toys import toy_model, toy_tokenizer


def _ctx(model):
    tok = toy_tokenizer()
    enc = tok(["a red square image", "a blue stripe image"], padding="longest", return_tensors="pt")
    batch = {"images": torch.randn(2, 3, 8, 8), "input_ids": enc["input_ids"],
             "attention_mask": enc["attention_mask"]}
    return StepContext(batch=batch, model=model, momentum=model.momentum_model(), alpha=0.2, step=0)


def test_encodings_memoised_and_lazy():
    model = toy_model()
    calls = {"image": 0, "text": 0}
    enc_i, enc_t = model.encode_image, model.encode_text
    model.encode_image = lambda *a: (calls.__setitem__("image", calls["image"] + 1), enc_i(*a))[1]
    model.encode_text = lambda *a: (calls.__setitem__("text", calls["text"] + 1), enc_t(*a))[1]
    step = _ctx(model)
    a = step.image_feat
    b = step.image_feat
    _ = step.image_embeds
    assert a is b and calls == {"image": 1, "text": 0}
    _ = step.text_feat, step.text_embeds
    assert calls == {"image": 1, "text": 1}
    assert step.computed == {"image_embeds": 1, "image_feat": 1, "text_embeds": 1, "text_feat": 1}


def test_momentum_encodings_have_no_grad():
    step = _ctx(toy_model())
    assert step.image_feat.requires_grad
    for t in (step.m_image_embeds, step.m_text_embeds, step.m_image_feat, step.m_text_feat):
        assert not t.requires_grad
    assert step.image_feat.shape == step.m_image_feat.shape == (2, 16)


def test_gather_identity_on_one_process():
    step = _ctx(toy_model())
    x = torch.randn(2, 3)
    assert step.gather(x) is x


def test_single_process_shard_and_gather_are_identities():
    from simla_bench.training.distributed import DistContext

    ctx = DistContext()
    assert ctx.shard(5) == range(5)
    x = torch.randn(3, 2)
    assert ctx.gather(x) is x and ctx.gather_uneven(x) is x


def test_shard_blocks_cover_everything_in_order():
    from simla_bench.training.distributed import DistContext

    blocks = [DistContext(rank=r, world_size=3).shard(10) for r in range(3)]
    assert [list(b) for b in blocks] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
