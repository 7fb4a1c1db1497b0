"""ViT image backbone: shapes, the patch mask token, resolution change, local timm weights."""

from __future__ import annotations

import pytest
import torch

from simla_bench.errors import ConfigError, UserError
from simla_bench.plugins.backbones.vit import vit_base_patch16_256, vit_timm, vit_world_tiny


def _tiny(**kw):
    torch.manual_seed(0)
    return vit_world_tiny(**kw).eval()


def test_world_tiny_shape_and_geometry():
    enc = _tiny()
    out = enc(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 1 + 64, 192)
    assert enc.patch_grid == (8, 8) and enc.image_size == 64 and enc.patch_size == 8 and enc.width == 192
    assert len(enc.vit.blocks) == 4 and enc.vit.blocks[0].attn.num_heads == 3


def test_paper_vit_shape_without_building_weights():
    with torch.device("meta"):
        enc = vit_base_patch16_256()
    assert enc.width == 768 and len(enc.vit.blocks) == 12 and enc.patch_grid == (16, 16)
    assert enc.vit.pos_embed.shape == (1, 257, 768)


def _block_input(enc, images, patch_mask=None):
    seen = {}
    handle = enc.vit.blocks.register_forward_pre_hook(lambda mod, args: seen.setdefault("x", args[0].detach()))
    enc(images, patch_mask)
    handle.remove()
    return seen["x"]


def test_patch_mask_replaces_exactly_the_masked_patches():
    enc = _tiny()
    images = torch.randn(3, 3, 64, 64)
    mask = torch.zeros(3, 64, dtype=torch.bool)
    mask[0, [0, 5, 63]] = True
    mask[2, 10:30] = True
    clean = _block_input(enc, images)
    masked = _block_input(enc, images, mask)
    pos = enc.vit.pos_embed.detach()[0]
    expected_masked = enc.mask_token.detach()[0, 0] + pos[1:]  # [N, D]
    full = torch.cat([torch.zeros(3, 1, dtype=torch.bool), mask], 1)
    assert torch.equal(masked[~full], clean[~full])  # unmasked tokens and CLS untouched
    for b in range(3):
        idx = mask[b].nonzero().flatten()
        torch.testing.assert_close(masked[b, 1 + idx], expected_masked[idx])
    # the image content of masked patches is gone: changing it does not change the output
    images2 = images.clone()
    images2[0, :, :8, :8] += 5.0  # patch 0 of image 0
    torch.testing.assert_close(enc(images, mask)[0], enc(images2, mask)[0])
    assert not torch.allclose(enc(images)[0], enc(images2)[0])


def test_all_false_mask_equals_no_mask_and_mask_token_gets_gradient():
    enc = _tiny()
    images = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(enc(images), enc(images, torch.zeros(2, 64, dtype=torch.bool)), rtol=0, atol=0)
    mask = torch.zeros(2, 64, dtype=torch.bool)
    mask[:, :7] = True
    enc(images, mask).sum().backward()
    assert enc.mask_token.grad is not None and enc.mask_token.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        enc(images, torch.zeros(2, 10, dtype=torch.bool))


def test_set_image_size_interpolates_position_embeddings():
    enc = _tiny()
    enc.set_image_size(96)
    assert enc.patch_grid == (12, 12) and enc.vit.pos_embed.shape == (1, 145, 192)
    assert enc(torch.randn(1, 3, 96, 96)).shape == (1, 145, 192)
    with pytest.raises(ConfigError):
        enc.set_image_size(90)


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_local_timm_weights_load(tmp_path, fmt):
    src = _tiny()
    state = {k: v.clone() for k, v in src.vit.state_dict().items()}  # a plain timm state dict
    path = tmp_path / f"vit.{fmt}"
    if fmt == "pth":
        torch.save({"model": state}, path)  # DeiT-style checkpoint wrapper
    else:
        from safetensors.torch import save_file

        save_file(state, str(path))
    torch.manual_seed(123)
    dst = vit_world_tiny(weights=str(path)).eval()
    images = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(dst(images), src(images), rtol=0, atol=0)
    # weights saved at 64px load into a 96px model with resampled position embeddings
    big = vit_world_tiny(img_size=96, weights=str(path)).eval()
    src.set_image_size(96)
    torch.testing.assert_close(big.vit.pos_embed, src.vit.pos_embed)


def test_bad_weights_and_names_are_user_errors(tmp_path):
    other = vit_timm(model_name="vit_tiny_patch16_224", img_size=32, depth=1, embed_dim=96, num_heads=3)
    path = tmp_path / "other.pth"
    torch.save(other.vit.state_dict(), path)
    with pytest.raises(UserError, match="do not fit|lack"):
        vit_world_tiny(weights=str(path))
    with pytest.raises(UserError, match="does not exist"):
        vit_world_tiny(weights=str(tmp_path / "missing.pth"))
    with pytest.raises(ConfigError, match="timm has no model"):
        vit_timm(model_name="vit_tiny_patch16_2244")


def test_vit_timm_any_model_by_name():
    enc = vit_timm(model_name="vit_small_patch16_224", img_size=32, depth=1)
    assert enc(torch.randn(1, 3, 32, 32)).shape == (1, 5, 384)
    reg = vit_timm(model_name="vit_tiny_patch16_224", img_size=32, depth=1, reg_tokens=2)
    assert reg(torch.randn(1, 3, 32, 32)).shape == (1, 5, 192)  # register tokens dropped: CLS + 4 patches
