"""The U-Net mask network: shapes for any input size, a mask in [0, 1], save/load equality, learning."""
import numpy as np
import pytest
import torch

from conftest import song
from vocalsep.checkpoint import ModelBundle, load_model, save_model
from vocalsep.features import FeatureConfig
from vocalsep.models import build_model
from vocalsep.separator import Separator
from vocalsep.models.unet import MaskUNet


@pytest.mark.parametrize("frames,bands,depth", [(1, 20, 3), (37, 20, 3), (64, 33, 2), (5, 7, 4)])
def test_any_number_of_frames_and_bands_gives_a_mask_of_the_same_size(frames, bands, depth):
    torch.manual_seed(0)
    net = MaskUNet(n_bands=bands, channels=2, depth=depth).eval()
    with torch.no_grad():
        out = net(torch.randn(3, frames, bands))
    assert set(out) == {"mask"} and net.heads == ("mask",)
    assert out["mask"].shape == (3, frames, bands)
    assert float(out["mask"].min()) >= 0 and float(out["mask"].max()) <= 1


def test_frames_only_see_their_own_example_and_padding_does_not_leak_across_the_batch():
    torch.manual_seed(0)
    net = MaskUNet(n_bands=20, channels=2, depth=3).eval()
    x = torch.randn(2, 30, 20)
    both = net(x)["mask"]
    assert torch.allclose(both[1], net(x[1:])["mask"][0], atol=1e-6)


def test_bad_sizes_are_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="odd"):
        MaskUNet(kernel=4)
    with pytest.raises(ValueError, match="dropout"):
        MaskUNet(dropout=1.0)


def test_model_file_round_trip_keeps_outputs_bit_identical(tmp_path):
    torch.manual_seed(1)
    cfg = FeatureConfig(n_mels=20)
    net = build_model("unet", 20, channels=2, depth=2).eval()
    net.set_feature_stats(torch.randn(20), torch.rand(20) + 0.5)
    path = tmp_path / "unet.pt"
    save_model(path, ModelBundle(model=net, features=cfg, arch="unet", model_kwargs={"channels": 2, "depth": 2}))
    back = load_model(path)
    x = torch.randn(2, 25, 20)
    assert torch.equal(net(x)["mask"], back.model.eval()(x)["mask"])
    audio = song(1.0, 16000, 1)[0]
    a = Separator(back).separate(audio, 16000)
    b = Separator(load_model(path)).separate(audio, 16000)
    assert np.array_equal(a["vocals"], b["vocals"])


