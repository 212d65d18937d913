import dataclasses
import math
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import song
from vocalsep.checkpoint import ModelBundle, load_model, save_model
from vocalsep.separator import Separator
from vocalsep.config import ConfigError, load_config
from vocalsep.train import train_phase


@pytest.fixture
def clips(tmp_path):
    root = tmp_path / "mir1k"
    (root / "train").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        acc = song(1.5, 16000, 1, seed=i)[0] * 0.5
        voice = np.sin(2 * np.pi * (300 + 50 * i) * np.arange(24000) / 16000) * (rng.random(24000) > 0.0) * 0.3
        sf.write(root / "train" / f"s_{i}.wav", np.stack([acc, voice], 1), 16000)
    (root / "train" / "broken.wav").write_text("not audio")
    return root


def tiny_config(root, **over):
    sets = [f"data_root={json.dumps(str(root))}", "model.hidden=8", "model.layers=1", "model.emb_dim=4",
            "features.n_mels=20", "checkpoint_every=2", "voice_rule_batches=2",
            "phases=[{chunk_frames=20, batch_size=2, steps_per_epoch=3, max_epochs=2, lr=1e-2}, "
            "{chunk_frames=40, batch_size=2, steps_per_epoch=2, max_epochs=1, lr=1e-3}]"]
    sets += [f"{k}={v}" for k, v in over.items()]
    return load_config(None, sets)


def test_two_phase_training_produces_a_usable_model(tmp_path, clips):
    cfg = tiny_config(clips, silence_db=35.0)
    out = tmp_path / "exp"
    train_phase(cfg, 1, out)
    best = train_phase(cfg, 2, out)
    bundle = load_model(best)
    assert bundle.voice_rule is not None and bundle.training["phase"] == 2
    assert bundle.separation["silence_db"] == 35.0  # the loss's threshold is the separator's
    assert (out / "config.json").is_file() and (out / "phase1" / "log.jsonl").is_file()
    out_audio = Separator(bundle, segment_frames=50).separate(song(1.0, 16000, 1), 16000)
    assert out_audio["vocals"].shape == (1, 16000)


def test_phase2_needs_phase1(tmp_path, clips):
    with pytest.raises(ConfigError, match="run phase 1 first"):
        train_phase(tiny_config(clips), 2, tmp_path / "exp")


