import pytest
import torch

from vocalsep.models import DeepClusteringBLSTM, MaskRegression, SequenceBNBLSTM, build_model


def reference_layer(layer: SequenceBNBLSTM, x: torch.Tensor, use_batch_stats: bool) -> torch.Tensor:
    """Direct implementation: BN over batch and time of W_ih x, then an explicit LSTM loop per direction."""
    H = layer.hidden_size
    z = x @ layer.weight_ih.T  # (B, T, 8H)
    if use_batch_stats:
        mean, var = z.mean((0, 1)), z.var((0, 1), unbiased=False)
    else:
        mean, var = layer.running_mean, layer.running_var
    z = (z - mean) / torch.sqrt(var + layer.eps) * layer.bn_weight + layer.bias
    outs = []
    for d in range(2):
        zd = z[..., d * 4 * H:(d + 1) * 4 * H]
        if d == 1:
            zd = zd.flip(1)
        h = torch.zeros(x.shape[0], H, dtype=x.dtype)
        c = torch.zeros_like(h)
        hs = []
        for t in range(x.shape[1]):
            g = zd[:, t] + h @ layer.weight_hh[d].T
            i, f, gg, o = g.chunk(4, -1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
            h = torch.sigmoid(o) * torch.tanh(c)
            hs.append(h)
        hd = torch.stack(hs, 1)
        outs.append(hd.flip(1) if d == 1 else hd)
    return torch.cat(outs, -1)


@pytest.mark.parametrize("training", [True, False])
def test_sequence_bn_lstm_matches_direct_implementation(training):
    torch.manual_seed(0)
    layer = SequenceBNBLSTM(6, 5).double()
    with torch.no_grad():
        layer.bn_weight.uniform_(0.5, 1.5)
        layer.running_mean.normal_()
        layer.running_var.uniform_(0.5, 2.0)
    layer.train(training)
    x = torch.randn(3, 11, 6, dtype=torch.float64) * 2 + 1
    ref = reference_layer(layer, x, use_batch_stats=training)
    assert torch.allclose(layer(x), ref, atol=1e-10)


def test_sequence_bn_statistics_are_over_batch_and_time():
    torch.manual_seed(0)
    layer = SequenceBNBLSTM(4, 3).double().train()
    x = torch.randn(5, 20, 4, dtype=torch.float64) * 3 + 2
    w, b = layer.normalized_input_weights(x)
    z = x @ w.T + b - layer.bias  # the normalised input-to-hidden product (shift removed)
    assert torch.allclose(z.mean((0, 1)), torch.zeros(24, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(z.var((0, 1), unbiased=False), torch.ones(24, dtype=torch.float64), atol=1e-4)
    # running statistics moved towards the batch statistics of W x
    wx = x @ layer.weight_ih.T
    expected = 0.9 * torch.zeros(24, dtype=torch.float64) + 0.1 * wx.mean((0, 1))
    assert torch.allclose(layer.running_mean, expected, atol=1e-9)


def test_embeddings_are_unit_norm_with_expected_shape():
    m = build_model("mirex2016", 12, hidden=6, layers=2, emb_dim=5).eval()
    out = m(torch.randn(2, 9, 12))
    assert m.heads == ("embedding",) and set(out) == {"embedding"}
    v = out["embedding"]
    assert v.shape == (2, 9, 12, 5)
    assert torch.allclose(v.norm(dim=-1), torch.ones(2, 9, 12), atol=1e-5)


def test_chimera_has_both_heads_on_one_blstm():
    m = build_model("chimera", 12, hidden=6, layers=2, emb_dim=5).eval()
    out = m(torch.randn(2, 9, 12))
    assert m.heads == ("embedding", "mask")
    assert out["embedding"].shape == (2, 9, 12, 5) and out["mask"].shape == (2, 9, 12)
    assert ((out["mask"] > 0) & (out["mask"] < 1)).all()
    plain = build_model("mirex2016", 12, hidden=6, layers=2, emb_dim=5)
    extra = set(m.state_dict()) - set(plain.state_dict())
    assert extra == {"mask.weight", "mask.bias"}  # the same network plus one linear layer


@pytest.mark.parametrize("arch,kind", [("mask-ff", "ff"), ("mask-lstm", "lstm"), ("mask-blstm", "blstm")])
def test_mask_regression_baselines(arch, kind):
    m = build_model(arch, 12).eval()
    assert isinstance(m, MaskRegression) and m.kind == kind and m.heads == ("mask",)
    x = torch.randn(2, 9, 12)
    mask = m(x)["mask"]
    assert mask.shape == (2, 9, 12) and ((mask > 0) & (mask < 1)).all()
    # the sizes of the seed baselines: 2 hidden layers / 2 LSTM layers of 300 units
    if kind == "ff":
        assert [mod.out_features for mod in m.body if isinstance(mod, torch.nn.Linear)] == [300, 300]
    else:
        assert m.body.hidden_size == 300 and m.body.num_layers == 2 and m.body.bidirectional == (kind == "blstm")
    # causality: the forward LSTM's output at frame t ignores later frames; the others do not
    y = x.clone()
    y[:, 6:] += 1.0
    same_past = torch.allclose(m(y)["mask"][:, :6], mask[:, :6])
    assert same_past == (kind in ("ff", "lstm"))


def test_feed_forward_context_sees_neighbouring_frames():
    m = MaskRegression(12, "ff", hidden=8, context=2).eval()
    x = torch.randn(1, 9, 12)
    y = x.clone()
    y[:, 4] += 1.0
    changed = (m(y)["mask"] - m(x)["mask"]).abs().amax(-1)[0] > 0
    assert changed.tolist() == [False, False, True, True, True, True, True, False, False]


def test_mirex2016_defaults_are_the_papers():
    m = build_model("mirex2016", 150)
    assert isinstance(m, DeepClusteringBLSTM)
    assert len(m.rnn) == 4 and m.rnn[0].hidden_size == 500 and m.emb_dim == 20
    assert m.dropout.p == 0.2


def test_bad_input_shape_and_unknown_arch():
    m = build_model("mirex2016", 12, hidden=4, layers=1, emb_dim=3)
    with pytest.raises(ValueError, match="expected"):
        m(torch.randn(2, 9, 13))
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("nope", 12)


def _bn_rank(rank, world, init_file, out_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(0)
    layer = SequenceBNBLSTM(4, 3).double().train()
    x = torch.randn(4, 10, 4, dtype=torch.float64) * 2 + 1
    w, b = layer.normalized_input_weights(x[rank * 2:(rank + 1) * 2])
    torch.save({"w": w.detach(), "b": b.detach()}, f"{out_dir}/bn{rank}.pt")
    # tear down only when both ranks are done with every group (the statistics use a group of their own)
    from vocalsep import distributed

    dist.barrier()
    distributed.STATS_GROUPS.clear()
    dist.destroy_process_group()


def test_sequence_bn_statistics_span_all_ranks(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_bn_rank, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    torch.manual_seed(0)
    layer = SequenceBNBLSTM(4, 3).double().train()
    x = torch.randn(4, 10, 4, dtype=torch.float64) * 2 + 1
    w, b = layer.normalized_input_weights(x)  # the whole batch in one process
    for r in range(2):
        got = torch.load(tmp_path / f"bn{r}.pt", weights_only=True)
        assert torch.allclose(got["w"], w, atol=1e-9) and torch.allclose(got["b"], b, atol=1e-9)


def test_inference_with_directions_on_two_threads_matches_the_fused_kernel(monkeypatch):
    import vocalsep.models.blstm as mod

    torch.manual_seed(0)
    m = build_model("mirex2016", 12, hidden=6, layers=2, emb_dim=5).eval()
    x = torch.randn(3, 17, 12)
    with torch.inference_mode():
        parallel = m(x)["embedding"]
    monkeypatch.setattr(mod, "PARALLEL_DIRECTIONS", False)
    with torch.inference_mode():
        fused = m(x)["embedding"]
    assert torch.allclose(parallel, fused, atol=1e-6)
    # with gradients enabled (training, or eval under autograd) the fused kernel is always used
    monkeypatch.setattr(mod, "PARALLEL_DIRECTIONS", True)
    y = m(x)["embedding"]
    assert y.requires_grad and torch.allclose(y, fused, atol=1e-6)


def test_only_the_heads_asked_for_are_computed():
    m = build_model("chimera", 12, hidden=6, layers=1, emb_dim=5).eval()
    x = torch.randn(2, 9, 12)
    full = m(x)
    mask_only = m(x, heads=("mask",))
    assert set(mask_only) == {"mask"} and torch.equal(mask_only["mask"], full["mask"])
    assert set(m(x, heads=("embedding",))) == {"embedding"}
