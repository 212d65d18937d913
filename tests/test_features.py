import numpy as np
import pytest
import torch

from vocalsep.features import (FeatureConfig, istft, mel_filterbank, mel_frequencies, mel_inverse, mel_magnitude,
                               mel_to_bin_weights, silence_weights, stft)


@pytest.mark.parametrize("n_fft,hop,length", [(512, 128, 16000), (2048, 512, 44101), (256, 64, 1000)])
def test_stft_istft_round_trip(n_fft, hop, length):
    x = torch.randn(3, length)
    y = istft(stft(x, n_fft, hop), n_fft, hop, length=length)
    assert y.shape == x.shape
    assert (y - x).abs().max() < 1e-6


def test_stft_shape_is_batch_frames_bins():
    spec = stft(torch.zeros(2, 128 * 99), 512, 128)
    assert spec.shape == (2, 100, 257)


@pytest.mark.parametrize("sr,n_fft", [(16000, 512), (44100, 1024), (8000, 256), (48000, 2048)])
def test_bin_weights_rows_are_averages(sr, n_fft):
    cfg = FeatureConfig()
    w = mel_to_bin_weights(cfg, sr, n_fft)
    assert w.shape == (n_fft // 2 + 1, cfg.n_mels)
    assert torch.all(w >= 0)
    assert torch.allclose(w.sum(1), torch.ones(w.shape[0]), atol=1e-5)
    # Above the model's fmax every bin follows the top band: the full band is not dropped.
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    above = freqs > cfg.fmax
    if above.any():
        assert torch.all(w[above, -1] == 1)


@pytest.mark.parametrize("sr,n_fft", [(44100, 1024), (48000, 2048), (16000, 512)])
def test_octave_rule_gives_bins_above_the_band_the_mean_of_its_top_octave(sr, n_fft):
    cfg = FeatureConfig()
    top, octave = mel_to_bin_weights(cfg, sr, n_fft, "top"), mel_to_bin_weights(cfg, sr, n_fft, "octave")
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    above = torch.from_numpy(freqs > cfg.fmax)
    assert torch.equal(top[~above], octave[~above])  # the model's own band is mapped as before
    assert torch.allclose(octave.sum(1), torch.ones(octave.shape[0]), atol=1e-5)
    if above.any():
        mask = torch.linspace(0, 1, cfg.n_mels)  # rising with frequency
        centres = torch.from_numpy(mel_frequencies(cfg.n_mels + 2, cfg.fmin, cfg.fmax)[1:-1])
        expected = mask[centres >= cfg.fmax / 2].mean()
        assert torch.allclose(mask @ octave[above].T, expected.expand(int(above.sum())), atol=1e-5)
    with pytest.raises(ValueError, match="high-band rule"):
        mel_to_bin_weights(cfg, sr, n_fft, "loud")


def test_mel_inverse_maps_flat_spectrum_to_itself():
    cfg = FeatureConfig()
    flat = torch.ones(1, 4, cfg.n_bins)
    back = mel_magnitude(flat, mel_filterbank(cfg)) @ mel_inverse(cfg)
    assert torch.allclose(back, flat, atol=1e-4)


def test_silence_weights_threshold():
    mel = torch.tensor([[[1.0, 0.02, 0.005, 0.0]]])
    assert silence_weights(mel, 40.0).tolist() == [[[1.0, 1.0, 0.0, 0.0]]]


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
