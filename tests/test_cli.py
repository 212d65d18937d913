import numpy as np
import soundfile as sf
from click.testing import CliRunner

from conftest import song
from vocalsep.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_split_writes_stems_with_input_rate_and_channels(tmp_path, wav_file, model_file):
    out = tmp_path / "out"
    res = run("split", wav_file, "-o", out, "--model", model_file, "--float32")
    assert res.exit_code == 0, res.output
    x, sr = sf.read(wav_file, always_2d=True)
    stems = {s: sf.read(out / "my song" / f"{s}.wav", always_2d=True) for s in ("vocals", "accompaniment")}
    for y, ysr in stems.values():
        assert ysr == sr and y.shape == x.shape
    assert np.abs(stems["vocals"][0] + stems["accompaniment"][0] - x).max() < 1e-5


def test_existing_outputs_are_kept_without_force(tmp_path, wav_file, model_file):
    out = tmp_path / "out"
    assert run("split", wav_file, "-o", out, "--model", model_file).exit_code == 0
    target = out / "my song" / "vocals.wav"
    target.write_bytes(b"keep me")
    res = run("split", wav_file, "-o", out, "--model", model_file)
    assert res.exit_code == 1
    assert "already exists" in res.output and "--force" in res.output
    assert target.read_bytes() == b"keep me"
    assert run("split", wav_file, "-o", out, "--model", model_file, "--force").exit_code == 0
    assert target.read_bytes() != b"keep me"


def test_bad_files_are_reported_and_the_rest_processed(tmp_path, wav_file, model_file):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio")
    folder = tmp_path / "folder"
    folder.mkdir()
    out = tmp_path / "out"
    res = run("split", tmp_path / "missing.wav", empty, text, folder, wav_file, "-o", out, "--model", model_file)
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.startswith("vocalsep: error:")]
    assert len(lines) == 4
    assert "missing.wav: no such file" in lines[0]
    assert "empty.wav: file is empty" in lines[1]
    assert "notes.wav" in lines[2] and "not a readable audio file" in lines[2]
    assert "folder without audio files" in lines[3]
    assert "4 of 5 files failed" in res.output
    assert (out / "my song" / "vocals.wav").is_file()
    assert "Traceback" not in res.output


def test_flac_output_and_mel_reconstruction(tmp_path, model_file):
    src = tmp_path / "mono.flac"
    sf.write(src, song(2.0, 22050, 1)[0], 22050)
    res = run("split", src, "-o", tmp_path / "o", "--model", model_file, "--format", "flac", "--reconstruct", "mel")
    assert res.exit_code == 0, res.output
    y, sr = sf.read(tmp_path / "o" / "mono" / "vocals.flac")
    assert sr == 22050 and y.ndim == 1


def test_bad_model_is_one_line_error(tmp_path, wav_file):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    res = run("split", wav_file, "--model", bad, "-o", tmp_path / "o")
    assert res.exit_code == 1
    assert res.output.strip().count("\n") == 0 and "bad.pt" in res.output


def test_same_stem_twice_is_not_overwritten(tmp_path, model_file):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        sf.write(tmp_path / d / "take.wav", song(1.0, 16000, 1)[0], 16000)
    res = run("split", tmp_path / "a" / "take.wav", tmp_path / "b" / "take.wav", "-o", tmp_path / "o", "--model", model_file)
    assert res.exit_code == 1 and "has the same output" in res.output


def test_models_lists_registry():
    res = run("models")
    assert res.exit_code == 0


def _mir1k_like(root, n=2, seconds=1.5, sr=16000):
    (root / "train").mkdir(parents=True)
    for i in range(n):
        acc = song(seconds, sr, 1, seed=i)[0] * 0.5
        voice = 0.3 * np.sin(2 * np.pi * (300 + 40 * i) * np.arange(int(seconds * sr)) / sr)
        sf.write(root / "train" / f"clip_{i}.wav", np.stack([acc, voice], 1), sr)
    return root


def test_evaluate_mir1k_scores_and_writes_estimates(tmp_path, model_file):
    import json

    root = _mir1k_like(tmp_path / "mir1k")
    res = run("evaluate", "--mir1k", root, "--model", model_file, "-o", tmp_path / "ev")
    assert res.exit_code == 0, res.output
    assert "GNSDR" in res.output and "voice cluster picked right" in res.output
    scores = json.loads((tmp_path / "ev" / "scores.json").read_text())
    assert scores["summary"]["clips"] == 2 and len(scores["clips"]) == 2
    for clip in scores["clips"]:
        assert all(np.isfinite(clip["nsdr"]))
        assert np.isnan(clip["voice_pick"]) or 0.0 <= clip["voice_pick"] <= 1.0
    assert (tmp_path / "ev" / "clip_0" / "vocals.wav").is_file()


