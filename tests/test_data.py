import numpy as np
import pytest

from vocalsep.data import (Clip, RemixConfig, RemixSampler, _lowpass, _random_eq, _reverb, formant_shift, pitch_shift, speed_change,
                           time_stretch)


def clips(n=3, length=8000, seed=0):
    rng = np.random.default_rng(seed)
    return [Clip(f"c{i}", rng.standard_normal(length).astype(np.float32),
                 rng.standard_normal(length).astype(np.float32)) for i in range(n)]


def test_sampler_is_reproducible_and_resumable():
    a = RemixSampler(clips(), 1000, seed=3)
    b = RemixSampler(clips(), 1000, seed=3)
    first = a.sample(4)
    assert all(np.array_equal(x, y) for x, y in zip(first, b.sample(4), strict=True))
    state = a.state()
    nxt = a.sample(4)
    b.set_state(state)
    assert all(np.array_equal(x, y) for x, y in zip(nxt, b.sample(4), strict=True))


def test_augmentation_off_keeps_the_random_stream():
    plain = RemixSampler(clips(), 1000, RemixConfig(), seed=1).sample(6)
    zero = RemixSampler(clips(), 1000, RemixConfig(eq_prob=0.0, lowpass_prob=0.0, eq_db=12.0,
                                                                  speed_prob=0.0, speed_semitones=7.0,
                                                                  layer_prob=0.0, reverb_prob=0.0,
                                                                  reverb_seconds=(1.0, 3.0), pitch_prob=0.0,
                                                                  pitch_semitones=9.0, pool_prob=0.0), seed=1).sample(6)
    assert all(np.array_equal(x, y) for x, y in zip(plain, zero, strict=True))
    aug = RemixSampler(clips(), 1000, RemixConfig(eq_prob=1.0, lowpass_prob=1.0), seed=1).sample(6)
    assert not np.allclose(aug[0], plain[0])
    assert all(np.isfinite(x).all() and x.dtype == np.float32 for x in aug)


def test_random_eq_stays_within_its_range_and_lowpass_removes_the_top():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(16000).astype(np.float32)
    y = _random_eq(x, np.random.default_rng(5), 6.0)
    gain_db = 20 * np.log10(np.abs(np.fft.rfft(y))[1:] / np.abs(np.fft.rfft(x))[1:])
    assert np.abs(gain_db).max() <= 12.0 + 1e-3  # tilt and peak, each within +-6 dB
    assert np.abs(gain_db).max() > 0.1
    z = _lowpass(x, 0.5)
    spec = np.abs(np.fft.rfft(z))
    n = len(spec)
    assert spec[int(0.72 * n):].max() < 1e-3  # above half an octave past the cutoff: nothing left
    assert np.allclose(spec[: int(0.45 * n)], np.abs(np.fft.rfft(x))[: int(0.45 * n)], rtol=1e-3)


def test_reverb_leaves_a_decaying_tail_at_the_drawn_level():
    x = np.zeros(32000, np.float32)
    x[1000] = 1.0  # a click, then silence
    y = _reverb(x, np.random.default_rng(3), (0.5, 0.5))
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.abs(y[:1000]).max() < 1e-6 and y[1000] > 0.9  # the dry click is kept; nothing before it
    tail = y[1001:]
    wet_db = 10 * np.log10(np.sum(tail.astype(np.float64) ** 2))  # against the click's energy 1
    assert -15.5 <= wet_db <= -2.5
    early, late = np.sum(tail[1000:2000] ** 2), np.sum(tail[6000:7000] ** 2)  # 0.06-0.13 s, 0.38-0.44 s
    assert late < early / 30  # RT60 0.5 s: about 38 dB lower 0.32 s later
    sampler = RemixSampler(clips(), 1000, RemixConfig(reverb_prob=1.0, original_pair_prob=1.0,
                                                      silent_voice_prob=0.0), seed=1)
    plain = RemixSampler(clips(), 1000, RemixConfig(original_pair_prob=1.0, silent_voice_prob=0.0), seed=1)
    (v1, a1), (v0, a0) = sampler.sample(2), plain.sample(2)
    assert not np.allclose(v1 / np.abs(v1 + a1).max(), v0 / np.abs(v0 + a0).max())  # the voice changed


def test_reverb_decay_is_in_seconds_at_any_rate():
    sr = 44100
    x = np.zeros(2 * sr, np.float32)
    x[1000] = 1.0
    tail = _reverb(x, np.random.default_rng(3), (0.5, 0.5), sr)[1001:]
    early = np.sum(tail[int(0.06 * sr):int(0.13 * sr)] ** 2)
    late = np.sum(tail[int(0.38 * sr):int(0.45 * sr)] ** 2)
    assert late < early / 30  # the same RT60 in seconds as at 16 kHz, not 2.8 times longer
    assert np.abs(tail[int(0.6 * sr):]).max() < 1e-6  # the response ends after the 0.5 s decay (+ pre-delay)


def _peak_hz(x, sr):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spec) * sr / len(x)


