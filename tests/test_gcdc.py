"""Gated convolutional deep clustering (vocalsep.gcdc): shapes, receptive fields, skips, gradients."""
from __future__ import annotations

import pytest
import torch

from vocalsep.models.gcdc import VARIANTS, GatedConvDC

TINY = dict(channels=4, emb_dim=3)


def tiny(variant: str, layers: int = 5, n_bands: int = 12, seed: int = 0, **kw) -> GatedConvDC:
    torch.manual_seed(seed)
    return GatedConvDC(n_bands=n_bands, variant=variant, layers=layers, **{**TINY, **kw}).eval()


def changed(model: GatedConvDC, x: torch.Tensor, index: tuple, axis: int) -> list[int]:
    """Positions along ``axis`` (1: frames, 2: bands) of the embedding that move when ``x[index]`` does."""
    with torch.no_grad():
        y0 = model(x)["embedding"]
        x2 = x.clone()
        x2[index] += 3.0
        diff = (model(x2)["embedding"] - y0).abs()
    other = tuple(a for a in range(diff.dim()) if a != axis)
    return diff.amax(dim=other).gt(1e-6).nonzero().flatten().tolist()


@pytest.mark.parametrize("layers", [5, 8, 14])
@pytest.mark.parametrize("variant", VARIANTS)
def test_shape_and_unit_norm_for_odd_sizes(variant, layers):
    model = tiny(variant, layers, n_bands=13)
    out = model(torch.randn(2, 7, 13))
    assert set(out) == set(model.heads) == {"embedding"}
    assert model.emb_dim == 3 and model.variant == variant
    assert out["embedding"].shape == (2, 7, 13, 3)
    torch.testing.assert_close(out["embedding"].norm(dim=-1), torch.ones(2, 7, 13))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("frames", [1, 2])
def test_very_short_inputs_keep_their_frames(variant, frames):
    assert tiny(variant, 8, n_bands=5)(torch.randn(1, frames, 5))["embedding"].shape == (1, frames, 5, 3)


def test_defaults():
    model = GatedConvDC()
    assert (model.n_bands, model.variant, model.emb_dim, model.dilations) == (150, "2d-dilated", 20, (1, 2, 4, 8, 16))
    assert GatedConvDC(variant="1d-dilated", layers=8).dilations == (1, 2, 4, 8, 16, 1, 2, 4)
    assert GatedConvDC(variant="1d", layers=8).dilations == (1,) * 8


@pytest.mark.parametrize("variant, reach", [("1d", 5), ("1d-dilated", 31), ("2d-bottleneck", 5),
                                            ("2d-bottleneck-skip", 5), ("2d-dilated", 31)])
def test_time_receptive_field(variant, reach):
    # five 3-wide layers: 5 frames each side undilated, 1 + 2 + 4 + 8 + 16 = 31 dilated; never further
    x = torch.randn(1, 40, 12)
    assert changed(tiny(variant), x, (0, 0), axis=1) == list(range(reach + 1))
    assert changed(tiny(variant), x, (0, 39), axis=1) == list(range(39 - reach, 40))


def test_dilation_widens_the_1d_receptive_field():
    x = torch.randn(1, 40, 12)
    plain, dilated = (changed(tiny(v), x, (0, 20), axis=1) for v in ("1d", "1d-dilated"))
    assert plain == list(range(15, 26))
    assert len(dilated) > len(plain) and set(plain) < set(dilated)


def test_2d_convolutions_are_local_in_frequency():
    # two dilated layers (dilation 1, 2) reach 3 bands: checks the (frames, bands) axes are not swapped
    assert changed(tiny("2d-dilated", layers=2), torch.randn(1, 9, 12), (0, 4, 0), axis=2) == [0, 1, 2, 3]
    # 1D variants see every band at once
    assert changed(tiny("1d", layers=2), torch.randn(1, 9, 12), (0, 4, 0), axis=2) == list(range(12))


def test_batch_items_are_independent():
    for variant in VARIANTS:
        x = torch.randn(2, 6, 12)
        assert changed(tiny(variant), x, (1, 3, 5), axis=0) == [1]


@pytest.mark.parametrize("layers", [5, 8])
def test_skip_connections_are_used(layers):
    n_bands = 13 if layers == 5 else 12
    skip, plain = tiny("2d-bottleneck-skip", layers, n_bands), tiny("2d-bottleneck", layers, n_bands, seed=1)
    shapes = {n: p.shape for n, p in plain.named_parameters()}
    wider = [n for n, p in skip.named_parameters() if p.shape != shapes[n]]
    assert wider and all(n.startswith("decoder.") and n.endswith("conv.weight") for n in wider)
    assert sum(p.numel() for p in skip.parameters()) > sum(p.numel() for p in plain.parameters())
    x = torch.randn(2, 7, n_bands)
    with_skips = skip(x)["embedding"]
    # with the weights that read the skipped channels set to zero, the skip network is the plain one
    with torch.no_grad():
        for name, p in skip.named_parameters():
            if name in wider:
                p[4:] = 0  # ConvTranspose2d weight: (in = [decoder path, skip], out, kh, kw)
            plain.get_parameter(name).copy_(p[:4] if name in wider else p)
    without = skip(x)["embedding"]
    torch.testing.assert_close(without, plain(x)["embedding"])
    assert not torch.allclose(without, with_skips, atol=1e-4)


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradient_reaches_every_parameter(variant):
    model = tiny(variant, 5, n_bands=13).train()
    x, target = torch.randn(2, 7, 13), torch.randn(2, 7, 13, 3)
    ((model(x)["embedding"] - target) ** 2).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("variant", VARIANTS)
def test_eval_is_deterministic_and_dropout_acts_in_training(variant):
    model = tiny(variant, dropout=0.5)
    x = torch.randn(2, 7, 12)
    torch.testing.assert_close(model(x)["embedding"], model(x)["embedding"], rtol=0, atol=0)
    model.train()
    assert not torch.equal(model(x)["embedding"], model(x)["embedding"])


def test_feature_stats_are_applied():
    model = tiny("1d")
    x = torch.randn(1, 5, 12)
    mean, std = torch.randn(12), torch.rand(12) + 0.5
    model.set_feature_stats(mean, std)
    reference = tiny("1d")((x - mean) / std)["embedding"]
    torch.testing.assert_close(model(x)["embedding"], reference)


def test_unknown_variant_and_bad_sizes_raise():
    with pytest.raises(ValueError, match="2d-bottleneck-skip.*1d-dilated"):
        GatedConvDC(variant="3d")
    with pytest.raises(ValueError):
        GatedConvDC(layers=0)
    with pytest.raises(ValueError):
        GatedConvDC(dropout=1.0)


def test_wrong_band_count_raises():
    model = tiny("2d-dilated")
    with pytest.raises(ValueError, match="expected"):
        model(torch.randn(1, 5, 13))
    with pytest.raises(ValueError, match="expected"):
        model(torch.randn(5, 12))
