"""The one chunked, overlap-added, bounded-memory loop that every long input goes through.

A track is cut into segments of ``segment`` samples that overlap by ``overlap * segment``; each is
read with its real neighbouring audio (zeros only past the ends of the track), processed, weighted
by a triangular window and overlap-added; dividing by the summed weights gives the output. Finished
samples are handed out as soon as no later segment touches them, so memory is a few segments
whatever the track's length, and outputs can be streamed to disk.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

ChunkFn = Callable[[np.ndarray], dict[str, np.ndarray]]  # (batch, channels, segment) -> {stem: same shape}


def triangle_weights(n: int) -> np.ndarray:
    """Positive triangular cross-fade weights of length ``n`` (peak in the middle)."""
    half = np.arange(1, n // 2 + 1, dtype=np.float64)
    return np.concatenate([half, np.arange(n - n // 2, 0, -1, dtype=np.float64)])


def n_segments(length: int, segment: int, overlap: float) -> int:
    stride = _stride(segment, overlap)
    return 1 if length <= segment else 1 + -(-(length - segment) // stride)


def _stride(segment: int, overlap: float) -> int:
    if segment < 2:
        raise ValueError(f"segment must be at least 2 samples, got {segment}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    return max(1, int(round(segment * (1.0 - overlap))))


def iter_chunked(fn: ChunkFn, read: Callable[[int, int], np.ndarray], length: int, segment: int,
                 overlap: float = 0.25, progress: Callable[[int, int], None] | None = None,
                 batch: int = 1) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Yield ``(start, {stem: (channels, n) float32})`` blocks covering ``[0, length)`` in order.

    Args:
        fn: maps a batch of segments, (batch, channels, segment) float32, to
            ``{stem: (batch, channels, segment)}``.
        read: ``read(start, stop)`` returns the input's samples in ``[start, stop)`` as
            (channels, stop - start), zero-padded past the end.
        length: number of samples of the input.
        segment: segment length in samples; ``overlap``: fraction shared by neighbouring segments.
        progress: called as ``progress(done, total)`` after each batch of segments.
        batch: segments handed to ``fn`` at once (memory grows with it, not with ``length``).
    """
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    stride = _stride(segment, overlap)
    total = n_segments(length, segment, overlap)
    w = triangle_weights(segment)
    acc: dict[str, np.ndarray] = {}
    wsum = np.zeros(segment)
    for first in range(0, total, batch):
        idx = range(first, min(first + batch, total))
        out = fn(np.stack([read(i * stride, i * stride + segment) for i in idx]))
        for name, y in out.items():
            if y.shape[0] != len(idx) or y.shape[-1] != segment:
                raise ValueError(f"chunk function returned shape {y.shape} for stem {name!r}, "
                                 f"expected ({len(idx)}, channels, {segment})")
        for j, i in enumerate(idx):
            start = i * stride
            for name, y in out.items():
                if name not in acc:
                    acc[name] = np.zeros((y.shape[1], segment))
                acc[name] += y[j] * w
            wsum += w
            last = i == total - 1
            done = min(length, start + (segment if last else stride)) - start
            yield start, {k: (a[:, :done] / wsum[:done]).astype(np.float32) for k, a in acc.items()}
            if not last:
                for a in acc.values():
                    a[:, :-stride] = a[:, stride:]
                    a[:, -stride:] = 0.0
                wsum[:-stride] = wsum[stride:]
                wsum[-stride:] = 0.0
        if progress is not None:
            progress(idx.stop, total)


def array_reader(audio: np.ndarray) -> Callable[[int, int], np.ndarray]:
    """``read(start, stop)`` over an in-memory (channels, samples) array, zero-padded at the end."""
    def read(start: int, stop: int) -> np.ndarray:
        seg = audio[:, start:stop]
        if seg.shape[1] < stop - start:
            seg = np.pad(seg, ((0, 0), (0, stop - start - seg.shape[1])))
        return np.ascontiguousarray(seg, np.float32)
    return read


def apply_chunked(fn: ChunkFn, audio: np.ndarray, segment: int, overlap: float = 0.25,
                  progress: Callable[[int, int], None] | None = None, batch: int = 1) -> dict[str, np.ndarray]:
    """Run ``fn`` (see :func:`iter_chunked`) over an in-memory (channels, samples) array; full-length stems out."""
    length = audio.shape[-1]
    outputs: dict[str, np.ndarray] = {}
    for start, block in iter_chunked(fn, array_reader(audio), length, segment, overlap, progress, batch):
        for name, y in block.items():
            if name not in outputs:
                outputs[name] = np.empty((y.shape[0], length), np.float32)
            outputs[name][:, start:start + y.shape[1]] = y
    return outputs
