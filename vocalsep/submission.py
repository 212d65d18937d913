"""Package museval scores as a SiSEC/MUSDB18 leaderboard submission (sigsep-mus-2018 layout).

    <out>/<NAME>/description.md
    <out>/<NAME>/test/<Track Name>.json      (museval's per-track JSON, schema-validated)
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from .choices import STEMS
from .data import DatasetError
from .errors import VocalsepError

MAX_NAME = 4
REFERENCES = [
    "Y. Luo, Z. Chen, D. P. W. Ellis, \"Deep clustering for singing voice separation\", MIREX 2016.",
    "J. R. Hershey, Z. Chen, J. Le Roux, S. Watanabe, \"Deep clustering: discriminative embeddings for "
    "segmentation and separation\", ICASSP 2016.",
    "C. Laurent et al., \"Batch normalized recurrent neural networks\", ICASSP 2016.",
]


class SubmissionError(VocalsepError, ValueError):
    """A submission cannot be written as asked."""


def expected_tracks(musdb_root: str | Path, subset: str = "test") -> list[str]:
    """Track names of a MUSDB18 subset, from its folder (stem files or the wav layout)."""
    folder = Path(musdb_root) / subset
    if not folder.is_dir():
        raise DatasetError(f"MUSDB18 root {musdb_root} has no {subset}/ folder")
    names = set()
    for p in folder.iterdir():
        if p.is_dir():
            names.add(p.name)
        elif p.name.endswith(".stem.mp4"):
            names.add(p.name[: -len(".stem.mp4")])
    return sorted(names)


def validate_track_json(path: Path) -> dict:
    """Load a museval track JSON and check it against museval's schema and vocalsep's stems."""
    import jsonschema
    import museval

    schema = json.loads((Path(museval.__path__[0]) / "musdb.schema.json").read_text())
    try:
        data = json.loads(path.read_text())
        jsonschema.validate(data, schema)
    except (json.JSONDecodeError, jsonschema.ValidationError) as exc:
        raise SubmissionError(f"{path}: not a valid museval track file ({str(exc).splitlines()[0]})") from None
    names = {t["name"] for t in data["targets"]}
    if not set(STEMS) <= names:
        raise SubmissionError(f"{path}: scores {sorted(names)}; a vocals/accompaniment submission needs both")
    return data


def describe(name: str, training: dict, model_label: str) -> str:
    """description.md: method, references, training data and whether extra data was used."""
    data = training.get("data", "unknown")
    extra = "no" if str(data).lower().startswith("musdb") else "yes"
    summary = ", ".join(f"{k}={v}" for k, v in training.items() if k not in ("curriculum",))
    refs = "\n".join(f"- {r}" for r in REFERENCES)
    return f"""# {name}: vocalsep deep clustering ({model_label})

## Method
Deep clustering (Hershey et al.) as submitted by Luo, Chen and Ellis to MIREX 2016: 16 kHz mono
analysis, STFT 512/128, 150 mel bands, sequence-wise batch-normalised BLSTM, 20-d unit-norm
embedding per time-frequency bin, k-means++ (k=2) per 4 s chunk with a learned voice-cluster rule,
binary masks mapped onto the full-band stereo STFT of the mixture; accompaniment = mixture - vocals.
Targets: vocals, accompaniment.

## Training data
{data} (training summary: {summary})

## Extra data
Uses data other than MUSDB18 train: **{extra}**.

## References
{refs}
"""


def looks_like_submission(folder: Path) -> bool:
    """Whether ``folder`` holds only what :func:`write_submission` writes: ``description.md`` and
    ``test/*.json`` (regular files, no links)."""
    for p in folder.rglob("*"):
        rel = p.relative_to(folder).parts
        if p.is_symlink():
            return False
        if p.is_dir() and rel == ("test",):
            continue
        if not p.is_file() or not (rel == ("description.md",) or len(rel) == 2 and rel[0] == "test"
                                   and rel[1].endswith(".json")):
            return False
    return True


def check_name(name: str) -> str:
    """A SiSEC submission name: 1 to ``MAX_NAME`` ASCII letters or digits."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME or not (name.isascii() and name.isalnum()):
        raise SubmissionError(f"submission name {name!r} must be 1-{MAX_NAME} ASCII letters or digits (SiSEC's rule)")
    return name


def write_submission(name: str, scores_dir: str | Path, out_dir: str | Path, training: dict, model_label: str,
                     expected: list[str] | None = None, overwrite: bool = False) -> dict:
    """Copy validated track JSONs from ``scores_dir/test`` into ``out_dir/name/test`` with a description.

    Returns ``{"written": [...], "missing": [...]}``; ``missing`` lists ``expected`` tracks without scores.
    """
    check_name(name)
    dest = Path(out_dir) / name
    for d in (Path(out_dir), dest):
        if d.exists() and not d.is_dir():
            raise SubmissionError(f"{d} exists and is not a folder; --force replaces submission folders only: "
                                  "move it away or choose another output folder")
    src = Path(scores_dir) / "test"
    files = sorted(src.glob("*.json")) if src.is_dir() else []
    if not files:
        raise SubmissionError(f"no museval track files in {src}; run `vocalsep evaluate --musdb ROOT -o {scores_dir}` first")
    for f in files:
        validate_track_json(f)
    if dest.exists() and not overwrite:
        raise SubmissionError(f"{dest} already exists; pass --force to replace it")
    if dest.is_symlink() or dest.exists() and not looks_like_submission(dest):
        raise SubmissionError(f"{dest} holds files that are not a vocalsep submission (description.md and "
                              "test/*.json only); --force replaces only a submission: move it away or choose another name")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".part", dir=out_dir))  # created exclusively: no planted link
    try:
        (tmp / "test").mkdir()
        for f in files:
            shutil.copy2(f, tmp / "test" / f.name)
        (tmp / "description.md").write_text(describe(name, training, model_label))
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".old", dir=out_dir))
            os.replace(dest, old / name)  # moved aside first, removed only once the new one is in place
            os.replace(tmp, dest)
            shutil.rmtree(old)
        else:
            os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    written = [f.stem for f in files]
    missing = sorted(set(expected or []) - set(written))
    return {"written": written, "missing": missing, "path": str(dest)}