def test_speed_change_moves_a_tone_by_the_resampling_ratio():
    sr = 16000
    ratio = 2 ** (3 / 12)  # three semitones up
    long = np.sin(2 * np.pi * 440 * np.arange(int(round(8000 * ratio))) / sr).astype(np.float32)
    y = speed_change(long, 8000)
    assert y.shape == (8000,) and y.dtype == np.float32
    assert abs(_peak_hz(y, sr) - 440 * ratio) < 4  # 554 Hz, within two FFT bins
    down = speed_change(long[: int(round(8000 / ratio))], 8000)
    assert abs(_peak_hz(down, sr) - 440 / ratio) < 4
    assert np.array_equal(speed_change(long[:8000], 8000), long[:8000])


def test_speed_augmentation_changes_the_remixes_reproducibly():
    plain = RemixSampler(clips(), 1000, RemixConfig(original_pair_prob=0.0), seed=2).sample(6)
    cfg = RemixConfig(original_pair_prob=0.0, speed_prob=1.0, speed_semitones=3.0)
    sped = RemixSampler(clips(), 1000, cfg, seed=2).sample(6)
    again = RemixSampler(clips(), 1000, cfg, seed=2).sample(6)
    assert all(np.array_equal(x, y) for x, y in zip(sped, again, strict=True))
    assert not np.allclose(sped[0], plain[0])
    assert all(x.shape == (6, 1000) and np.isfinite(x).all() for x in sped)


def test_layering_adds_a_second_clips_accompaniment():
    sr, n = 8000, 4000
    t = np.arange(n) / sr
    freqs = [500.0, 1000.0, 1500.0]  # one tone per clip's accompaniment, silent voices
    tones = [Clip(f"c{i}", np.zeros(n, np.float32), np.sin(2 * np.pi * f * t).astype(np.float32))
             for i, f in enumerate(freqs)]

    def tones_in(a):
        spec = np.abs(np.fft.rfft(a))
        return sum(spec[int(f * len(a) / sr)] > 0.1 * spec.max() for f in freqs)

    cfg = RemixConfig(original_pair_prob=0.0, silent_voice_prob=0.0, layer_prob=1.0)
    _, acc = RemixSampler(tones, 2000, cfg, seed=4).sample(8)
    assert all(tones_in(a) == 2 for a in acc)  # its own accompaniment and one other clip's
    _, plain = RemixSampler(tones, 2000, RemixConfig(original_pair_prob=0.0, silent_voice_prob=0.0), seed=4).sample(8)
    assert all(tones_in(a) == 1 for a in plain)


def test_pool_accompaniments_replace_mir1k_ones_at_the_crops_own_level():
    sr, n = 8000, 4000
    t = np.arange(n) / sr
    voice_free = [Clip(f"c{i}", np.zeros(n, np.float32), np.sin(2 * np.pi * 500 * t).astype(np.float32))
                  for i in range(2)]
    # a pool track that is silent for its first half, then a 2 kHz tone far quieter than the clips
    track = np.concatenate([np.zeros(20 * n, np.float32), 0.01 * np.sin(2 * np.pi * 2000 * np.arange(20 * n) / sr)])
    cfg = RemixConfig(original_pair_prob=0.0, silent_voice_prob=0.0, source_gain_db=0.0, level_db=(0.0, 0.0),
                      pool_prob=1.0)
    _, acc = RemixSampler(voice_free, 2000, cfg, seed=2, pool=[track.astype(np.float32)]).sample(8)
    for a in acc:
        spec = np.abs(np.fft.rfft(a))
        assert spec[int(2000 * len(a) / sr)] > 10 * spec[int(500 * len(a) / sr)]  # the pool's tone, not the clips'
        assert np.abs(a).max() > 0.5  # scaled by the crop's level (peak-normalised mixture), never a silent crop
    half = RemixSampler(voice_free, 2000, RemixConfig(**{**cfg.__dict__, "pool_prob": 0.5}), seed=2,
                        pool=[track.astype(np.float32)]).sample(40)[1]
    from_pool = [np.abs(np.fft.rfft(a))[int(2000 * 2000 / sr)] > np.abs(np.fft.rfft(a))[int(500 * 2000 / sr)]
                 for a in half]
    assert 8 <= sum(from_pool) <= 32


def test_pool_is_ignored_without_pool_prob_and_pool_prob_without_pool():
    pool = [np.random.default_rng(0).standard_normal(50000).astype(np.float32)]
    plain = RemixSampler(clips(), 1000, RemixConfig(), seed=1).sample(6)
    unused = RemixSampler(clips(), 1000, RemixConfig(), seed=1, pool=pool).sample(6)
    empty = RemixSampler(clips(), 1000, RemixConfig(pool_prob=0.7), seed=1).sample(6)
    assert all(np.array_equal(x, y) for x, y in zip(plain, unused, strict=True))
    assert all(np.array_equal(x, y) for x, y in zip(plain, empty, strict=True))


