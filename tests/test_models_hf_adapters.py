"""The hf_* model plugins against transformers' own models: tiny random checkpoints of
each family (tests/helpers/hf_checkpoints.py) are loaded back through the plugin, and
the adapter's similarities, ITM scores and answer logits equal the transformers
model's outputs on the same inputs to 1e-5; plus loading rules (local directories
only, the family and architecture checked, one-line errors) and the ViLT specifics
(raster-order patch tokens, Grad-CAM-able text-to-image attention)."""

from __future__ import annotations

import json

import pytest
import torch

from helpers import hf_checkpoints as hc
from simla_bench.assemble import assemble, model_recipe
from simla_bench.config import ModelConfig
from simla_bench.errors import ConfigError, UnknownNameError
from simla_bench.imagefiles import load_image

ATOL = 1e-5


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # any attempt to reach the hub fails


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tiny_world):
    root = tmp_path_factory.mktemp("hf")
    made = {"hf_clip": hc.clip(tiny_world, root / "clip"), "hf_siglip": hc.siglip(tiny_world, root / "siglip"),
            "hf_blip": hc.blip(tiny_world, root / "blip")}
    for head in hc.VILT_HEADS:
        made[head] = hc.vilt(tiny_world, root / head, head=head)
    return made


def load(name: str, path):
    model = assemble(ModelConfig(name=name, options={"path": str(path)})).model
    return model.eval()


def reference(path):
    """The transformers model of the checkpoint, loaded by transformers itself."""
    import transformers

    arch = json.loads((path / "config.json").read_text())["architectures"][0]
    return getattr(transformers, arch).from_pretrained(path).eval()


def inputs(model, world, n: int = 4):
    split = world.load("retrieval", "test")
    pixels = torch.stack([model.image_transform(False)(load_image(p)) for p in split.images[:n]])
    tok = model.tokenizer(list(split.texts[:n]), padding="longest", return_tensors="pt")
    return pixels, tok.input_ids, tok.attention_mask


def spread(t: torch.Tensor) -> float:
    return float(t.max() - t.min())


@torch.no_grad()
@pytest.mark.parametrize("name", ["hf_clip", "hf_siglip"])
def test_dual_encoder_similarities_equal_transformers(name, checkpoints, tiny_world):
    model, ref = load(name, checkpoints[name]), reference(checkpoints[name])
    pixels, ids, mask = inputs(model, tiny_world)
    ours = model.similarity(model.image_feat(model.encode_image(pixels)),
                            model.text_feat(model.encode_text(ids, mask), mask))
    if name == "hf_siglip":  # SigLIP reads texts padded to its full length, without a mask
        padded = model.tokenizer(model.tokenizer.batch_decode(ids, skip_special_tokens=True), padding="max_length",
                                 max_length=ref.config.text_config.max_position_embeddings, return_tensors="pt")
        theirs = ref(input_ids=padded.input_ids, pixel_values=pixels).logits_per_image
    else:
        theirs = ref(input_ids=ids, attention_mask=mask, pixel_values=pixels).logits_per_image
    assert spread(theirs) > 1e-2  # the comparison can tell a wrong adapter from a right one
    torch.testing.assert_close(ours, theirs, atol=ATOL, rtol=0)
    assert model.capabilities == {"image", "text", "image_feat", "text_feat"}


@torch.no_grad()
def test_blip_itc_and_itm_equal_transformers(checkpoints, tiny_world):
    model, ref = load("hf_blip", checkpoints["hf_blip"]), reference(checkpoints["hf_blip"])
    pixels, ids, mask = inputs(model, tiny_world)
    image = model.encode_image(pixels)
    itm = model.itm_logits(model.fuse(ids, mask, image))
    itc = model.similarity(model.image_feat(image), model.text_feat(model.encode_text(ids, mask)))
    their_itm = ref(input_ids=ids, attention_mask=mask, pixel_values=pixels, use_itm_head=True).itm_score
    their_itc = ref(input_ids=ids, attention_mask=mask, pixel_values=pixels, use_itm_head=False).itm_score
    assert spread(their_itm) > 1e-2 and spread(their_itc) > 1e-2
    torch.testing.assert_close(itm, their_itm, atol=ATOL, rtol=0)
    torch.testing.assert_close(itc, their_itc, atol=ATOL, rtol=0)
    assert model.trained_heads == {"itm_head"}


@torch.no_grad()
@pytest.mark.parametrize("head", hc.VILT_HEADS)
def test_vilt_heads_equal_transformers(head, checkpoints, tiny_world):
    model, ref = load("hf_vilt", checkpoints[head]), reference(checkpoints[head])
    pixels, ids, mask = inputs(model, tiny_world)
    image = model.encode_image(pixels)
    if head == "ViltForImagesAndTextClassification":
        ours = model.nlvr2_logits(model.enable_two_image_fusion().fuse(ids, mask, [image, image.flip(0)]))
        theirs = ref(input_ids=ids, attention_mask=mask, pixel_values=torch.stack([pixels, pixels.flip(0)], 1)).logits
        assert "nlvr2_head" in model.capabilities
    elif head == "ViltForQuestionAnswering":
        ours = model.vqa_logits(model.fuse(ids, mask, image))
        theirs = ref(input_ids=ids, attention_mask=mask, pixel_values=pixels).logits
        assert model.vqa_answers == [ref.config.id2label[i] for i in range(len(model.vqa_answers))]
    else:
        ours = model.itm_logits(model.fuse(ids, mask, image))[:, 1:]
        theirs = ref(input_ids=ids, attention_mask=mask, pixel_values=pixels).logits
        assert model.trained_heads == {"itm_head"}
    assert spread(theirs) > 1e-2
    torch.testing.assert_close(ours, theirs, atol=ATOL, rtol=0)


