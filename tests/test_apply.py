import numpy as np
import pytest

from vocalsep.apply import apply_chunked, array_reader, iter_chunked, n_segments


def identity(chunk):
    return {"a": chunk, "b": -chunk}


@pytest.mark.parametrize("length", [1, 99, 100, 101, 250, 1000, 1234])
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5])
@pytest.mark.parametrize("batch", [1, 3])
def test_identity_model_returns_input_exactly(length, overlap, batch):
    x = np.random.default_rng(length).standard_normal((2, length)).astype(np.float32)
    out = apply_chunked(identity, x, segment=100, overlap=overlap, batch=batch)
    assert np.array_equal(out["a"], x)
    assert np.array_equal(out["b"], -x)


def test_blocks_come_in_order_and_cover_the_track():
    x = np.arange(1000, dtype=np.float32)[None]
    starts, total = [], 0
    for start, block in iter_chunked(identity, array_reader(x), 1000, 128, 0.25):
        assert start == total
        starts.append(start)
        total += block["a"].shape[1]
    assert total == 1000 and len(starts) == n_segments(1000, 128, 0.25)


def test_chunks_see_real_neighbouring_audio():
    seen = []

    def record(chunks):
        seen.extend(chunks.copy())
        return {"a": chunks}

    x = np.arange(1, 321, dtype=np.float32)[None]
    apply_chunked(record, x, segment=100, overlap=0.5)
    assert np.array_equal(seen[1][0], np.arange(51, 151))  # the second chunk starts mid-first
    assert np.all(seen[-1][0, -10:] == 0)  # zeros only past the end of the track


def test_progress_is_reported_per_batch():
    calls = []
    apply_chunked(identity, np.zeros((1, 500), np.float32), 100, 0.25, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i + 1, len(calls)) for i in range(len(calls))] and len(calls) == n_segments(500, 100, 0.25)
    calls.clear()
    apply_chunked(identity, np.zeros((1, 500), np.float32), 100, 0.25, batch=4, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(4, 7), (7, 7)]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="overlap"):
        apply_chunked(identity, np.zeros((1, 10), np.float32), 4, overlap=1.0)
    with pytest.raises(ValueError, match="expected"):
        apply_chunked(lambda c: {"a": c[..., :2]}, np.zeros((1, 10), np.float32), 4)