def test_load_pool_reads_the_manifest_and_says_what_to_run_when_audio_is_missing(tmp_path):
    import pytest
    import soundfile as sf

    from vocalsep.data import DatasetError, load_pool

    (tmp_path / "audio" / "pkg").mkdir(parents=True)
    sf.write(tmp_path / "audio" / "pkg" / "a.wav", np.full((8000, 2), 0.1, np.float32), 8000)
    manifest = tmp_path / "pool.tsv"
    manifest.write_text("path\tpackage\tlicence\npkg/a.wav\tpkg\tGPL-2+\n")
    tracks = load_pool(manifest, tmp_path / "audio", 16000)
    assert len(tracks) == 1 and tracks[0].ndim == 1 and len(tracks[0]) == 16000
    manifest.write_text("path\tpackage\tlicence\npkg/missing.wav\tpkg\tGPL-2+\n")
    with pytest.raises(DatasetError, match="prepare_pool.py"):
        load_pool(manifest, tmp_path / "audio", 16000)
    with pytest.raises(DatasetError, match="not found"):
        load_pool(tmp_path / "nope.tsv", tmp_path, 16000)


@pytest.mark.parametrize("sr", [16000, 44100])
def test_time_stretch_keeps_the_pitch_and_pitch_shift_keeps_the_duration(sr):
    tone = np.sin(2 * np.pi * 440 * np.arange(sr) / sr).astype(np.float32)
    slow = time_stretch(tone, 2 * sr, sr)
    edge = sr // 8
    assert len(slow) == 2 * sr and abs(_peak_hz(slow[edge:-edge], sr) - 440) < 5
    assert 0.5 < np.sqrt(np.mean(slow[edge:-edge] ** 2)) / np.sqrt(np.mean(tone ** 2)) < 1.5
    for semitones in (-5.0, 7.0):
        up = pitch_shift(tone, semitones, sr)
        assert len(up) == sr
        assert abs(_peak_hz(up[1000:-1000], sr) - 440 * 2 ** (semitones / 12)) < 8


@pytest.mark.parametrize("sr", [16000, 44100])
def test_formant_shift_moves_the_envelope_and_keeps_the_pitch(sr):
    """A 220 Hz harmonic tone shaped by one formant at 1 kHz: the strongest harmonic moves with the
    formant (1100 Hz -> 1320 Hz for a factor 1.2, 880 Hz for 1/1.2), the harmonics stay where they were."""
    t = np.arange(sr) / sr
    freqs = 220.0 * np.arange(1, 30)
    x = sum((np.exp(-0.5 * ((f - 1000) / 250) ** 2) + 0.05) * np.sin(2 * np.pi * f * t) for f in freqs).astype(np.float32)

    def strongest_harmonic(y):
        spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
        return freqs[int(np.argmax(spec[np.round(freqs * len(y) / sr).astype(int)]))]

    assert np.allclose(formant_shift(x, 1.0, sr), x, atol=1e-4)
    for factor, expected in ((1.2, 1320.0), (1 / 1.2, 880.0)):
        y = formant_shift(x, factor, sr)
        assert y.dtype == np.float32 and len(y) == len(x)
        assert strongest_harmonic(y) == expected
        spec = np.abs(np.fft.rfft(y)) ** 2  # 1 s: bin = 1 Hz; the energy stays on the 220 Hz harmonics
        near = np.zeros(len(spec), bool)
        for f in freqs:
            near[int(f) - 5:int(f) + 6] = True
        assert spec[near].sum() > 0.95 * spec.sum()
        assert np.sqrt(np.mean(y ** 2)) == pytest.approx(np.sqrt(np.mean(x ** 2)), rel=1e-3)


def test_formant_augmentation_changes_remixed_voices_only_and_draws_nothing_when_off():
    base = RemixConfig(original_pair_prob=0.0)
    plain = RemixSampler(clips(), 1000, base, seed=2).sample(4)
    again = RemixSampler(clips(), 1000, RemixConfig(original_pair_prob=0.0, formant_prob=0.0, formant_ratio=1.5), seed=2).sample(4)
    moved = RemixSampler(clips(), 1000, RemixConfig(original_pair_prob=0.0, formant_prob=1.0), seed=2).sample(4)
    assert all(np.array_equal(p, q) for p, q in zip(plain, again))
    assert not np.allclose(plain[0], moved[0])
    assert all(np.isfinite(x).all() and x.dtype == np.float32 for x in moved)


def test_pitch_augmentation_changes_remixed_voices_only():
    cfg = RemixConfig(original_pair_prob=0.0, pitch_prob=1.0, pitch_semitones=4.0)
    plain = RemixSampler(clips(), 1000, RemixConfig(original_pair_prob=0.0), seed=2).sample(4)
    shifted = RemixSampler(clips(), 1000, cfg, seed=2).sample(4)
    assert not np.allclose(plain[0], shifted[0])
    assert all(np.isfinite(x).all() and x.dtype == np.float32 for x in shifted)