def test_it_learns_a_band_dependent_mask():
    """The target mask depends only on the band: a few Adam steps must get most bins right."""
    torch.manual_seed(0)
    net = MaskUNet(n_bands=16, channels=4, depth=2, dropout=0.0)
    target = (torch.arange(16) % 4 < 2).float().expand(4, 24, 16)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(60):
        x = torch.randn(4, 24, 16)
        loss = (net(x)["mask"] - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    acc = ((net(torch.randn(4, 24, 16))["mask"] > 0.5).float() == target).float().mean()
    assert acc > 0.9


def _trained_looking(net: MaskUNet) -> MaskUNet:
    """Random batch-norm parameters and statistics, so that a widening that misplaces one is seen."""
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_()
            m.bias.data.normal_()
    net.set_feature_stats(torch.randn(net.n_bands), torch.rand(net.n_bands) + 0.5)
    return net.eval()


@pytest.mark.parametrize("narrow,wide,depth", [(4, 7, 3), (2, 3, 2), (3, 3, 4)])
def test_a_wider_unet_started_from_a_narrower_one_computes_the_same_mask(narrow, wide, depth):
    torch.manual_seed(0)
    small = _trained_looking(MaskUNet(n_bands=20, channels=narrow, depth=depth))
    big = MaskUNet(n_bands=20, channels=wide, depth=depth)
    before = {k: v.clone() for k, v in big.state_dict().items()}
    big.load_narrower(small.state_dict(), narrow)
    big.eval()
    x = torch.randn(2, 37, 20)
    with torch.no_grad():
        assert torch.allclose(small(x)["mask"], big(x)["mask"], atol=1e-6)
    if wide > narrow:  # the new channels keep their fresh weights: the wide network can still learn more
        assert torch.equal(big.encoder[0][0].weight[narrow:], before["encoder.0.0.weight"][narrow:])
        assert not torch.equal(big.state_dict()["out.weight"], before["out.weight"])


def test_the_widened_channels_learn_from_the_first_step():
    torch.manual_seed(0)
    big = MaskUNet(n_bands=16, channels=4, depth=2)
    big.load_narrower(_trained_looking(MaskUNet(n_bands=16, channels=2, depth=2)).state_dict(), 2)
    big.train()
    opt = torch.optim.Adam(big.parameters(), lr=1e-2)
    x, target = torch.randn(4, 24, 16), (torch.arange(16) % 4 < 2).float().expand(4, 24, 16)
    first = big.encoder[0][0].weight[2:].detach().clone()
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy(big(x)["mask"], target).backward()
        opt.step()
    assert not torch.allclose(big.encoder[0][0].weight[2:], first)


def test_widening_refuses_a_network_of_another_shape():
    small = MaskUNet(n_bands=20, channels=4, depth=3)
    with pytest.raises(ValueError, match="widen from 1 to 6"):
        MaskUNet(n_bands=20, channels=6, depth=3).load_narrower(small.state_dict(), 8)
    with pytest.raises(ValueError, match="4-channel U-Net of this depth"):
        MaskUNet(n_bands=20, channels=6, depth=3).load_narrower(MaskUNet(n_bands=20, channels=5, depth=3).state_dict(), 4)
    with pytest.raises(ValueError, match="no encoder.3"):
        MaskUNet(n_bands=20, channels=6, depth=4).load_narrower(small.state_dict(), 4)


def test_bottleneck_blocks_start_as_the_identity_and_then_learn(tmp_path):
    """A U-Net with residual blocks on its bottleneck, started from a model file without them
    (``init_from``), computes the file's mask; a few steps move the blocks and change the mask; the
    file of the deeper network keeps its blocks."""
    from vocalsep.train import init_from_file

    torch.manual_seed(0)
    plain = _trained_looking(MaskUNet(n_bands=16, channels=2, depth=2)).eval()
    src = tmp_path / "plain.pt"
    save_model(src, ModelBundle(model=plain, features=FeatureConfig(n_mels=16), arch="unet",
                                model_kwargs={"channels": 2, "depth": 2}))
    deep = build_model("unet", 16, channels=2, depth=2, blocks=2)
    init_from_file(deep, src)
    deep.eval()
    x = torch.randn(3, 24, 16)
    with torch.no_grad():
        assert torch.allclose(deep(x)["mask"], plain(x)["mask"], atol=1e-6)
    deep.train()
    opt = torch.optim.Adam(deep.parameters(), lr=1e-2)
    target = (torch.arange(16) % 4 < 2).float().expand(3, 24, 16)
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy(deep(x)["mask"], target).backward()
        opt.step()
    deep.eval()
    assert float(deep.bottleneck[1].body[-1].weight.detach().abs().max()) > 0
    with torch.no_grad():
        assert not torch.allclose(deep(x)["mask"], plain(x)["mask"], atol=1e-4)
    out = tmp_path / "deep.pt"
    save_model(out, ModelBundle(model=deep, features=FeatureConfig(n_mels=16), arch="unet",
                                model_kwargs={"channels": 2, "depth": 2, "blocks": 2}))
    again = load_model(out).model.eval()
    with torch.no_grad():
        assert torch.equal(again(x)["mask"], deep(x)["mask"])
    from vocalsep.export import _Heads, export_onnx, parity  # and the bundled form runs it the same
    onnx_file = export_onnx(load_model(out), tmp_path / "deep.onnx")
    assert parity(_Heads(again, ("mask",)), onnx_file, 16, seed=3) < 1e-4
    with pytest.raises(ValueError, match="blocks must be 0 or more"):
        MaskUNet(n_bands=16, channels=2, depth=2, blocks=-1)
