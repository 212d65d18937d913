"""recipes/mixed: the instrumental pool's selection, licences and conversion, its training config, and the
validation script's measures -- on generated files (no package download, no ../shared needed)."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def prepare_pool(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "recipes" / "mixed"))
    import prepare_pool

    return prepare_pool


def _tsv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]), delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def test_only_files_instrumental_on_all_nine_excerpts_are_kept(tmp_path, prepare_pool):
    pkg = "wesnoth-1.16-music"
    _tsv(tmp_path / "screening.tsv", [
        {"package": pkg, "path": p, "sample_rate": "44100", "verdict": v}
        for p, v in (("a.ogg", "instrumental"), ("b.ogg", "instrumental"), ("c.ogg", "check"), ("d.ogg", "voice"),
                     ("e.ogg", "skipped"))] + [{"package": "other-pkg", "path": "x.ogg", "sample_rate": "1",
                                                "verdict": "instrumental"}])
    _tsv(tmp_path / "dense_screening.tsv", [
        {"package": pkg, "path": p, "verdict_9": v}
        for p, v in (("a.ogg", "instrumental"), ("b.ogg", "check"), ("c.ogg", "voice"))] + [
        {"package": "other-pkg", "path": "x.ogg", "verdict_9": "instrumental"}])
    kept = prepare_pool.selected(tmp_path)
    # b.ogg and c.ogg: instrumental on three excerpts, not on all nine; d.ogg, e.ogg: not even on three
    assert [r["path"] for r in kept] == ["a.ogg"]
    assert all(r["package"] in prepare_pool.PACKAGES for r in kept)


def test_licence_per_file(tmp_path, prepare_pool):
    album = tmp_path / "usr/share/games/warzone2100/music/albums/legacy"
    album.mkdir(parents=True)
    (album / "license.txt").write_text("'Legacy' is licensed and available under:\nCC-BY-SA-3.0 (or later)\n")
    lic = prepare_pool.licence
    assert lic("warzone2100-music", "usr/share/games/warzone2100/music/albums/legacy/track1.ogg", tmp_path) == "CC-BY-SA-3.0"
    assert lic("warzone2100-music", "usr/share/games/warzone2100/music/menu.ogg", tmp_path) == "GPL-2+"
    assert lic("hyperrogue-music", "usr/share/games/hyperrogue/music/hr3-caves.ogg", tmp_path) == "CC-BY-SA-3.0"
    assert lic("hyperrogue-music", "usr/share/games/hyperrogue/music/other.ogg", tmp_path) == "GPL-2+"


def test_conversion_is_16k_mono_and_keeps_the_content(tmp_path, prepare_pool):
    sr = 44100
    t = np.arange(sr) / sr
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], 1).astype(np.float32) * 0.5
    src = tmp_path / "in.ogg"
    sf.write(src, stereo, sr, format="OGG", subtype="VORBIS")
    dst = tmp_path / "out" / "a.wav"
    seconds = prepare_pool.convert(src, dst)
    y, rate = sf.read(dst)
    assert rate == 16000 and y.ndim == 1 and abs(seconds - 1.0) < 0.01 and not dst.with_suffix(".part").exists()
    spec = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spec) * rate / len(y) - 440) < 2
    assert 0.4 < np.abs(y).max() < 0.6


def test_main_stops_with_a_clear_message_without_the_screening_table(tmp_path, prepare_pool, capsys):
    assert prepare_pool.main(["--screening", str(tmp_path / "none"), "--work", str(tmp_path)]) == 1
    assert "no screening table" in capsys.readouterr().err


def test_recipe_config_trains_on_the_training_singers_and_selects_on_unseen_ones():
    from vocalsep.data import read_manifest
    from vocalsep.config import load_config

    cfg = load_config(ROOT / "recipes" / "mixed" / "conf.toml")
    assert cfg.arch == "unet" and not cfg.pool and cfg.remix["pool_prob"] == 0  # the pool is an ablation
    assert len(cfg.phases) == 4 and cfg.phases[2].lr < cfg.phases[1].lr < cfg.phases[0].lr
    assert cfg.phases[3].keep_epochs and cfg.remix_for(4).pitch_prob > 0 and cfg.remix_for(3).pitch_prob == 0
    fine = load_config(ROOT / "recipes" / "mixed" / "conf_1024.toml")  # phase 4's average on a longer STFT
    assert fine.features == {**cfg.features, "n_fft": 1024} and fine.model == cfg.model and fine.arch == cfg.arch
    assert fine.remix_for(1) == cfg.remix_for(4) and fine.phases[0].keep_epochs
    assert (fine.train_set, fine.valid_set) == (cfg.train_set, cfg.valid_set)
    train = read_manifest(ROOT / cfg.train_set)
    valid = read_manifest(ROOT / cfg.valid_set)
    assert all(Path(c).name.split("_")[0] in ("abjones", "amy") for c in train)
    assert valid and all(Path(c).name.split("_")[0] in ("khair", "yifen") for c in valid)
    with open(ROOT / "data" / "pool" / "accompaniment.tsv") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert rows and all(r["licence"] and float(r["duration_s"]) > 0 for r in rows)


def test_training_draws_from_a_generated_pool(tmp_path):
    from conftest import write_mir1k_clips
    from vocalsep.checkpoint import load_model
    from vocalsep.config import load_config
    from vocalsep.train import train_phase

    clips = write_mir1k_clips(tmp_path / "mir1k", 2, 1.0)
    (tmp_path / "pool").mkdir()
    sf.write(tmp_path / "pool" / "t.wav", np.random.default_rng(0).standard_normal(32000).astype(np.float32) * 0.1, 16000)
    (tmp_path / "pool.tsv").write_text("path\tlicence\nt.wav\tGPL-2+\n")
    cfg = load_config(None, [
        f"data_root={json.dumps(str(clips))}", 'arch="unet"', "model={channels=2, depth=2}", "features.n_mels=20",
        f"pool={json.dumps(str(tmp_path / 'pool.tsv'))}", f"pool_root={json.dumps(str(tmp_path / 'pool'))}",
        "remix.pool_prob=1.0", "phases=[{chunk_frames=20, batch_size=2, steps_per_epoch=2, max_epochs=1, lr=1e-2}]"])
    assert load_model(train_phase(cfg, 1, tmp_path / "exp")).arch == "unet"


def test_high_band_scores(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "recipes" / "mixed"))
    import validate

    rng = np.random.default_rng(0)
    ref = rng.standard_normal((44100, 2))
    level, snr = validate.high_band_scores(ref, ref * 0.5, 44100)
    assert abs(level - 20 * np.log10(0.5)) < 1e-6 and abs(snr - 20 * np.log10(2)) < 1e-6
    lowpassed = np.fft.irfft(np.fft.rfft(ref, axis=0) * (np.fft.rfftfreq(44100, 1 / 44100) <= 8000)[:, None], 44100, axis=0)
    level, snr = validate.high_band_scores(ref, lowpassed, 44100)
    assert level < -100 and abs(snr) < 1e-6  # nothing above 8 kHz: the voice's top went to the accompaniment
    # the bound puts the true band back: a low-passed estimate becomes the reference, the rest is kept
    assert np.allclose(validate.with_true_high_band(ref, lowpassed, 44100), ref, atol=1e-5)
    noisy = ref + 0.1 * rng.standard_normal(ref.shape)
    fixed = validate.with_true_high_band(ref, noisy, 44100)
    band = np.fft.rfftfreq(44100, 1 / 44100) > 8000
    assert np.allclose(np.fft.rfft(fixed, axis=0)[~band], np.fft.rfft(noisy, axis=0)[~band], atol=1e-2)


def test_kept_epochs_average_to_the_mean_of_their_weights(tmp_path, monkeypatch):
    import torch

    from conftest import write_mir1k_clips
    from vocalsep.checkpoint import load_model
    from vocalsep.config import load_config
    from vocalsep.train import train_phase

    root = write_mir1k_clips(tmp_path / "mir1k", 3, 1.5)
    cfg = load_config(None, [f"data_root={json.dumps(str(root))}", "arch=unet", "model.channels=2", "model.depth=2",
                             "features.n_mels=20", "voice_rule_batches=1",
                             "phases=[{chunk_frames=20, batch_size=2, steps_per_epoch=2, max_epochs=2, lr=1e-2, "
                             "keep_epochs=true}]"])
    train_phase(cfg, 1, tmp_path / "exp")
    kept = sorted((tmp_path / "exp" / "phase1" / "epochs").glob("epoch*.pt"))
    assert [p.name for p in kept] == ["epoch001.pt", "epoch002.pt"]
    monkeypatch.syspath_prepend(str(ROOT / "recipes" / "mixed"))
    import average

    out = tmp_path / "avg.pt"
    assert average.main([str(out), *map(str, kept)]) == 0
    a, b, avg = (load_model(p).model.state_dict() for p in (*kept, out))
    moved = [k for k in a if a[k].is_floating_point() and not torch.equal(a[k], b[k])]
    assert moved  # the two epochs differ, so the test can tell a mean from a copy
    for k in a:
        want = (a[k] + b[k]) / 2 if a[k].is_floating_point() else b[k]
        assert torch.allclose(avg[k], want, atol=1e-6), k
    assert load_model(out).training["averaged_from"] == [str(p) for p in kept]


def test_a_narrower_unet_averages_with_a_wider_one_once_widened_into_its_weights(tmp_path, monkeypatch):
    import pytest
    import torch

    from vocalsep.checkpoint import ModelBundle, ModelFileError, load_model, save_model
    from vocalsep.features import FeatureConfig
    from vocalsep.models import build_model, model_args

    def unet_file(name, seed, **size):
        torch.manual_seed(seed)
        kwargs = model_args("unet", size)[1]
        model = build_model("unet", 20, **kwargs).eval()
        for v in model.state_dict().values():  # no zero weights or unit statistics left to hide a copy
            if v.is_floating_point():
                v.add_(torch.rand_like(v) + 0.1)
        bundle = ModelBundle(model=model, features=FeatureConfig(n_mels=20), arch="unet", model_kwargs=kwargs)
        return save_model(tmp_path / name, bundle)

    narrow, wide = unet_file("n.pt", 0, channels=2, depth=2), unet_file("w.pt", 1, channels=3, depth=2)
    monkeypatch.syspath_prepend(str(ROOT / "recipes" / "mixed"))
    import average

    out = tmp_path / "avg.pt"
    assert average.main([str(out), str(narrow), str(wide)]) == 0
    n, w, avg = (load_model(p).model.state_dict() for p in (narrow, wide, out))
    key = "encoder.0.0.weight"  # (out channels, in channels, k, k): 2 of the narrow's, 3 of the wide's
    assert torch.allclose(avg[key][:2], (n[key] + w[key][:2]) / 2)  # the narrow's channels: the mean
    assert torch.equal(avg[key][2:], w[key][2:])  # the wide's own channel, which the narrow lacks
    key = "encoder.1.0.weight"  # reads the 3 channels of layer 0: the narrow's 2 read none of the new one
    assert torch.allclose(avg[key][:4, 2], w[key][:4, 2] / 2)
    summary = load_model(out).training
    assert summary["averaged_from"] == [str(narrow), str(wide)] and summary["averaged_widened"] == [str(narrow)]
    with pytest.raises(ModelFileError, match="put the widest file last"):
        average.average([wide, narrow])
    with pytest.raises(ModelFileError, match="narrower U-Net"):
        average.average([unet_file("d.pt", 2, channels=2, depth=3), wide])


def test_recalibrated_batch_norm_holds_the_statistics_of_the_training_batches_with_dropout_off(tmp_path, monkeypatch):
    import torch

    from conftest import write_mir1k_clips
    from vocalsep.checkpoint import load_model
    from vocalsep.config import load_config
    from vocalsep.train import FeatureExtractor, train_phase, training_sampler

    root = write_mir1k_clips(tmp_path / "mir1k", 3, 1.5)
    conf = tmp_path / "conf.toml"
    conf.write_text(f"data_root = {json.dumps(str(root))}\narch = \"unet\"\nvoice_rule_batches = 1\n"
                    "[model]\nchannels = 2\ndepth = 2\ndropout = 0.5\n[features]\nn_mels = 20\n"
                    "[[phases]]\nchunk_frames = 20\nbatch_size = 2\nsteps_per_epoch = 2\nmax_epochs = 1\nlr = 1e-2\n")
    cfg = load_config(conf)
    trained = train_phase(cfg, 1, tmp_path / "exp")
    monkeypatch.syspath_prepend(str(ROOT / "recipes" / "mixed"))
    import average

    out = tmp_path / "recal.pt"
    assert average.main([str(out), str(trained), "--recalibrate", str(conf), "--batches", "2", "--seed", "5"]) == 0
    before, after = load_model(trained), load_model(out)
    assert after.training["batch_norm_recalibrated"]["batches"] == 2

    # the reference: the same two batches through the trained network, batch norm on batch statistics,
    # dropout off; each layer's running mean must be the mean of its two batch means
    ref = before.model
    seen = {}
    for name, m in ref.named_modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.train()
            m.register_forward_hook(lambda mod, inp, _out, name=name: seen.setdefault(name, []).append(
                inp[0].detach().mean((0, 2, 3))))
    sampler = training_sampler(cfg, 1, 5)
    fx = FeatureExtractor(before.features, cfg.silence_db)
    with torch.no_grad():
        for _ in range(2):
            v, a = sampler.sample(2)
            ref(fx(torch.from_numpy(v), torch.from_numpy(a))[0])
    got = after.model.state_dict()
    assert len(seen) == 4
    for name, means in seen.items():
        assert torch.allclose(got[f"{name}.running_mean"], torch.stack(means).mean(0), atol=1e-5), name
        assert not torch.allclose(got[f"{name}.running_mean"], before.model.state_dict()[f"{name}.running_mean"], atol=1e-4)
    for k, v in before.model.state_dict().items():  # the weights themselves are untouched
        if "running" not in k and "num_batches" not in k:
            assert torch.equal(v, got[k]), k
    assert all(m.momentum == 0.1 for m in after.model.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_run_sh_stage_1_trains_fine_tunes_on_the_longer_stft_and_averages(tmp_path):
    """Stage 1 of recipes/mixed/run.sh end to end on generated clips with a tiny network: conf.toml's
    four phases, the average of phase 4's kept epochs, two seeds of conf_1024.toml started from it,
    the average of both seeds' epochs, and the many-voices runs (B and C, E from their average, W24 and
    W24b, V1 and V2, W32 and W32b, W32c at a fifth of the learning rate) whose late epochs average into
    the model stage 2 scores."""
    import os
    import subprocess
    import sys

    from conftest import write_mir1k_clips
    from vocalsep.checkpoint import load_model

    write_mir1k_clips(tmp_path / "mir1k", 3, 1.0)
    (tmp_path / "voices").mkdir()
    t = np.arange(32000) / 16000
    sf.write(tmp_path / "voices" / "v.wav", 0.3 * np.sin(2 * np.pi * 300 * t), 16000)
    (tmp_path / "voices.tsv").write_text("path\tsource\tkind\tsplit\tlicence\nv.wav\tssvd\tvoice\ttrain\tx\n")
    (tmp_path / "pool").mkdir()
    sf.write(tmp_path / "pool" / "p.wav", 0.1 * np.random.default_rng(0).standard_normal(32000), 16000)
    (tmp_path / "pool.tsv").write_text("path\tlicence\np.wav\tx\n")
    phase = "{chunk_frames=24, batch_size=2, steps_per_epoch=1, max_epochs=2, lr=1e-3, keep_epochs=true}"
    tiny = ["model.channels=2", "model.depth=2", "model.kernel=3", "features.n_mels=24", 'train_set=""',
            'valid_set=""', f"phases=[{phase}, {phase}, {phase}, {phase}]"]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    proc = subprocess.run(["bash", str(ROOT / "recipes" / "mixed" / "run.sh"), "--stop-stage", "1", "--data",
                           str(tmp_path / "mir1k"), "--exp-root", str(tmp_path / "exp"),
                           "--voices", str(tmp_path / "voices.tsv"), "--voices-root", str(tmp_path / "voices"),
                           "--pool", str(tmp_path / "pool.tsv"), "--pool-root", str(tmp_path / "pool"),
                           *[a for s in tiny for a in ("--set", s)]],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    run = tmp_path / "exp" / "mixed_unet"
    phase4 = load_model(run / "train" / "phase4" / "average.pt")
    assert phase4.features.n_fft == 512 and len(phase4.training["averaged_from"]) == 1  # 2 epochs: the last
    mir1k = load_model(run / "train1024" / "average.pt")
    assert mir1k.features.n_fft == 1024 and mir1k.features.n_mels == 24
    sources = mir1k.training["averaged_from"]
    assert len(sources) == 2 and "seed1" in sources[0] and "seed2" in sources[1]
    assert mir1k.training["curriculum"][-1]["init_from"].endswith("phase4/average.pt")
    # many voices: runs B and C from the MIR-1K model, E from their average, W24 from E's, W24b from W24,
    # V1 and V2 from the W24/W24b average, W32 from theirs, W32b from W32, W32c from the W32/W32b average
    assert load_model(run / "voices" / "B" / "phase1" / "best.pt").training["curriculum"][-1]["init_from"].endswith(
        "train1024/average.pt")
    assert load_model(run / "voices" / "v1.pt").training["averaged_from"][0].endswith("B/phase1/epochs/epoch002.pt")
    assert load_model(run / "voices" / "W24" / "phase1" / "best.pt").training["curriculum"][-1]["init_from"].endswith("v2.pt")
    model = load_model(run / "voices" / "average.pt")
    assert model.features == mir1k.features
    sources = model.training["averaged_from"]
    assert [Path(s).parts[-4] for s in sources] == ["W32c", "W32c"]  # every epoch of W32c (2 here)
    assert model.training["curriculum"][-1]["init_from"].endswith("v5.pt")
    v5 = load_model(run / "voices" / "v5.pt")
    assert [Path(s).parts[-4] for s in v5.training["averaged_from"]] == ["W32", "W32b"]  # each run's last
    assert v5.training["curriculum"][-1]["init_from"].endswith("W32/phase1/epochs/epoch002.pt")
    assert load_model(run / "voices" / "W32" / "phase1" / "best.pt").training["curriculum"][-1]["init_from"].endswith("v4.pt")
    assert [Path(s).parts[-4] for s in load_model(run / "voices" / "v4.pt").training["averaged_from"]] == ["V1", "V2"]
    assert load_model(run / "voices" / "V1" / "phase1" / "best.pt").training["curriculum"][-1]["init_from"].endswith("v3.pt")
    assert [Path(s).parts[-4] for s in load_model(run / "voices" / "v3.pt").training["averaged_from"]] == ["W24", "W24b"]
    assert load_model(run / "voices" / "W24b" / "phase1" / "best.pt").training["curriculum"][-1]["init_from"].endswith(
        "W24/phase1/epochs/epoch002.pt")
    assert "voices" in (run / "voices" / "V2" / "config.json").read_text()


def test_stereo_rules_use_the_songs_image(monkeypatch):
    """validate.py --stereo-rules: the centre rule puts the estimate's mid on both channels; the spatial
    Wiener filter gives back the mask where there is one channel, and where the voice is centred and
    the accompaniment is not it takes from the vocal estimate what is not in the voice's image."""
    monkeypatch.syspath_prepend(str(ROOT / "recipes" / "mixed"))
    import validate

    rng = np.random.default_rng(0)
    sr, n = 16000, 32000
    est = rng.standard_normal((n, 2)).astype(np.float32)
    assert np.allclose(validate.centre_rule(est), np.repeat(est.mean(1, keepdims=True), 2, 1))
    mono = rng.standard_normal((n, 1)).astype(np.float32)
    assert np.allclose(validate.spatial_wiener(mono, 0.3 * mono, sr), 0.3 * mono, atol=1e-4)

    def snr(ref, x):
        return 10 * np.log10(np.sum(ref ** 2) / np.sum((ref - x) ** 2))

    loud = np.r_[np.ones(n // 2), 0.3 * np.ones(n // 2)][:, None]  # the voice louder in the first half
    voice = np.repeat(rng.standard_normal((n, 1)), 2, 1) * loud  # at the centre
    acc = np.c_[rng.standard_normal(n), 0.1 * rng.standard_normal(n)] * loud[::-1]  # mostly on the left
    mix = (voice + acc).astype(np.float32)
    rough = (mix * np.where(loud > 0.5, 0.7, 0.3)).astype(np.float32)  # a poor mask, right on average
    out = validate.spatial_wiener(mix, rough, sr)
    assert out.shape == mix.shape
    assert snr(voice, out) > snr(voice, rough) + 3


def test_mask_sharpness_scales_the_logit_around_one_half(monkeypatch):
    """validate.py --mask-sharpness: 1 leaves the mask as it is; above 1 moves it away from 0.5, below 1
    towards it; 0.5 stays 0.5 and the order of bins is kept."""
    monkeypatch.syspath_prepend(str(ROOT / "recipes" / "mixed"))
    import validate

    m = np.array([[0.05, 0.3, 0.5, 0.7, 0.99]], np.float32)
    assert validate.sharpened(m, 1.0) is m
    sharp, soft = validate.sharpened(m, 2.0), validate.sharpened(m, 0.5)
    assert np.allclose(sharp[0, 2], 0.5) and np.allclose(soft[0, 2], 0.5)
    assert np.all(np.abs(sharp - 0.5) >= np.abs(m - 0.5)) and np.all(np.abs(soft - 0.5) <= np.abs(m - 0.5))
    assert np.allclose(sharp[0, 3], 0.7 ** 2 / (0.7 ** 2 + 0.3 ** 2), atol=1e-6)
    assert np.all(np.diff(sharp[0]) > 0) and sharp.dtype == np.float32