@pytest.mark.parametrize("die_after", [1, 2])  # checkpoints: 1 mid-epoch, 2 at the end of epoch 1
def test_killed_run_resumes_to_the_same_weights(tmp_path, clips, monkeypatch, die_after):
    cfg = tiny_config(clips)
    train_phase(cfg, 1, tmp_path / "straight")
    ref = torch.load(tmp_path / "straight" / "phase1" / "last.pt", weights_only=True)["model"]

    import vocalsep.train as tr

    real_save, calls = tr.atomic_torch_save, {"n": 0}

    def dying_save(obj, path):
        real_save(obj, path)
        calls["n"] += 1
        if calls["n"] == die_after:
            raise KeyboardInterrupt

    monkeypatch.setattr(tr, "atomic_torch_save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        train_phase(cfg, 1, tmp_path / "killed")
    monkeypatch.setattr(tr, "atomic_torch_save", real_save)
    train_phase(cfg, 1, tmp_path / "killed")
    got = torch.load(tmp_path / "killed" / "phase1" / "last.pt", weights_only=True)["model"]
    for k in ref:
        assert torch.equal(ref[k], got[k]), k
    logs = [[json.loads(line) for line in (tmp_path / run / "phase1" / "log.jsonl").read_text().splitlines()]
            for run in ("straight", "killed")]
    assert [r["train_loss"] for r in logs[0]] == [r["train_loss"] for r in logs[1]]  # every step counted once


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_cuda_training_without_a_gpu_is_refused(tmp_path, clips):
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        train_phase(tiny_config(clips, device='"cuda"'), 1, tmp_path / "exp")


def test_config_errors_are_specific(tmp_path):
    with pytest.raises(ConfigError, match="unknown config keys"):
        load_config(None, ["colour=1"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["oops"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.toml")


def test_a_phase_changes_the_remix_settings_for_itself_only():
    phases = ("phases=[{max_epochs=1}, {max_epochs=1, remix={speed_prob=0.5, source_gain_db=6.0}}]")
    cfg = load_config(None, ["remix.source_gain_db=3.0", "remix.level_db=[-20.0, 0.0]", phases])
    first, second = cfg.remix_for(1), cfg.remix_for(2)
    assert (first.speed_prob, first.source_gain_db) == (0.0, 3.0)
    assert (second.speed_prob, second.source_gain_db, tuple(second.level_db)) == (0.5, 6.0, (-20.0, 0.0))
    with pytest.raises(ConfigError, match=r"phases.1.remix: unknown keys \['sped_prob'\]"):
        load_config(None, ["phases=[{max_epochs=1}, {remix={sped_prob=0.5}}]"])
    with pytest.raises(ConfigError, match="phases.0.remix.speed_prob must be"):
        load_config(None, ["phases=[{remix={speed_prob=1.5}}]"])
    with pytest.raises(ConfigError, match="remix.formant_ratio must be"):
        load_config(None, ["remix.formant_ratio=0.8"])


def test_recipe_config_parses():
    from pathlib import Path

    cfg = load_config(Path(__file__).parents[1] / "recipes" / "mir1k" / "conf.toml")
    assert [p.chunk_frames for p in cfg.phases] == [100, 500]
    assert cfg.optimizer == "rmsprop"


def test_sigkilled_training_process_resumes_to_the_same_weights(tmp_path, clips):
    import os
    import signal
    import subprocess
    import sys
    import time

    overrides = ["phases.0.steps_per_epoch=6", "phases.0.max_epochs=3"]
    cfg = tiny_config(clips, **dict(o.split("=") for o in overrides))
    train_phase(cfg, 1, tmp_path / "straight")
    ref = torch.load(tmp_path / "straight" / "phase1" / "last.pt", weights_only=True)["model"]

    killed = tmp_path / "killed"
    code = ("import sys, json; sys.path.insert(0, sys.argv[1]); from test_train import tiny_config; "
            "from vocalsep.train import train_phase; "
            "train_phase(tiny_config(sys.argv[2], **json.loads(sys.argv[3])), 1, sys.argv[4])")
    proc = subprocess.Popen([sys.executable, "-c", code, str(Path(__file__).parent), str(clips),
                             json.dumps(dict(o.split("=") for o in overrides)), str(killed)],
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while not (killed / "phase1" / "last.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    train_phase(cfg, 1, killed)
    got = torch.load(killed / "phase1" / "last.pt", weights_only=True)["model"]
    for k in ref:
        assert torch.equal(ref[k], got[k]), k


def test_unreadable_clips_are_reported_and_skipped(clips, caplog):
    from vocalsep.data import DatasetError, load_mir1k

    with caplog.at_level("WARNING"):
        loaded = load_mir1k(clips)
    assert len(loaded) == 4 and "broken.wav" in caplog.text
    with pytest.raises(DatasetError, match="broken.wav"):
        load_mir1k(clips, skip_bad=False)


def test_two_process_torchrun_training_keeps_ranks_identical(tmp_path, clips):
    import os
    import subprocess
    import sys

    script = tmp_path / "ddp_train.py"
    script.write_text(f'''
import sys, torch, torch.distributed as dist
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_train import tiny_config
from vocalsep.train import train_phase

def dump(model, state):
    torch.save(model.state_dict(), {str(tmp_path)!r} + f"/rank{{dist.get_rank()}}.pt")

train_phase(tiny_config({str(clips)!r}), 1, {str(tmp_path / "exp")!r}, on_epoch_end=dump)
''')
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the two ranks drew different batches, and rank 0 alone wrote the run's files
    assert (tmp_path / "exp" / "phase1" / "best.pt").is_file()
    assert len((tmp_path / "exp" / "phase1" / "log.jsonl").read_text().splitlines()) == 2
    ck = torch.load(tmp_path / "exp" / "phase1" / "last.pt", weights_only=True)
    assert len(ck["samplers"]) == 2 and ck["samplers"][0] != ck["samplers"][1]


def test_dsd100_layout_loads_and_a_bad_root_is_explained(tmp_path):
    from vocalsep.data import DatasetError, load_clips

    track = tmp_path / "DSD100" / "Sources" / "Dev" / "001 - Artist - Song"
    track.mkdir(parents=True)
    for i, stem in enumerate(("vocals", "bass", "drums", "other")):
        sf.write(track / f"{stem}.wav", song(1.0, 44100, 2, seed=i).T, 44100)
    clips = load_clips("dsd100", tmp_path / "DSD100", "Dev")
    assert len(clips) == 1 and len(clips[0].voice) == 16000 and len(clips[0].accompaniment) == 16000
    with pytest.raises(DatasetError, match="Sources/"):
        load_clips("dsd100", tmp_path / "nowhere", "Dev")
    with pytest.raises(DatasetError, match="no test/ folder"):
        load_clips("musdb", tmp_path, "test")
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_clips("timit", tmp_path, "")


def test_init_from_copies_weights_and_adds_a_fresh_head(tmp_path, clips):
    cfg = tiny_config(clips)
    first = train_phase(cfg, 1, tmp_path / "dc")
    from vocalsep.models import build_model
    from vocalsep.train import init_from_file

    m = build_model("chimera", 20, hidden=8, layers=1, emb_dim=4)
    history = init_from_file(m, first)
    src = load_model(first).model.state_dict()
    assert all(torch.equal(m.state_dict()[k], v) for k, v in src.items())
    assert history[-1]["init_from"] == str(first)
    with pytest.raises(ConfigError, match="does not match"):
        init_from_file(build_model("mirex2016", 20, hidden=6, layers=1, emb_dim=4), first)
    with pytest.raises(ConfigError, match="does not match"):
        init_from_file(build_model("mask-ff", 20), first)
    # a Chimera run started from it trains its new head and keeps the history
    chimera = tiny_config(clips, arch='"chimera"', init_from=json.dumps(str(first)))
    chimera.phases = chimera.phases[:1]
    bundle = load_model(train_phase(chimera, 1, tmp_path / "chimera"))
    assert bundle.model.heads == ("embedding", "mask")
    assert bundle.training["curriculum"][-1]["init_from"] == str(first)
    # ... also when it stops on its budget and goes on: a resumed run keeps what it continues
    stopped = tiny_config(clips, arch='"chimera"', init_from=json.dumps(str(first)),
                          **{"phases.0.max_minutes": "1e-9"})
    stopped.phases = stopped.phases[:1]
    train_phase(stopped, 1, tmp_path / "resumed")
    bundle = load_model(train_phase(chimera, 1, tmp_path / "resumed"))
    assert bundle.training["steps"] == 6 and bundle.training["curriculum"][-1]["init_from"] == str(first)


def test_init_from_a_model_with_another_stft_recomputes_the_input_statistics(tmp_path, clips):
    """Fine-tuning onto a longer STFT window: the weights carry over (as many mel bands), the per-band
    input statistics are those of the new features, and the file's own analysis is kept in the history."""
    from vocalsep.data import load_clips
    from vocalsep.train import FeatureExtractor, feature_stats

    cfg = tiny_config(clips)
    cfg.phases = cfg.phases[:1]
    first = train_phase(cfg, 1, tmp_path / "short")
    longer = tiny_config(clips, init_from=json.dumps(str(first)), **{"features.n_fft": 1024})
    longer.phases = [dataclasses.replace(longer.phases[0], max_epochs=1, lr=1e-12)]
    bundle = load_model(train_phase(longer, 1, tmp_path / "long"))
    assert bundle.features.n_fft == 1024
    fx = FeatureExtractor(bundle.features, longer.silence_db)
    mean, std = feature_stats(load_clips("mir1k", clips, longer.train_set, 16000), fx)
    state, src = bundle.model.state_dict(), load_model(first).model.state_dict()
    assert torch.allclose(state["feature_mean"], mean) and torch.allclose(state["feature_std"], std)
    assert not torch.allclose(src["feature_mean"], mean)
    assert bundle.training["curriculum"][-1]["init_features"]["n_fft"] == 512
    with pytest.raises(ConfigError, match="20 mel bands and this config has 24"):
        train_phase(tiny_config(clips, init_from=json.dumps(str(first)), **{"features.n_mels": 24}), 1, tmp_path / "x")


def test_ratio_mask_target_is_the_voices_share_of_each_band():
    from vocalsep.features import FeatureConfig
    from vocalsep.config import ConfigError, load_config
    from vocalsep.train import FeatureExtractor

    fx = FeatureExtractor(FeatureConfig(n_mels=20), 40.0, mask_target="irm")
    rng = torch.Generator().manual_seed(0)
    voice, acc = torch.randn(2, 4000, generator=rng), 0.5 * torch.randn(2, 4000, generator=rng)
    _, labels, _, target = fx(voice, acc)
    assert target.shape == labels.shape and float(target.min()) >= 0 and float(target.max()) <= 1
    assert torch.all((target > 0.5) == (labels == 0))  # the larger share is the dominant source
    assert torch.allclose(fx(voice, torch.zeros_like(acc))[3], torch.ones_like(target))
    _, labels, _, binary = FeatureExtractor(FeatureConfig(n_mels=20), 40.0)(voice, acc)
    assert torch.equal(binary, (labels == 0).float())
    with pytest.raises(ConfigError, match="mask_target"):
        load_config(None, ['mask_target="soft"'])



def test_signal_approximation_loss_is_the_reconstruction_error_energy():
    """mask_target="sa": the weighted mask error equals the masked mixture's squared error against the
    voice (mel magnitudes, X^2 weights, per example over its loud bins) wherever V <= X; each example's
    weights average 1, so a mixture 20 dB quieter counts the same."""
    from vocalsep.features import FeatureConfig
    from vocalsep.losses import mask_loss
    from vocalsep.train import FeatureExtractor

    fcfg = FeatureConfig(n_mels=20)
    fx = FeatureExtractor(fcfg, 40.0, mask_target="sa")
    rng = torch.Generator().manual_seed(1)
    voice, acc = torch.randn(2, 4000, generator=rng), 0.5 * torch.randn(2, 4000, generator=rng)
    _, labels, weights, target = fx(voice, acc)
    assert float(target.min()) >= 0 and float(target.max()) <= 1
    loud = FeatureExtractor(fcfg, 40.0)(voice, acc)[2]
    assert torch.allclose((weights.sum((1, 2)) / loud.sum((1, 2))), torch.ones(2), atol=1e-4)
    mask = torch.rand(labels.shape, generator=rng)
    _, mel = fx.front.analyse(np.concatenate([voice.numpy(), (voice + acc).numpy()]))
    v, x = (torch.from_numpy(m) for m in mel.reshape(2, 2, *mel.shape[1:]))
    ok = loud * (v <= x)  # where the target is not clipped at 1
    direct = (ok * (mask * x - v).square()).sum((1, 2)) / (ok * x.square()).sum((1, 2))
    via_weights = (ok * weights * (mask - target).square()).sum((1, 2)) / (ok * weights).sum((1, 2))
    assert torch.allclose(direct, via_weights, rtol=1e-3)
    quiet = fx(0.1 * voice, 0.1 * acc)
    assert torch.allclose(quiet[2], weights, rtol=1e-3, atol=1e-5) and torch.allclose(quiet[3], target, atol=1e-4)
    assert float(mask_loss(target, labels, weights, target)) == 0.0
    for b in range(2):  # each loud bin weighs as its mixture power, one scale per example
        ratio = weights[b][loud[b] > 0] / x[b][loud[b] > 0].square()
        assert float(ratio.std() / ratio.mean()) < 1e-3
    assert torch.equal(weights[loud == 0], torch.zeros_like(weights[loud == 0]))

def test_a_wider_unet_run_starts_from_a_narrower_model_file(tmp_path, clips):
    """model.channels above the file's: the run starts at the file's mask and records the widening;
    another depth is refused."""
    from vocalsep.features import FeatureConfig
    from vocalsep.models import build_model
    from vocalsep.train import init_from_file

    torch.manual_seed(0)
    narrow = build_model("unet", 20, channels=2, depth=2).eval()
    first = tmp_path / "narrow.pt"
    save_model(first, ModelBundle(model=narrow, features=FeatureConfig(n_mels=20), arch="unet",
                                  model_kwargs={"channels": 2, "depth": 2}))
    wide = build_model("unet", 20, channels=3, depth=2)
    history = init_from_file(wide, first, FeatureConfig(n_mels=20))
    assert history[-1]["widened_from_channels"] == 2
    x = torch.randn(1, 30, 20)
    with torch.no_grad():
        assert torch.allclose(wide.eval()(x)["mask"], narrow(x)["mask"], atol=1e-6)
    with pytest.raises(ConfigError, match="does not match"):
        init_from_file(build_model("unet", 20, channels=3, depth=3), first, FeatureConfig(n_mels=20))
    run = tiny_config(clips, arch='"unet"', init_from=json.dumps(str(first)), **{"model": "{channels=3, depth=2}"})
    run.phases = [dataclasses.replace(run.phases[0], max_epochs=1)]
    bundle = load_model(train_phase(run, 1, tmp_path / "wide"))
    assert bundle.model_kwargs["channels"] == 3 and bundle.training["curriculum"][-1]["widened_from_channels"] == 2


def test_a_phase_stopped_by_its_time_budget_goes_on_when_the_budget_grows(tmp_path, clips):
    def cfg(minutes):
        return tiny_config(clips, **{"phases.0.max_epochs": "3", "phases.0.max_minutes": minutes})

    out = tmp_path / "budget"
    train_phase(cfg("1e-9"), 1, out)
    state = torch.load(out / "phase1" / "last.pt", weights_only=False)["state"]
    assert (state["epoch"], state["stopped"]) == (1, "time budget")
    train_phase(cfg("1e-9"), 1, out)  # the same budget: nothing more
    assert torch.load(out / "phase1" / "last.pt", weights_only=False)["state"]["epoch"] == 1

    train_phase(cfg("0"), 1, out)  # no budget: on to max_epochs
    got = torch.load(out / "phase1" / "last.pt", weights_only=False)
    assert got["state"]["epoch"] == 3 and not got["state"]["stopped"] and got["state"]["finalised"]
    train_phase(cfg("0"), 1, tmp_path / "straight")
    ref = torch.load(tmp_path / "straight" / "phase1" / "last.pt", weights_only=True)["model"]
    for k in ref:  # stopping and going on draws the batches of a run that never stopped
        assert torch.equal(ref[k], got["model"][k]), k


@pytest.mark.parametrize("arch", ["mirex2016", "unet"])
def test_bfloat16_training_follows_the_float32_run_closely(tmp_path, clips, arch):
    over = {"arch": f'"{arch}"', "phases.0.max_epochs": "1"}
    if arch == "unet":  # no BLSTM sizes for a U-Net
        over.update({"model": "{channels=4, depth=2, kernel=3}", "features.n_mels": "16"})
    runs = {}
    for precision in ("fp32", "bf16"):
        cfg = tiny_config(clips, precision=f'"{precision}"', **over)
        train_phase(cfg, 1, tmp_path / precision)
        runs[precision] = json.loads((tmp_path / precision / "phase1" / "log.jsonl").read_text().splitlines()[-1])
        assert load_model(tmp_path / precision / "phase1" / "best.pt").model is not None
    f32, b16 = runs["fp32"]["valid_loss"], runs["bf16"]["valid_loss"]
    assert math.isfinite(b16) and b16 != f32 and abs(b16 - f32) < 0.05 * f32
    with pytest.raises(ConfigError, match="unknown precision 'fp16'; choose one of fp32, bf16"):
        tiny_config(clips, precision='"fp16"')
