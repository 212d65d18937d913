import numpy as np
import pytest
import torch

from conftest import song, tiny_bundle
from vocalsep.separator import SeparationError, Separator


@pytest.fixture
def sep(bundle):
    return Separator(bundle, segment_frames=100)


@pytest.mark.parametrize("sr", [8000, 16000, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_mixture_consistency_and_shape(sep, sr, channels):
    x = song(2.3, sr, channels)
    out = sep.separate(x, sr)
    assert set(out) == {"vocals", "accompaniment"}
    for y in out.values():
        assert y.shape == x.shape and y.dtype == np.float32
    assert np.abs(out["vocals"] + out["accompaniment"] - x).max() < 1e-6
    assert np.abs(out["vocals"]).max() > 0  # something was assigned to the voice


def test_full_band_is_kept(sep):
    sr = 44100
    t = np.arange(sr) / sr
    x = (0.3 * np.sin(2 * np.pi * 12000 * t) + 0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    out = sep.separate(x, sr)
    hf = [np.abs(np.fft.rfft(y))[11900:12100].sum() for y in out.values()]
    assert sum(hf) > 0.99 * np.abs(np.fft.rfft(x))[11900:12100].sum()


def test_mono_vector_and_tensor_types_are_preserved(sep):
    x = song(1.5, 22050, 1)[0]
    out = sep.separate(x, 22050)
    assert out["vocals"].shape == x.shape
    t = torch.from_numpy(song(1.5, 22050, 2)).double()
    out_t = sep.separate(t, 22050)
    assert isinstance(out_t["vocals"], torch.Tensor) and out_t["vocals"].dtype == torch.float64
    assert out_t["vocals"].shape == t.shape
    assert torch.allclose(out_t["vocals"] + out_t["accompaniment"], t, atol=1e-6)


def test_integer_input_keeps_its_scale(sep):
    x = (song(1.0, 16000, 1)[0] * 32767).astype(np.int16)
    out = sep.separate(x, 16000)
    assert out["vocals"].dtype == np.int16 and np.abs(out["vocals"]).max() > 100
    assert np.abs(out["vocals"].astype(np.int32) + out["accompaniment"] - x).max() <= 1
    t = torch.from_numpy(x.astype(np.int32))  # an integer tensor: the same stems, as int32 tensors
    tout = sep.separate(t, 16000)
    assert tout["vocals"].dtype == torch.int32 and tout["vocals"].abs().max() > 100
    assert (tout["vocals"] + tout["accompaniment"] - t).abs().max() <= 1


def test_float64_in_float64_out(sep):
    x = song(1.0, 16000, 2).astype(np.float64)
    out = sep.separate(x, 16000)
    assert out["vocals"].dtype == np.float64
    assert np.abs(out["vocals"] + out["accompaniment"] - x).max() < 1e-5


def test_mel_reconstruction_path(bundle):
    sep = Separator(bundle, reconstruct="mel", segment_frames=100)
    x = song(2.0, 44100, 2)
    out = sep.separate(x, 44100)
    assert out["vocals"].shape == x.shape
    assert np.all(np.isfinite(out["vocals"]))
    # the paper's path is band-limited to the model's 8 kHz
    freqs = np.fft.rfftfreq(x.shape[1], 1 / 44100)
    hf = [np.abs(np.fft.rfft(y[0])) ** 2 for y in (out["accompaniment"], x)]
    assert hf[0][freqs > 8500].sum() < 1e-4 * hf[0].sum()
    assert hf[1][freqs > 8500].sum() > 1e-3 * hf[1].sum()  # while the input has plenty


def test_deterministic_under_seed(bundle):
    x = song(2.0, 16000, 1)
    a = Separator(bundle, seed=1, segment_frames=100).separate(x, 16000)
    b = Separator(bundle, seed=1, segment_frames=100).separate(x, 16000)
    assert np.array_equal(a["vocals"], b["vocals"])


def test_digital_silence_is_separated_into_silence(sep):
    out = sep.separate(np.zeros((2, 20000), np.float32), 16000)
    assert not out["vocals"].any() and not out["accompaniment"].any()


@pytest.mark.parametrize("bad,match", [
    (np.array([0.0, np.nan, 0.0] * 1000, np.float32), "NaN or infinite"),
    (np.zeros(0, np.float32), "no samples"),
    (np.zeros((2, 2, 10), np.float32), "must be"),
    (np.zeros((44100, 2), np.float32), "pass audio.T"),
    (np.zeros((40, 2), np.float32), "ambiguous"),
    (np.zeros((33, 44100), np.float32), "at most 32 channels"),
    (np.array(["a", "b"]), "numbers"),
])
def test_bad_input_is_refused(sep, bad, match):
    with pytest.raises(SeparationError, match=match):
        sep.separate(bad, 16000)


def test_bad_rate_and_options(bundle, sep):
    for rate in (0, 1, 10**8):
        with pytest.raises(SeparationError, match="sample rate"):
            sep.separate(np.zeros(100, np.float32), rate)
    for softness in (float("nan"), float("inf"), -1.0):
        with pytest.raises(SeparationError, match="softness"):
            Separator(bundle, softness=softness)
    with pytest.raises(SeparationError, match="sources"):
        Separator(bundle, sources=1000)
    with pytest.raises(SeparationError, match="reconstruction"):
        Separator(bundle, reconstruct="nope")
    b = tiny_bundle()
    b.voice_rule = None
    with pytest.raises(ValueError, match="no voice rule"):
        Separator(b)


def test_streaming_equals_in_memory(sep):
    from vocalsep.apply import array_reader

    x = song(3.0, 16000, 2)
    whole = sep.separate(x, 16000)
    blocks = list(sep.separate_stream(array_reader(x), x.shape[1], 16000))
    streamed = np.concatenate([b["vocals"] for _, b in blocks], axis=1)
    assert np.array_equal(streamed, whole["vocals"])


def test_file_separation_streams_the_same_result(tmp_path, sep):
    import soundfile as sf

    from vocalsep.audio import load_audio

    src = tmp_path / "in.flac"
    sf.write(src, song(9.0, 22050, 2).T, 22050, subtype="PCM_24")
    outs = {s: tmp_path / f"{s}.wav" for s in sep.stems}
    sep.separate_file(src, outs, subtype="FLOAT")
    x, sr = load_audio(src)
    ref = sep.separate(x, sr)
    for s in sep.stems:
        y, ysr = sf.read(outs[s], dtype="float32", always_2d=True)
        assert ysr == sr and np.array_equal(y.T, ref[s])


def test_batched_chunks_give_the_same_result(bundle):
    x = song(5.0, 22050, 2)
    one = Separator(bundle, segment_frames=60, batch=1).separate(x, 22050)
    many = Separator(bundle, segment_frames=60, batch=3).separate(x, 22050)
    for s in one:
        assert np.allclose(one[s], many[s], atol=1e-5)


def test_wiener_postfilter_keeps_confident_masks_and_smooths_flicker():
    from vocalsep.masking import wiener_postfilter

    spec = np.ones((1, 2, 9, 4), np.complex64)
    steady = np.zeros((1, 9, 4), np.float32)
    steady[..., :2] = 1.0
    assert np.allclose(wiener_postfilter(spec, steady), steady)
    flicker = steady.copy()
    flicker[0, 4, 2] = 1.0  # one isolated bin says voice
    out = wiener_postfilter(spec, flicker, frames=5)
    assert 0 < out[0, 4, 2] < 0.5 and np.allclose(out[..., :2], steady[..., :2])
    assert ((out >= 0) & (out <= 1)).all()


def test_postfilter_keeps_mixture_consistency(bundle):
    x = song(2.0, 44100, 2)
    out = Separator(bundle, segment_frames=100, postfilter=True).separate(x, 44100)
    plain = Separator(bundle, segment_frames=100, postfilter=False).separate(x, 44100)
    assert Separator(bundle).postfilter and not Separator(bundle, reconstruct="mel").postfilter  # default
    assert np.abs(out["vocals"] + out["accompaniment"] - x).max() < 1e-5
    assert not np.allclose(out["vocals"], plain["vocals"])


def test_high_band_rule_changes_only_what_lies_above_the_models_band(bundle):
    from conftest import song

    x = song(2.0, 44100, 2)
    top = Separator(bundle, high_band="top").separate(x, 44100)["vocals"]
    octave = Separator(bundle).separate(x, 44100)["vocals"]
    diff = np.fft.rfft(octave - top, axis=-1)
    f = np.fft.rfftfreq(x.shape[-1], 1 / 44100)
    energy = np.abs(diff) ** 2
    assert energy.sum() > 0
    assert energy[:, f < 7000].sum() < 1e-3 * energy.sum()
    with pytest.raises(SeparationError, match="high-band rule"):
        Separator(bundle, high_band="loudest")


@pytest.mark.parametrize("postfilter, high_band", [(False, "octave"), (True, "top")])
def test_masks_applied_on_several_threads_give_the_same_bits(postfilter, high_band):
    from vocalsep.features import FeatureConfig
    from vocalsep.masking import apply_band_masks

    cfg = FeatureConfig(n_mels=20)
    rng = np.random.default_rng(0)
    audio = rng.standard_normal((5, 2, 44100)).astype(np.float32)  # 5 chunks: uneven shares on 2 or 3 threads
    masks = rng.random((5, 126, 20)).astype(np.float32)
    one = apply_band_masks(audio, masks, 44100, cfg, postfilter, high_band, threads=1)
    for threads in (2, 3, 8):
        assert np.array_equal(apply_band_masks(audio, masks, 44100, cfg, postfilter, high_band, threads=threads), one)
    alone = [apply_band_masks(audio[i:i + 1], masks[i:i + 1], 44100, cfg, postfilter, high_band)[0] for i in range(5)]
    assert np.array_equal(np.stack(alone), one)  # each chunk is computed alone, whatever the batch


def test_separator_threads_do_not_change_the_stems(bundle):
    x = song(5.0, 44100, 2)
    one = Separator(bundle, segment_frames=60, batch=4, threads=1).separate(x, 44100)
    two = Separator(bundle, segment_frames=60, batch=4, threads=2)
    assert two.mask_threads == 2 and Separator(bundle).mask_threads >= 1
    for s, y in two.separate(x, 44100).items():
        assert np.array_equal(y, one[s])


def _unet_bundle():
    from vocalsep.checkpoint import ModelBundle
    from vocalsep.features import FeatureConfig
    from vocalsep.models import build_model

    torch.manual_seed(0)
    net = build_model("unet", 20, channels=2, depth=2).eval()
    return ModelBundle(model=net, features=FeatureConfig(n_mels=20), arch="unet",
                       model_kwargs={"channels": 2, "depth": 2})


def test_shifts_average_masks_of_delayed_inputs_put_back_in_place():
    """A network that looks at each frame alone gives every delayed copy the same mask: shifts must then
    change nothing, which holds only if each copy's mask is moved back to its own frames."""
    x = song(3.0, 44100, 2)
    def framewise(logmel, heads):  # each frame's bands against their own mean: the voice-like half
        return {"mask": 1.0 / (1.0 + np.exp(-(logmel - logmel.mean(-1, keepdims=True))))}

    outs = []
    for shifts in (1, 4):
        sep = Separator(_unet_bundle(), segment_frames=100, shifts=shifts)
        sep.network = framewise
        outs.append(sep.separate(x, 44100)["vocals"])
    assert np.abs(outs[1] - outs[0]).max() < 1e-5 and np.abs(outs[0]).max() > 0.05


def test_shifts_change_the_u_nets_mask_keep_the_mixture_and_repeat_exactly():
    x = song(3.0, 44100, 2)
    one = Separator(_unet_bundle(), segment_frames=100).separate(x, 44100)
    four = Separator(_unet_bundle(), segment_frames=100, shifts=4).separate(x, 44100)
    again = Separator(_unet_bundle(), segment_frames=100, shifts=4).separate(x, 44100)
    assert not np.allclose(four["vocals"], one["vocals"], atol=1e-4)
    assert np.abs(four["vocals"] + four["accompaniment"] - x).max() < 1e-5
    assert np.array_equal(four["vocals"], again["vocals"])


def test_shifts_are_refused_where_they_cannot_apply(bundle):
    with pytest.raises(SeparationError, match="mask head"):
        Separator(bundle, shifts=2)  # a deep clustering model: masks from clusters
    for bad in (0, 33, 1.5):
        with pytest.raises(SeparationError, match="shifts"):
            Separator(_unet_bundle(), shifts=bad)
