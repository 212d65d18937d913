"""Training objectives."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def deep_clustering_loss(embedding: torch.Tensor, labels: torch.Tensor, n_sources: int,
                         weights: torch.Tensor | None = None) -> torch.Tensor:
    """Deep clustering loss ``||V V^T - Y Y^T||_F^2`` in its low-rank form.

    ``||V^T V||^2 - 2 ||V^T Y||^2 + ||Y^T Y||^2`` costs O(N D^2) instead of O(N^2) for N bins.

    Args:
        embedding: (batch, ..., emb_dim) embeddings, one per time-frequency bin.
        labels: (batch, ...) integer index of the dominant source of each bin, in ``[0, n_sources)``.
            Given explicitly so that a chunk where one source is absent still works.
        n_sources: number of sources (columns of Y).
        weights: optional (batch, ...) non-negative bin weights (e.g. 0 for silent bins); each bin's
            rows of V and Y are scaled by the square root of its weight.

    Returns the mean over the batch of the loss divided by the squared total weight
    (the number of bins when unweighted), so it lies in [0, 1] for unit-norm embeddings.
    """
    b, d = embedding.shape[0], embedding.shape[-1]
    v = embedding.reshape(b, -1, d)
    lab = labels.reshape(b, -1)
    if v.shape[1] != lab.shape[1]:
        raise ValueError(f"{v.shape[1]} embeddings per example but {lab.shape[1]} labels")
    if lab.numel() and (int(lab.min()) < 0 or int(lab.max()) >= n_sources):
        raise ValueError(f"labels must lie in [0, {n_sources}); got [{int(lab.min())}, {int(lab.max())}]")
    y = F.one_hot(lab, n_sources).to(v.dtype)
    if weights is None:
        norm = torch.full((b,), float(v.shape[1]), dtype=v.dtype, device=v.device)
    else:
        w = weights.reshape(b, -1, 1).to(v.dtype)
        v, y = v * w.sqrt(), y * w.sqrt()
        norm = w.sum((1, 2))
    vtv = v.transpose(1, 2) @ v
    vty = v.transpose(1, 2) @ y
    yty = y.transpose(1, 2) @ y
    loss = vtv.square().sum((1, 2)) - 2 * vty.square().sum((1, 2)) + yty.square().sum((1, 2))
    return (loss / norm.square().clamp_min(1.0)).mean()


def mask_loss(mask: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None,
              target: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error between a predicted voice mask and its target: the ideal binary mask
    (voice = label 0), or ``target`` when given (e.g. an ideal ratio mask, in [0, 1]).

    mask: (batch, ...) in [0, 1]; labels and optional weights as in :func:`deep_clustering_loss`.
    """
    target = (labels == 0).to(mask.dtype) if target is None else target.to(mask.dtype)
    err = (mask - target).square()
    if weights is None:
        return err.mean()
    w = weights.to(mask.dtype)
    return (err * w).sum() / w.sum().clamp_min(1.0)


def objective(outputs: dict[str, torch.Tensor], labels: torch.Tensor, n_sources: int,
              weights: torch.Tensor | None = None, mask_weight: float = 1.0,
              mask_target: torch.Tensor | None = None) -> torch.Tensor:
    """The training loss of a network's heads: the deep clustering loss on ``embedding``, plus
    ``mask_weight`` times :func:`mask_loss` on ``mask`` (Chimera when both are present), against
    ``mask_target`` when given, else the ideal binary mask of ``labels``."""
    if not outputs:
        raise ValueError("the network returned no heads")
    total = 0.0
    if "embedding" in outputs:
        total = total + deep_clustering_loss(outputs["embedding"], labels, n_sources, weights)
    if "mask" in outputs:
        total = total + mask_weight * mask_loss(outputs["mask"], labels, weights, mask_target)
    return total