def test_vilt_without_a_retrieval_head_gets_an_untrained_one(checkpoints):
    model = load("hf_vilt", checkpoints["ViltForQuestionAnswering"])
    assert {"itm_head", "vqa_head", "fusion", "two_image_fusion"} <= model.capabilities
    assert model.trained_heads == {"vqa_head"}  # the new ITM head is not marked trained
    assert not {"image_feat", "text_feat"} & model.capabilities
    report = model_recipe(ModelConfig(name="hf_vilt", options={"path": str(checkpoints["ViltForQuestionAnswering"])}))
    report.build(model.tokenizer)
    assert "new untrained head(s): itm_head" in report.load_weights(None).summary()


@torch.no_grad()
def test_vilt_image_tokens_are_transformers_patches_in_raster_order(checkpoints, tiny_world):
    model = load("hf_vilt", checkpoints["ViltForQuestionAnswering"])
    pixels, _, _ = inputs(model, tiny_world, n=2)
    ours = model.encode_image(pixels)
    theirs, _, _ = model.vilt.embeddings.visual_embed(pixels, torch.ones(2, *pixels.shape[-2:]), max_image_length=-1)
    assert ours.shape == theirs.shape == (2, 1 + (hc.PIXELS // hc.PATCH) ** 2, 32)
    torch.testing.assert_close(ours[:, 0], theirs[:, 0])                        # the image [CLS] first
    ours_sorted = ours[:, 1:].sort(dim=1).values                                   # transformers permutes the patches
    torch.testing.assert_close(ours_sorted, theirs[:, 1:].sort(dim=1).values)


def test_gradcam_maps_of_fusion_models_carry_gradients(checkpoints, tiny_world):
    """BLIP's cross-attention and ViLT's text-to-image attention block are in the graph of the
    ITM logit, as Grad-CAM needs them (one map per asked layer, [B, H, L, 1+N])."""
    from simla_bench.tasks.gradcam import batched_gradcam

    for path, name in ((checkpoints["hf_blip"], "hf_blip"), (checkpoints["ViltForImageAndTextRetrieval"], "hf_vilt")):
        model = load(name, path)
        pixels, ids, mask = inputs(model, tiny_world)
        out = model.fuse(ids, mask, model.encode_image(pixels), output_attentions=-1)
        assert out.cross_attentions[0] is None and out.cross_attentions[1].shape == (4, 2, ids.shape[1], 17)
        cams = batched_gradcam(model, model.encode_image(pixels).detach(), ids, mask, None)
        assert cams.shape == (4, 16) and torch.isfinite(cams).all() and cams.abs().sum() > 0, name
        assert model.patch_grid == (4, 4)


def test_local_directories_only(tmp_path, checkpoints):
    with pytest.raises(ConfigError, match="option 'path' is not set"):
        model_recipe(ModelConfig(name="hf_clip")).check()
    with pytest.raises(ConfigError, match="not a local directory.*online: true"):
        model_recipe(ModelConfig(name="hf_clip", options={"path": "openai/clip-vit-base-patch32"})).check()
    with pytest.raises(ConfigError, match="has no config.json"):
        model_recipe(ModelConfig(name="hf_clip", options={"path": str(tmp_path)})).check()
    with pytest.raises(ConfigError, match="holds a 'blip' model, not clip"):
        model_recipe(ModelConfig(name="hf_clip", options={"path": str(checkpoints["hf_blip"])})).check()
    with pytest.raises(ConfigError, match="unknown option"):
        model_recipe(ModelConfig(name="hf_clip", options={"pth": "x"}))
    with pytest.raises(UnknownNameError, match="did you mean 'hf_clip'"):
        model_recipe(ModelConfig(name="hf_clp"))


def test_unsupported_architecture_is_one_line(tmp_path, tiny_world):
    from transformers import BlipConfig, BlipModel

    folder = hc.blip(tiny_world, tmp_path / "blip")
    config = json.loads((folder / "config.json").read_text())
    BlipModel(BlipConfig(text_config=config["text_config"], vision_config=config["vision_config"])).save_pretrained(folder)
    with pytest.raises(ConfigError, match="BlipModel, which hf_blip does not load"):
        model_recipe(ModelConfig(name="hf_blip", options={"path": str(folder)})).check()


def test_text_length_and_image_size_come_from_the_checkpoint(checkpoints):
    recipe = model_recipe(ModelConfig(name="hf_siglip", options={"path": str(checkpoints["hf_siglip"])}))
    assert recipe.max_text_len == 24  # the config's text positions (SigLIP's default 64 is longer)
    assert model_recipe(ModelConfig(name="hf_blip", options={"path": str(checkpoints["hf_blip"]),
                                                             "max_text_len": 12})).max_text_len == 12
    model = load("hf_clip", checkpoints["hf_clip"])
    assert model.image_size == hc.PIXELS
    with pytest.raises(ConfigError, match="works at 32 px"):
        model.image_transform(False, size=64)
