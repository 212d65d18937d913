"""What a Demucs or Spleeter user reaches for: file-name templates, one stem, formats and sample
formats, clipping, part of a file, folders as input, verbosity, progress, warnings for options
that change nothing."""
import shutil

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from conftest import song
from vocalsep.checkpoint import ModelBundle, save_model
from vocalsep.cli import main
from vocalsep.features import FeatureConfig
from vocalsep.models import build_model


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_filename_template_keeps_same_named_inputs_apart(tmp_path, model_file):
    x = song(0.5, 16000, 1)
    sf.write(tmp_path / "a.wav", x.T, 16000)
    sf.write(tmp_path / "a.flac", x.T, 16000)
    out = tmp_path / "out"
    res = run("split", tmp_path / "a.wav", tmp_path / "a.flac", "-o", out, "--model", model_file,
              "--filename", "{track}_{input_ext}/{stem}.{ext}")
    assert res.exit_code == 0, res.output
    assert {p.relative_to(out).as_posix() for p in out.rglob("*.wav")} == {
        "a_wav/vocals.wav", "a_wav/accompaniment.wav", "a_flac/vocals.wav", "a_flac/accompaniment.wav"}


@pytest.mark.parametrize("template,match", [("{track}/{nope}.{ext}", "unknown field"), ("{track}.{ext}", "{stem}"),
                                            ("../{stem}.{ext}", "inside")])
def test_bad_templates_are_refused(tmp_path, wav_file, model_file, template, match):
    res = run("split", wav_file, "-o", tmp_path / "out", "--model", model_file, "--filename", template)
    assert res.exit_code in (1, 2) and match in res.output and "Traceback" not in res.output
    assert not list(tmp_path.rglob("vocals.wav"))


def test_one_stem_only(tmp_path, wav_file, model_file):
    res = run("split", wav_file, "-o", tmp_path / "out", "--model", model_file, "--stem", "accompaniment")
    assert res.exit_code == 0, res.output
    assert [p.name for p in (tmp_path / "out").rglob("*.wav")] == ["accompaniment.wav"]


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_mp3_through_ffmpeg_with_a_bitrate(tmp_path, model_file):
    src = tmp_path / "s.wav"
    sf.write(src, song(3.0, 44100, 2).T, 44100)
    sizes = {}
    for rate in (96, 320):
        out = tmp_path / f"o{rate}"
        res = run("split", src, "-o", out, "--model", model_file, "--format", "mp3", "--mp3-bitrate", rate)
        assert res.exit_code == 0, res.output
        info = sf.info(out / "s" / "vocals.mp3")
        assert info.samplerate == 44100 and info.channels == 2 and abs(info.duration - 3.0) < 0.05
        sizes[rate] = (out / "s" / "vocals.mp3").stat().st_size
    assert sizes[96] < sizes[320] / 2
    res = run("split", src, "-o", tmp_path / "q", "--model", model_file, "--format", "mp3", "--mp3-quality", "0")
    assert res.exit_code == 0 and sf.info(tmp_path / "q" / "s" / "vocals.mp3").channels == 2
    res = run("split", src, "-o", tmp_path / "r", "--model", model_file, "--format", "mp3", "--mp3-quality", "10")
    assert res.exit_code == 2 and "--mp3-quality" in res.output


def test_sample_formats_float_in_float_out_int24_on_request(tmp_path, model_file):
    src = tmp_path / "f.wav"
    sf.write(src, song(0.5, 16000, 2).T, 16000, subtype="FLOAT")
    assert run("split", src, "-o", tmp_path / "a", "--model", model_file).exit_code == 0
    assert sf.info(tmp_path / "a" / "f" / "vocals.wav").subtype == "FLOAT"
    assert run("split", src, "-o", tmp_path / "b", "--model", model_file, "--int24").exit_code == 0
    assert sf.info(tmp_path / "b" / "f" / "vocals.wav").subtype == "PCM_24"
    res = run("split", src, "-o", tmp_path / "c", "--model", model_file, "--int24", "--float32")
    assert res.exit_code == 2 and "exclude" in res.output


