"""Nothing outside the output folder, even under a race, and nothing destroyed that vocalsep did not
write: outputs are written and committed through folder descriptors opened without following links;
submission --force replaces only a submission, through a temp folder created exclusively."""
import json
import os

import pytest
import soundfile as sf
from click.testing import CliRunner

from conftest import song
from vocalsep.cli import main
from vocalsep.separator import Separator


@pytest.fixture
def src(tmp_path):
    p = tmp_path / "in" / "song.wav"
    p.parent.mkdir()
    sf.write(p, song(1.0, 16000).T, 16000)
    return p


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3"])
def test_a_track_folder_swapped_for_a_link_mid_run_sends_nothing_outside(tmp_path, src, bundle, monkeypatch, fmt):
    out, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    sep = Separator(bundle)
    real = sep.separate_stream

    def attacker(*a, **k):  # while the run writes, the track folder is moved away and replaced by a link
        for i, item in enumerate(real(*a, **k)):
            if i == 0:
                os.rename(out / "song", out / "moved")
                os.symlink(outside, out / "song")
            yield item

    monkeypatch.setattr(sep, "separate_stream", attacker)
    done = sep.separate_file(src, out_dir=out, fmt=fmt)
    assert list(outside.iterdir()) == []  # nothing created or overwritten through the link
    assert sorted(p.name for p in (out / "moved").iterdir()) == [f"accompaniment.{fmt}", f"vocals.{fmt}"]
    assert all(sf.info(out / "moved" / p.name).frames > 0 for p in done.values())


def test_a_link_planted_as_the_track_folder_is_refused(tmp_path, src, bundle):
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    os.symlink(outside, out / "song")
    res = CliRunner().invoke(main, ["split", str(src), "-o", str(out)])
    assert res.exit_code == 1 and ("link" in res.output or "outside" in res.output)
    assert list(outside.iterdir()) == []


def test_a_link_planted_at_a_stem_is_refused_before_and_replaced_not_followed_during(tmp_path, src):
    from vocalsep._atomic import AtomicFile

    out, victim = tmp_path / "out", tmp_path / "victim.wav"
    victim.write_bytes(b"precious")
    (out / "song").mkdir(parents=True)
    os.symlink(victim, out / "song" / "vocals.wav")
    res = CliRunner().invoke(main, ["split", str(src), "-o", str(out), "--force"])
    assert res.exit_code == 1 and "would land outside" in res.output
    assert victim.read_bytes() == b"precious"
    # planted after the check, while the file is written: the commit replaces the link itself
    (out / "song" / "vocals.wav").unlink()
    f = AtomicFile(out / "song" / "vocals.wav", replace=True, root=out)
    os.write(f.fd, b"ours")
    os.symlink(victim, out / "song" / "vocals.wav")
    f.commit()
    assert victim.read_bytes() == b"precious" and (out / "song" / "vocals.wav").read_bytes() == b"ours"
    # without replace, a name that appeared meanwhile (a link included) is never replaced
    f = AtomicFile(out / "song" / "other.wav", replace=False, root=out)
    os.symlink(victim, out / "song" / "other.wav")
    with pytest.raises(FileExistsError):
        f.commit()
    assert victim.read_bytes() == b"precious"
    assert sorted(p.name for p in (out / "song").iterdir()) == ["other.wav", "vocals.wav"]


def _scores(folder):
    (folder / "test").mkdir(parents=True)
    for name in ("A - B",):
        target = {"name": "vocals", "frames": [{"time": 0.0, "duration": 1.0,
                                                 "metrics": {"SDR": 1.0, "SIR": 1.0, "SAR": 1.0, "ISR": 1.0}}]}
        (folder / "test" / f"{name}.json").write_text(json.dumps(
            {"targets": [target, {**target, "name": "accompaniment"}]}))
    return folder


def test_submission_force_never_removes_a_folder_that_is_not_a_submission(tmp_path):
    from vocalsep.submission import SubmissionError, write_submission

    scores = _scores(tmp_path / "scores")
    out = tmp_path / "sub"
    (out / "AB").mkdir(parents=True)
    (out / "AB" / "thesis.tex").write_text("years of work")
    with pytest.raises(SubmissionError, match="not a vocalsep submission"):
        write_submission("AB", scores, out, {}, "m", overwrite=True)
    assert (out / "AB" / "thesis.tex").read_text() == "years of work"
    # a real submission is replaced
    (out / "AB" / "thesis.tex").unlink()
    write_submission("AB", scores, out, {}, "m", overwrite=True)
    write_submission("AB", scores, out, {}, "m", overwrite=True)
    assert sorted(p.name for p in (out / "AB").iterdir()) == ["description.md", "test"]
    assert [p.name for p in out.iterdir()] == ["AB"]  # no temp folder left


def test_submission_ignores_a_link_planted_at_the_old_temp_name(tmp_path):
    from vocalsep.submission import write_submission

    scores = _scores(tmp_path / "scores")
    out, elsewhere = tmp_path / "sub", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, out / ".AB.part")
    write_submission("AB", scores, out, {}, "m")
    assert list(elsewhere.iterdir()) == [] and (out / "AB" / "description.md").is_file()
