import numpy as np
import pytest

from vocalsep.features import (FeatureConfig, istft, loud_bins, mel_filterbank, mel_frequencies, mel_inverse,
                               mel_magnitude, mel_to_bin_weights, stft)


@pytest.mark.parametrize("n_fft,hop,length", [(512, 128, 16000), (2048, 512, 44101), (256, 64, 1000), (1000, 300, 4999)])
def test_stft_istft_round_trip(n_fft, hop, length):
    x = np.random.default_rng(0).standard_normal((3, length)).astype(np.float32)
    spec = stft(x, n_fft, hop)
    assert spec.dtype == np.complex64
    y = istft(spec, n_fft, hop, length=length)
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.abs(y - x).max() < 1e-5
    assert np.abs(istft(spec, n_fft, hop, length=length + 7)[:, length:]).max() < 1e-6  # zeros past the end


def test_stft_shape_is_batch_frames_bins():
    spec = stft(np.zeros((2, 128 * 99), np.float32), 512, 128)
    assert spec.shape == (2, 100, 257)


@pytest.mark.parametrize("n_fft,hop,length", [(512, 128, 16000), (2048, 512, 44101), (1000, 300, 4999)])
def test_stft_and_istft_equal_torch(n_fft, hop, length):
    """The numpy transforms are torch.stft / torch.istft with a periodic Hann window, centred, zero-padded."""
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).standard_normal((2, length)).astype(np.float32)
    w = torch.hann_window(n_fft, periodic=True)
    ref = torch.stft(torch.from_numpy(x), n_fft, hop, window=w, center=True, pad_mode="constant",
                     return_complex=True).transpose(-1, -2).numpy()
    spec = stft(x, n_fft, hop)
    assert np.abs(spec - ref).max() < 1e-5 * np.abs(ref).max()
    back = torch.istft(torch.from_numpy(spec).transpose(-1, -2), n_fft, hop, window=w, center=True, length=length)
    assert np.abs(istft(spec, n_fft, hop, length) - back.numpy()).max() < 1e-5


def test_stft_refuses_what_it_cannot_transform():
    with pytest.raises(ValueError, match="batch, samples"):
        stft(np.zeros(100, np.float32), 64, 16)
    assert stft(np.zeros((1, 10), np.float32), 64, 16).shape == (1, 1, 33)  # shorter than a window: one frame


@pytest.mark.parametrize("sr,n_fft", [(16000, 512), (44100, 1024), (8000, 256), (48000, 2048)])
def test_bin_weights_rows_are_averages(sr, n_fft):
    cfg = FeatureConfig()
    w = mel_to_bin_weights(cfg, sr, n_fft)
    assert w.shape == (n_fft // 2 + 1, cfg.n_mels)
    assert np.all(w >= 0)
    assert np.allclose(w.sum(1), 1.0, atol=1e-5)
    # Above the model's fmax every bin follows the top band: the full band is not dropped.
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    above = freqs > cfg.fmax
    if above.any():
        assert np.all(w[above, -1] == 1)


@pytest.mark.parametrize("sr,n_fft", [(44100, 1024), (48000, 2048), (16000, 512)])
def test_octave_rule_gives_bins_above_the_band_the_mean_of_its_top_octave(sr, n_fft):
    cfg = FeatureConfig()
    top, octave = mel_to_bin_weights(cfg, sr, n_fft, "top"), mel_to_bin_weights(cfg, sr, n_fft, "octave")
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    above = freqs > cfg.fmax
    assert np.array_equal(top[~above], octave[~above])  # the model's own band is mapped as before
    assert np.allclose(octave.sum(1), 1.0, atol=1e-5)
    if above.any():
        mask = np.linspace(0, 1, cfg.n_mels, dtype=np.float32)  # rising with frequency
        centres = mel_frequencies(cfg.n_mels + 2, cfg.fmin, cfg.fmax)[1:-1]
        expected = mask[centres >= cfg.fmax / 2].mean()
        assert np.allclose(mask @ octave[above].T, expected, atol=1e-5)
    with pytest.raises(ValueError, match="high-band rule"):
        mel_to_bin_weights(cfg, sr, n_fft, "loud")


def test_mel_inverse_maps_flat_spectrum_to_itself():
    cfg = FeatureConfig()
    flat = np.ones((1, 4, cfg.n_bins), np.float32)
    back = mel_magnitude(flat, mel_filterbank(cfg)) @ mel_inverse(cfg)
    assert np.allclose(back, flat, atol=1e-4)


def test_loud_bins_threshold_per_example():
    mel = np.array([[[1.0, 0.02, 0.005, 0.0]], [[0.01, 0.0002, 0.00005, 0.0]]], np.float32)
    assert loud_bins(mel, 40.0).tolist() == [[[True, True, False, False]]] * 2


@pytest.mark.parametrize("sr,n_fft,n_mels,fmax", [(16000, 512, 150, 8000.0), (44100, 2048, 150, 8000.0),
                                                   (8000, 256, 150, 8000.0), (22050, 1024, 40, 11025.0)])
def test_mel_filterbank_equals_librosa(sr, n_fft, n_mels, fmax):
    import warnings

    import librosa

    from vocalsep.features import _mel_np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=fmax)
    assert np.allclose(_mel_np(sr, n_fft, n_mels, 0.0, fmax), ref, rtol=1e-5, atol=1e-7)
