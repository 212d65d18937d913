"""From embeddings to a voice mask: k-means++ (or nearest stored centroid) and the voice rule.

Deep clustering is permutation-free: k-means labels are arbitrary per call. The model file stores a
*voice rule*: the mean unit embedding of voice-dominated and of accompaniment-dominated bins,
measured on training mixtures. The cluster whose centroid lies further along the direction
``vocals - accompaniment`` is the voice; applied per chunk, this labels every chunk of a track
consistently.
"""
from __future__ import annotations

import numpy as np

METHODS = ("kmeans", "prototype")


class ClusterError(ValueError):
    """Clustering cannot be done as asked (e.g. a model without a voice rule)."""


def voice_direction(rule: dict | None) -> np.ndarray:
    """Unit vector pointing from the accompaniment centroid to the voice centroid."""
    if not rule or "vocals" not in rule or "accompaniment" not in rule:
        raise ClusterError("this model file has no voice rule, so the voice cluster cannot be "
                           "identified; retrain it with `vocalsep train` (which measures one)")
    d = np.asarray(rule["vocals"], np.float64) - np.asarray(rule["accompaniment"], np.float64)
    n = np.linalg.norm(d)
    if not np.isfinite(n) or n < 1e-8:
        raise ClusterError("the model's voice rule is degenerate (voice and accompaniment centroids coincide)")
    return d / n


def pick_voice_cluster(centroids: np.ndarray, direction: np.ndarray) -> int:
    """Index of the centroid furthest along ``direction``. centroids: (k, emb_dim)."""
    return int(np.argmax(centroids @ direction))


def kmeans(points: np.ndarray, k: int, seed: int = 0, n_init: int = 2, max_iter: int = 100):
    """k-means++ with explicit ``n_init`` and ``random_state``; returns (centroids (k, D), inertia)."""
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, init="k-means++", n_init=n_init, max_iter=max_iter, random_state=seed)
    km.fit(points)
    return km.cluster_centers_, km.inertia_


def fit_centroids(points: np.ndarray, seed: int = 0, n_init: int = 2,
                  max_fit_points: int | None = None) -> np.ndarray | None:
    """Two k-means++ centroids (2, D) of ``points``, fitted on a seeded sample of at most
    ``max_fit_points``; None when there is nothing to split (fewer than 2 points, or all equal)."""
    if max_fit_points is not None and len(points) > max_fit_points:
        points = points[np.random.default_rng(seed).choice(len(points), max_fit_points, replace=False)]
    if len(points) < 2 or np.ptp(points, axis=0).max() < 1e-6:
        return None
    return kmeans(points, 2, seed=seed, n_init=n_init)[0].astype(np.float32)


def voice_mask(embedding: np.ndarray, loud: np.ndarray, rule: dict | None, method: str = "kmeans",
               seed: int = 0, n_init: int = 2, max_fit_points: int | None = None) -> np.ndarray:
    """Binary voice mask, (frames, bands) float32.

    Args:
        embedding: (frames, bands, emb_dim) unit-norm embeddings of one chunk.
        loud: (frames, bands) bool, the bins the model was trained on (within the silence threshold
            of the chunk's loudest bin). Clusters are fitted on these only -- the embeddings of
            silent bins are untrained -- and every bin is then assigned to its nearest centroid.
        rule: the model's voice rule.
        method: ``"kmeans"`` (the paper: k-means++ with k=2, voice chosen by the rule) or
            ``"prototype"`` (each bin goes to the nearer of the two stored centroids).
        max_fit_points: fit k-means on at most this many loud bins, drawn at random with ``seed``
            (None: all of them, as the paper does); assignment still covers every bin.
    """
    direction = voice_direction(rule)
    frames, bands, dim = embedding.shape
    flat = embedding.reshape(-1, dim).astype(np.float32, copy=False)
    if method == "prototype":
        cents = np.stack([np.asarray(rule["vocals"]), np.asarray(rule["accompaniment"])]).astype(np.float32)
        voice = 0
    elif method == "kmeans":
        cents = fit_centroids(flat[loud.reshape(-1)], seed, n_init, max_fit_points)
        if cents is None:
            return np.zeros((frames, bands), np.float32)  # silence, or nothing to split
        voice = pick_voice_cluster(cents, direction)
    else:
        raise ClusterError(f"unknown clustering method {method!r}; choose one of {', '.join(METHODS)}")
    nearest = (flat @ cents.T).argmax(1)  # unit-norm embeddings: max dot product = nearest centroid
    return (nearest == voice).reshape(frames, bands).astype(np.float32)
