"""Many voices: the voice manifest's loader, the sampler's per-source draws, and the voice-data stage
of recipes/mixed (selection, screening, conversion, the held-out split) -- on generated files."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vocalsep.data import Clip, DatasetError, RemixConfig, RemixSampler, load_voices

ROOT = Path(__file__).resolve().parents[1]
SR = 8000


def tone(freq, n, sr=SR, amp=0.3):
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / sr)).astype(np.float32)


def peak_hz(x, sr=SR):
    return np.argmax(np.abs(np.fft.rfft(x))) * sr / len(x)


def clips_500hz(n=2, length=4000):
    return [Clip(f"c{i}", tone(500, length), tone(3000, length, amp=0.1)) for i in range(n)]


@pytest.fixture
def pv(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "recipes" / "mixed"))
    import prepare_voices

    return prepare_voices


# ---- the sampler ------------------------------------------------------------------------------
def test_voice_weights_choose_the_source_of_each_remixed_voice():
    voices = {"a": [tone(1000, 20000)], "b": [tone(2000, 20000)]}
    base = dict(original_pair_prob=0.0, silent_voice_prob=0.0)
    only_b = RemixSampler(clips_500hz(), 2000, RemixConfig(**base, voice_weights={"mir1k": 0, "a": 0}), seed=1,
                          voices=voices).sample(12)[0]
    assert all(abs(peak_hz(v) - 2000) < 10 for v in only_b)
    mixed = RemixSampler(clips_500hz(), 2000, RemixConfig(**base), seed=1, voices=voices).sample(60)[0]
    got = [min((500, 1000, 2000), key=lambda f: abs(peak_hz(v) - f)) for v in mixed]
    assert all(10 <= got.count(f) <= 35 for f in (500, 1000, 2000))  # equal weights by default
    # original pairs still come from the clips, whatever the weights
    pairs = RemixSampler(clips_500hz(), 2000, RemixConfig(original_pair_prob=1.0, silent_voice_prob=0.0,
                                                           voice_weights={"mir1k": 0}), seed=1, voices=voices).sample(6)[0]
    assert all(abs(peak_hz(v) - 500) < 10 for v in pairs)


def test_voice_crops_skip_silence_and_take_the_crops_own_level():
    quiet_then_loud = np.concatenate([np.zeros(40000, np.float32), tone(1000, 40000, amp=0.01)])
    cfg = RemixConfig(original_pair_prob=0.0, silent_voice_prob=0.0, source_gain_db=0.0, level_db=(0.0, 0.0),
                      voice_weights={"mir1k": 0})
    v, a = RemixSampler(clips_500hz(), 2000, cfg, seed=3, voices={"x": [quiet_then_loud]}).sample(8)
    for vv, aa in zip(v, a):
        assert abs(peak_hz(vv) - 1000) < 10
        ratio = np.sqrt(np.mean(vv ** 2) / np.mean(aa ** 2))
        assert 0.8 < ratio < 1.25  # 0 dB against the accompaniment, not 40 dB below it


def test_speech_weighs_nothing_unless_asked_and_unknown_sources_are_named(caplog):
    voices = {"a": [tone(1000, 20000)], "speech": [tone(2000, 20000)]}
    cfg = RemixConfig(original_pair_prob=0.0, silent_voice_prob=0.0, voice_weights={"mir1k": 0})
    got = RemixSampler(clips_500hz(), 2000, cfg, seed=1, voices=voices).sample(20)[0]
    assert all(abs(peak_hz(v) - 1000) < 10 for v in got)
    import logging

    with caplog.at_level(logging.WARNING):
        RemixSampler(clips_500hz(), 2000, RemixConfig(voice_weights={"nope": 1}), voices=voices)
    assert "names ['nope']" in caplog.text and "Its sources: mir1k, a, speech" in caplog.text
    with pytest.raises(DatasetError, match="weight 0"):
        RemixSampler(clips_500hz(), 2000, RemixConfig(voice_weights={"mir1k": 0, "a": 0}), voices=voices)
    with pytest.raises(DatasetError, match=r"voice_weights.a must be a number >= 0"):
        RemixSampler(clips_500hz(), 2000, RemixConfig(voice_weights={"a": -1}), voices=voices)


def test_no_voices_draws_the_same_batches_as_before():
    plain = RemixSampler(clips_500hz(), 1000, RemixConfig(), seed=5).sample(6)
    empty = RemixSampler(clips_500hz(), 1000, RemixConfig(voice_weights={"mir1k": 3}), seed=5, voices={}).sample(6)
    assert all(np.array_equal(x, y) for x, y in zip(plain, empty, strict=True))


def _manifest(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, ["path", "source", "kind", "split", "licence"], delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def test_load_voices_groups_by_source_and_never_loads_held_out_singers(tmp_path):
    for name, f in (("a1", 300), ("a2", 400), ("b1", 500), ("s1", 600), ("h1", 700)):
        sf.write(tmp_path / f"{name}.wav", tone(f, 8000, sr=8000), 8000)
    _manifest(tmp_path / "v.tsv", [
        {"path": "a1.wav", "source": "a", "kind": "voice", "split": "train", "licence": "x"},
        {"path": "a2.wav", "source": "a", "kind": "voice", "split": "train", "licence": "x"},
        {"path": "b1.wav", "source": "b", "kind": "voice", "split": "train", "licence": "x"},
        {"path": "s1.wav", "source": "a", "kind": "speech", "split": "train", "licence": "x"},
        {"path": "h1.wav", "source": "b", "kind": "voice", "split": "heldout", "licence": "x"}])
    v = load_voices(tmp_path / "v.tsv", tmp_path, 16000)
    assert sorted(v) == ["a", "b", "speech"] and len(v["a"]) == 2 and len(v["b"]) == 1
    assert len(v["a"][0]) == 16000 and abs(peak_hz(v["b"][0], 16000) - 500) < 5  # resampled, the right file
    held = load_voices(tmp_path / "v.tsv", tmp_path, 16000, split="heldout")
    assert list(held) == ["b"] and abs(peak_hz(held["b"][0], 16000) - 700) < 5
    _manifest(tmp_path / "bad.tsv", [{"path": "gone.wav", "source": "a", "kind": "voice", "split": "train", "licence": ""}])
    with pytest.raises(DatasetError, match="prepare_voices.py"):
        load_voices(tmp_path / "bad.tsv", tmp_path)
    _manifest(tmp_path / "res.tsv", [{"path": "a1.wav", "source": "mir1k", "kind": "voice", "split": "train", "licence": ""}])
    with pytest.raises(DatasetError, match="reserved"):
        load_voices(tmp_path / "res.tsv", tmp_path)
    (tmp_path / "cols.tsv").write_text("path\tlicence\na1.wav\tx\n")
    with pytest.raises(DatasetError, match="columns"):
        load_voices(tmp_path / "cols.tsv", tmp_path)


def test_training_draws_voices_from_a_generated_manifest(tmp_path, caplog):
    from conftest import write_mir1k_clips
    from vocalsep.checkpoint import load_model
    from vocalsep.config import load_config
    from vocalsep.train import train_phase

    clips = write_mir1k_clips(tmp_path / "mir1k", 2, 1.0)
    (tmp_path / "v").mkdir()
    sf.write(tmp_path / "v" / "x.wav", tone(440, 48000, sr=16000), 16000)
    _manifest(tmp_path / "v.tsv", [{"path": "x.wav", "source": "x", "kind": "voice", "split": "train", "licence": "x"}])
    cfg = load_config(None, [
        f"data_root={json.dumps(str(clips))}", 'arch="unet"', "model={channels=2, depth=2}", "features.n_mels=20",
        f"voices={json.dumps(str(tmp_path / 'v.tsv'))}", f"voices_root={json.dumps(str(tmp_path / 'v'))}",
        "remix.voice_weights={mir1k=0, x=1}",
        "phases=[{chunk_frames=20, batch_size=2, steps_per_epoch=2, max_epochs=1, lr=1e-2}]"])
    assert load_model(train_phase(cfg, 1, tmp_path / "exp")).arch == "unet"
    bad = load_config(None, [f"data_root={json.dumps(str(clips))}", 'arch="unet"', "model={channels=2, depth=2}",
                             "features.n_mels=20", f"voices={json.dumps(str(tmp_path / 'v.tsv'))}",
                             f"voices_root={json.dumps(str(tmp_path / 'v'))}", "remix.voice_weights={mir1k=0, y=1}",
                             "phases=[{chunk_frames=20, batch_size=2, steps_per_epoch=1, max_epochs=1}]"])
    import logging

    with caplog.at_level(logging.WARNING):  # a source that was not prepared is left out, and said so
        assert load_model(train_phase(bad, 1, tmp_path / "exp2")).arch == "unet"
    assert "names ['y']" in caplog.text


def test_voices_config_is_the_default_models_fine_tune_with_every_source():
    from vocalsep.config import load_config

    fine = load_config(ROOT / "recipes" / "mixed" / "conf_1024.toml")
    many = load_config(ROOT / "recipes" / "mixed" / "conf_voices.toml")
    assert many.features == fine.features and many.model == fine.model and many.valid_set == fine.valid_set
    assert many.voices == "data/voices/voices.tsv"
    with open(ROOT / many.voices) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    sources = {r["source"] for r in rows if r["split"] == "train" and r["kind"] == "voice"}
    assert set(many.remix["voice_weights"]) <= sources | {"mir1k"}
    assert all(r["licence"] and float(r["duration_s"]) >= 0.3 for r in rows)
    assert {r["split"] for r in rows} == {"train", "heldout"}
    # no singer is on both sides of the split
    named = {}
    for r in rows:
        if r["singer"]:
            named.setdefault((r["source"], r["singer"]), set()).add(r["split"])
    assert all(len(s) == 1 for s in named.values())


# ---- the voice-data stage -------------------------------------------------------------------------
@pytest.mark.parametrize("source,path,kind", [
    ("gtsinger", "assets/zh05_Breathy-BtdTynHA.wav", "voice"),
    ("gtsinger", "assets/EN-Alto-2-Vibrato-Control-BZSqUK70.wav", "voice"),
    ("gtsinger", "assets/ru03_Speech-E1X6oxiG.wav", "speech"),
    ("gtsinger", "assets/ST-parallel-EN_1-Reference-PCqjWFw1.wav", "voice"),
    ("gtsinger", "assets/SVS-Parallel-French-Ground_Truth-B8XJlU9-.wav", "voice"),
    ("gtsinger", "assets/svspen_GT-Doi_l5X1.wav", "voice"),
    ("gtsinger", "assets/svspen_RMSSinger-BnLP6ooc.wav", None),
    ("gtsinger", "assets/ST-parallel-EN_2-StyleSinger-CjrHp00u.wav", None),
    ("gtsinger", "assets/STS-Chinese-AlignSTS-CxRAZBC0.wav", None),
    ("gtsinger", "assets/SVS-Parallel-French-DiffSinger-AAAAAAAA.wav", None),
    ("m4singer", "m4singer/audio/SVS/GT/1.wav", "voice"),
    ("m4singer", "m4singer/audio/SVS/GTvoc/1.wav", None),  # ground truth through a vocoder
    ("m4singer", "m4singer/audio/SVS/mixed/1.wav", None),
    ("m4singer", "m4singer/audio/CSV/plus12/1.wav", None),
    ("m4singer", "m4singer/audio/samples/Alto-1_2.wav", "voice"),
    ("fmsing", "wav_for_demo/singing/Test_unseen_man/GT/m2_1_stc1.wav", "voice"),
    ("fmsing", "wav_for_demo/singing/Test_unseen_man/MelGAN/m2_1_stc1.wav", None),
    ("fmsing", "wav_for_demo/system/GT/x_gen.wav", None),  # named *_gen: generated
    ("comelsinger", "unseen/f1/demo-01/reference.wav", "voice"),
    ("comelsinger", "unseen/f1/demo-01/ours.wav", None),
    ("milk-en", "A3/ka.wav", "voice"),
    ("milk-en", "Whisper/ka.wav", None),
    ("alys", "breaths/b1.wav", None),
])
def test_selection_keeps_real_singing_only(pv, source, path, kind):
    src = next(s for s in pv.SOURCES if s.name == source)
    assert src.pick(path) == kind


def test_screening_drops_a_noise_floor_near_the_voice_and_keeps_a_clean_one(pv):
    rng = np.random.default_rng(0)
    notes = np.concatenate([np.r_[tone(440, 8000, 16000), np.zeros(4000, np.float32)] for _ in range(4)])
    assert pv.screen(notes + 1e-4 * rng.standard_normal(len(notes)).astype(np.float32), 30)[0] == ""
    why, spread = pv.screen(notes + 0.03 * rng.standard_normal(len(notes)).astype(np.float32), 30)
    assert "noise floor" in why and spread < 30
    assert "clipped" in pv.screen(np.clip(notes * 10, -1, 1), 30)[0]


def test_silences_are_shortened_and_ends_trimmed(pv):
    x = np.r_[np.zeros(16000, np.float32), tone(440, 8000, 16000), np.zeros(32000, np.float32), tone(440, 8000, 16000),
              np.zeros(16000, np.float32)]
    y = pv.tighten(x)
    assert abs(len(y) - (16000 + 0.3 * 16000)) <= 2 * pv.FRAME
    assert np.abs(y[:pv.FRAME]).max() > 0.1 and np.abs(y[-pv.FRAME:]).max() > 0.1


def test_the_stage_writes_manifest_rejections_and_held_out_mixtures(tmp_path, pv, monkeypatch):
    rng = np.random.default_rng(1)
    repos = tmp_path / "repos"
    notes = lambda f: np.concatenate([np.r_[tone(f, 16000, 16000), np.zeros(8000, np.float32)] for _ in range(3)])
    gts = repos / "GTSinger.github.io" / "assets"
    gts.mkdir(parents=True)
    sf.write(gts / "zh01_Control-AAAAAAAA.wav", notes(300), 16000)
    sf.write(gts / "ru01_Vibrato-BBBBBBBB.wav", np.r_[notes(350), notes(360)], 16000)  # held out: Russian
    sf.write(gts / "zh01_Speech-CCCCCCCC.wav", notes(200), 16000)
    sf.write(gts / "svspen_RMSSinger-DDDDDDDD.wav", notes(400), 16000)  # a system's output: not taken
    sf.write(gts / "zh02_Breathy-EEEEEEEE.wav", notes(500) + 0.05 * rng.standard_normal(72000).astype(np.float32), 16000)
    bank = repos / "milk-en" / "A3"
    bank.mkdir(parents=True)
    for k in range(5):
        sf.write(bank / f"s{k}.wav", np.r_[np.zeros(4000), tone(220 + 20 * k, 8000, 16000)], 16000)
    mir1k = tmp_path / "mir1k" / "unseen"
    mir1k.mkdir(parents=True)
    sf.write(mir1k / "khair_1_01.wav", np.stack([tone(3000, 48000, 16000), tone(600, 48000, 16000)], 1), 16000)
    out = tmp_path / "out" / "voices.tsv"
    assert pv.main(["--repos", str(repos), "--work", str(tmp_path / "work"), "--manifest", str(out),
                    "--mir1k", str(tmp_path / "mir1k")]) == 0
    with open(out) as f:
        rows = {r["file"]: r for r in csv.DictReader(f, delimiter="\t")}
    assert set(rows) == {"assets/zh01_Control-AAAAAAAA.wav", "assets/ru01_Vibrato-BBBBBBBB.wav",
                         "assets/zh01_Speech-CCCCCCCC.wav", "A3/{5 files}"}
    assert rows["assets/ru01_Vibrato-BBBBBBBB.wav"]["split"] == "heldout"
    assert rows["assets/zh01_Speech-CCCCCCCC.wav"]["kind"] == "speech"
    assert rows["A3/{5 files}"]["licence"].startswith("Milk voicebank terms")
    assert all(r["licence"] == "CC BY-NC-SA 4.0" for k, r in rows.items() if k.startswith("assets/"))
    x, sr = sf.read(tmp_path / "work" / "audio" / rows["assets/zh01_Control-AAAAAAAA.wav"]["path"])
    assert sr == 16000 and x.ndim == 1
    assert abs(len(x) - (3 * 16000 + 2 * 0.3 * 16000)) < 4 * pv.FRAME  # 0.5 s pauses shortened to 0.3 s
    with open(out.with_name("rejected.tsv")) as f:
        rejected = {r["file"]: r["why"] for r in csv.DictReader(f, delimiter="\t")}
    assert list(rejected) == ["assets/zh02_Breathy-EEEEEEEE.wav"] and "noise floor" in rejected["assets/zh02_Breathy-EEEEEEEE.wav"]
    held = (tmp_path / "work" / "heldout" / "heldout.txt").read_text().split()
    assert len(held) == 1  # 5.4 s of held-out voice: one clip
    mix, sr = sf.read(tmp_path / "work" / "heldout" / held[0])
    assert mix.shape[1] == 2 and abs(peak_hz(mix[:, 0], sr) - 3000) < 5 and abs(peak_hz(mix[:, 1], sr) - 355) < 15
    assert abs(10 * np.log10(np.mean(mix[:, 1] ** 2) / np.mean(mix[:, 0] ** 2))) < 0.5  # 0 dB
    # the held-out clips are a MIR-1K-style corpus that evaluate reads
    from vocalsep.data import load_mir1k
    assert len(load_mir1k(tmp_path / "work" / "heldout", tmp_path / "work" / "heldout" / "heldout.txt")) == 1
