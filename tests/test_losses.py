import pytest
import torch
import torch.nn.functional as F

from vocalsep.losses import deep_clustering_loss


def naive(v, labels, n_sources, weights=None):
    b = v.shape[0]
    out = []
    for i in range(b):
        vi = v[i].reshape(-1, v.shape[-1])
        yi = F.one_hot(labels[i].reshape(-1), n_sources).to(vi)
        w = torch.ones(vi.shape[0]) if weights is None else weights[i].reshape(-1)
        diff = vi @ vi.T - yi @ yi.T
        out.append((w[:, None] * w[None, :] * diff ** 2).sum() / w.sum() ** 2)
    return torch.stack(out).mean()


@pytest.mark.parametrize("n_sources", [2, 3])
def test_low_rank_equals_naive(n_sources):
    torch.manual_seed(0)
    v = F.normalize(torch.randn(2, 5, 7, 4, dtype=torch.float64), dim=-1)
    labels = torch.randint(0, n_sources, (2, 5, 7))
    w = (torch.rand(2, 5, 7) > 0.3).double()
    assert torch.allclose(deep_clustering_loss(v, labels, n_sources), naive(v, labels, n_sources))
    assert torch.allclose(deep_clustering_loss(v, labels, n_sources, w), naive(v, labels, n_sources, w))


def test_single_source_present_is_finite_and_differentiable():
    v = F.normalize(torch.randn(1, 10, 6, 3), dim=-1).requires_grad_()
    labels = torch.zeros(1, 10, 6, dtype=torch.long)  # a chunk with no voice at all
    loss = deep_clustering_loss(v, labels, 2)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(v.grad).all()


def test_perfect_embedding_has_zero_loss():
    labels = torch.randint(0, 2, (2, 8, 5))
    v = F.one_hot(labels, 2).float()
    assert deep_clustering_loss(v, labels, 2).item() == pytest.approx(0.0, abs=1e-6)


def test_all_silent_weights_give_zero_not_nan():
    v = F.normalize(torch.randn(1, 4, 4, 3), dim=-1)
    loss = deep_clustering_loss(v, torch.zeros(1, 4, 4, dtype=torch.long), 2, torch.zeros(1, 4, 4))
    assert loss.item() == 0.0


def test_labels_out_of_range_are_refused():
    v = F.normalize(torch.randn(1, 4, 3), dim=-1)
    with pytest.raises(ValueError, match="labels must lie"):
        deep_clustering_loss(v, torch.full((1, 4), 2), 2)


def test_mask_loss_and_chimera_objective():
    from vocalsep.losses import mask_loss, objective

    labels = torch.tensor([[0, 1, 1, 0]])
    perfect = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    assert mask_loss(perfect, labels) == 0
    assert torch.isclose(mask_loss(torch.full((1, 4), 0.5), labels), torch.tensor(0.25))
    w = torch.tensor([[1.0, 0.0, 0.0, 0.0]])  # only the first bin counts
    assert mask_loss(torch.tensor([[0.0, 0.0, 0.0, 0.0]]), labels, w) == 1.0
    emb = torch.nn.functional.normalize(torch.randn(1, 4, 3), dim=-1)
    dc = deep_clustering_loss(emb, labels, 2)
    both = objective({"embedding": emb, "mask": torch.full((1, 4), 0.5)}, labels, 2, mask_weight=2.0)
    assert torch.isclose(both, dc + 0.5)
    assert torch.isclose(objective({"embedding": emb}, labels, 2), dc)
    with pytest.raises(ValueError, match="no heads"):
        objective({}, labels, 2)


def test_mask_loss_against_a_given_target():
    from vocalsep.losses import mask_loss, objective

    labels = torch.tensor([[0, 1, 0, 1]])
    ratio = torch.tensor([[0.8, 0.3, 0.6, 0.0]])
    assert mask_loss(ratio, labels, target=ratio) == 0
    assert torch.isclose(mask_loss(torch.full((1, 4), 0.5), labels, target=ratio),
                         ((0.5 - ratio) ** 2).mean())
    assert torch.isclose(objective({"mask": ratio}, labels, 2, mask_target=ratio), torch.tensor(0.0))