def test_evaluate_mir1k_rescores_written_estimates_to_the_same_numbers(tmp_path):
    import json

    root = _mir1k_like(tmp_path / "mir1k")
    first = run("evaluate", "--mir1k", root, "--oracle", "irm-mel", "-o", tmp_path / "ev")
    assert first.exit_code == 0, first.output
    again = run("evaluate", "--mir1k", root, "--estimates", tmp_path / "ev", "-o", tmp_path / "ev2")
    assert again.exit_code == 0, again.output
    a, b = (json.loads((tmp_path / d / "scores.json").read_text())["summary"] for d in ("ev", "ev2"))
    assert a["vocals"] == b["vocals"] and a["accompaniment"] == b["accompaniment"]
    # an estimate that does not cover its clip is refused by name, not scored
    sf.write(tmp_path / "ev" / "clip_1" / "vocals.wav", np.zeros(4000, np.float32), 16000, subtype="FLOAT")
    bad = run("evaluate", "--mir1k", root, "--estimates", tmp_path / "ev")
    assert bad.exit_code == 1 and "clip_1: estimate vocals is 0.25 s long" in bad.output


def test_evaluate_refuses_a_missing_dataset(tmp_path, model_file):
    res = run("evaluate", "--mir1k", tmp_path / "nope", "--model", model_file)
    assert res.exit_code == 1 and "is not a directory" in res.output


def test_train_command_runs_a_tiny_config(tmp_path):
    root = _mir1k_like(tmp_path / "mir1k", n=3)
    conf = tmp_path / "conf.toml"
    conf.write_text(f'''
data_root = "{root}"
voice_rule_batches = 1
[model]
hidden = 8
layers = 1
emb_dim = 4
[features]
n_mels = 20
[[phases]]
chunk_frames = 20
batch_size = 2
steps_per_epoch = 2
max_epochs = 1
''')
    res = run("train", "-c", conf, "-o", tmp_path / "exp")
    assert res.exit_code == 0, res.output
    best = tmp_path / "exp" / "phase1" / "best.pt"
    assert best.is_file()
    out = run("split", tmp_path / "mir1k" / "train" / "clip_0.wav", "--model", best, "-o", tmp_path / "sep")
    assert out.exit_code == 0, out.output
    bad = run("train", "-c", conf, "-o", tmp_path / "exp2", "--set", "nonsense=1")
    assert bad.exit_code == 1 and "unknown config keys" in bad.output


def test_oracle_masks_score_above_an_untrained_model(tmp_path, model_file):
    import json

    root = _mir1k_like(tmp_path / "mir1k")
    gnsdr = {}
    for name, extra in [("model", []), ("ibm-mel", ["--oracle", "ibm-mel"]), ("irm", ["--oracle", "irm"])]:
        res = run("evaluate", "--mir1k", root, "--model", model_file, "-o", tmp_path / name, *extra)
        assert res.exit_code == 0, res.output
        gnsdr[name] = json.loads((tmp_path / name / "scores.json").read_text())["summary"]["vocals"]["GNSDR"]
    assert gnsdr["ibm-mel"] > gnsdr["model"] + 3 and gnsdr["irm"] > gnsdr["model"] + 3
    assert run("evaluate", "--musdb", root, "--oracle", "ibm", "--estimates", tmp_path, "-o", tmp_path / "x").exit_code == 2


def test_shifts_on_the_command_line(tmp_path, wav_file, model_file):
    one, two = tmp_path / "one", tmp_path / "two"
    assert run("split", wav_file, "-o", one).exit_code == 0
    res = run("split", wav_file, "-o", two, "--shifts", "2")  # the bundled default: a mask head
    assert res.exit_code == 0, res.output
    a, _ = sf.read(one / "my song" / "vocals.wav")
    b, _ = sf.read(two / "my song" / "vocals.wav")
    assert a.shape == b.shape and not np.allclose(a, b)
    res = run("split", wav_file, "-o", tmp_path / "dc", "--model", model_file, "--shifts", "2")
    assert res.exit_code == 1 and "mask head" in res.output and res.output.strip().count("\n") == 0
    assert run("split", wav_file, "-o", tmp_path / "z", "--shifts", "0").exit_code == 2