@pytest.mark.parametrize("mode", ["rescale", "clamp"])
def test_hot_float_input_to_16_bit_warns_and_rescales_consistently(tmp_path, model_file, mode):
    src = tmp_path / "hot.wav"
    x = song(1.0, 16000, 2) * 4  # peaks well above full scale
    sf.write(src, x.T, 16000, subtype="FLOAT")
    res = run("split", src, "-o", tmp_path / "o", "--model", model_file, "--format", "flac", "--clip-mode", mode)
    assert res.exit_code == 0, res.output
    assert ("scaled down" if mode == "rescale" else "clamped") in res.output
    v, _ = sf.read(tmp_path / "o" / "hot" / "vocals.flac", always_2d=True)
    a, _ = sf.read(tmp_path / "o" / "hot" / "accompaniment.flac", always_2d=True)
    assert np.abs(v).max() <= 1 and np.abs(a).max() <= 1
    if mode == "rescale":  # one gain for both stems: they still sum to the (scaled) input
        gain = np.abs(v + a).max() / np.abs(x).max()
        assert 0 < gain < 1 and np.abs(v + a - gain * x.T).max() < 1e-3


def test_start_and_duration_separate_a_part(tmp_path, model_file):
    src = tmp_path / "long.wav"
    sf.write(src, song(3.0, 22050, 2).T, 22050)
    res = run("split", src, "-o", tmp_path / "o", "--model", model_file, "--start", "1.0", "--duration", "1.5")
    assert res.exit_code == 0, res.output
    assert sf.info(tmp_path / "o" / "long" / "vocals.wav").frames == int(1.5 * 22050)
    res = run("split", src, "-o", tmp_path / "p", "--model", model_file, "--start", "9")
    assert res.exit_code == 1 and "past its end" in res.output


def test_a_folder_as_input_separates_the_audio_inside(tmp_path, model_file):
    d = tmp_path / "album"
    d.mkdir()
    for name in ("one.wav", "two.flac"):
        sf.write(d / name, song(0.5, 16000, 1).T, 16000)
    (d / "cover.jpg").write_bytes(b"\xff\xd8")
    res = run("split", d, "-o", tmp_path / "o", "--model", model_file)
    assert res.exit_code == 0, res.output
    assert sorted(p.parent.name for p in (tmp_path / "o").rglob("vocals.wav")) == ["one", "two"]


def test_verbosity_after_the_subcommand_and_progress_lines_when_not_a_terminal(tmp_path, wav_file, model_file):
    res = run("split", wav_file, "-o", tmp_path / "o", "--model", model_file, "-v")
    assert res.exit_code == 0, res.output
    assert "Separating 1 file with model" in res.output and f"{wav_file.name}: 100%" in res.output
    res = run("split", "-q", wav_file, "-o", tmp_path / "q", "--model", model_file)
    assert res.exit_code == 0 and res.output == ""


def _mask_head_model(tmp_path):
    cfg = FeatureConfig(n_mels=20)
    kwargs = dict(kind="ff", hidden=8, layers=1)
    bundle = ModelBundle(model=build_model("mask-ff", 20, **kwargs).eval(), features=cfg, arch="mask-ff",
                         model_kwargs=kwargs)
    return save_model(tmp_path / "mask.pt", bundle)


def test_options_without_effect_are_named(tmp_path, wav_file):
    model = _mask_head_model(tmp_path)
    res = run("split", wav_file, "-o", tmp_path / "o", "--model", model, "--softness", "3", "--cluster", "meanshift")
    assert res.exit_code == 0, res.output
    warnings = [ln for ln in res.output.splitlines() if ln.startswith("vocalsep: warning:")]
    assert len(warnings) == 2 and "--cluster" in warnings[0] and "--softness" in warnings[1]
    res = run("split", wav_file, "-o", tmp_path / "p", "--model", model)
    assert "warning" not in res.output


def test_help_lists_the_common_options_first():
    text = run("split", "--help").output
    order = [text.index(o) for o in ("-o, --out", "--model", "--device", "--format", "--reconstruct")]
    assert order == sorted(order)


def test_separate_file_without_outputs_writes_the_cli_layout(tmp_path, wav_file, model_file):
    from vocalsep.separator import Separator

    done = Separator.from_file(model_file).separate_file(wav_file, out_dir=tmp_path / "sep")
    assert done == {"vocals": tmp_path / "sep" / wav_file.stem / "vocals.wav",
                    "accompaniment": tmp_path / "sep" / wav_file.stem / "accompaniment.wav"}
    assert all(p.is_file() for p in done.values())
