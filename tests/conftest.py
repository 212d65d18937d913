"""Shared fixtures: tiny models and generated audio (nothing is read from ../shared)."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from vocalsep.checkpoint import ModelBundle, save_model
from vocalsep.features import FeatureConfig
from vocalsep.models import build_model

TINY = dict(hidden=8, layers=1, emb_dim=4, dropout=0.0)


def tiny_bundle(seed: int = 0, n_mels: int = 20) -> ModelBundle:
    torch.manual_seed(seed)
    cfg = FeatureConfig(n_mels=n_mels)
    model = build_model("mirex2016", cfg.n_mels, **TINY).eval()
    rng = np.random.default_rng(seed)
    rule = {"vocals": rng.standard_normal(TINY["emb_dim"]).tolist(),
            "accompaniment": rng.standard_normal(TINY["emb_dim"]).tolist()}
    return ModelBundle(model=model, features=cfg, arch="mirex2016", model_kwargs=dict(TINY), voice_rule=rule,
                       training={"silence_db": 40.0})


def song(seconds: float, sr: int, channels: int = 2, seed: int = 0) -> np.ndarray:
    """A harmonic 'voice' with vibrato over a chord and noise bursts, (channels, samples) float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 220 * (1 + 0.02 * np.sin(2 * np.pi * 5 * t))
    voice = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / sr) / k for k in range(1, 6))
    chord = sum(np.sin(2 * np.pi * f * t) for f in (110, 165, 277))
    noise = rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 2 * t) > 0.7)
    out = [0.2 * voice + 0.1 * chord * (1 + 0.3 * c) + 0.05 * noise for c in range(channels)]
    return np.stack(out).astype(np.float32)


def write_mir1k_clips(root, n: int, seconds: float, acc_gain: float = 0.5):
    """MIR-1K-style stereo clips (left accompaniment, right voice, 16 kHz) in ``root/train``."""
    (root / "train").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        acc = song(seconds, 16000, 1, seed=i)[0] * acc_gain
        t = np.arange(len(acc)) / 16000
        voice = 0.3 * np.sin(2 * np.pi * (330 + 40 * i) * t * (1 + 0.01 * np.sin(2 * np.pi * 4 * t)))
        sf.write(root / "train" / f"c_{i}.wav", np.stack([acc, voice], 1), 16000)
    return root


@pytest.fixture
def bundle():
    return tiny_bundle()


@pytest.fixture
def model_file(tmp_path, bundle):
    return save_model(tmp_path / "tiny.pt", bundle)


@pytest.fixture
def wav_file(tmp_path):
    path = tmp_path / "in" / "my song.wav"
    path.parent.mkdir()
    sf.write(path, song(3.0, 44100).T, 44100)
    return path
