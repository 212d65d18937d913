"""Voice-data stage of the mixed recipe: isolated singing from public repositories, selected, screened
and converted, with a manifest per file.

    python recipes/mixed/prepare_voices.py --repos DIR [--work exp/voices] [--manifest data/voices/voices.tsv]
        [--mir1k ../shared/data/mir1k]

``DIR`` holds the repositories as ``git clone`` leaves them (one folder each, named as on GitHub:
``DIR/SSVD-v2.0``, ``DIR/GTSinger.github.io``, ...; see ``SOURCES``). A source that is absent is
reported and skipped.

1. **Selection.** Each source's rule keeps recordings of a real singer only. Demo pages mix ground
   truth with what their systems made (vocoded, converted or synthesised voices, and mixtures with
   accompaniment): those are never taken (``GTvoc``, ``midi``, ``mixed``, ``plus*``, RMSSinger,
   StyleSinger, DiffSinger, AlignSTS, MelGAN, ...); a file is kept only where its name or folder says
   ground truth or reference, or where the page shows it as a sample of the corpus itself. Spoken clips
   are kept apart as ``kind=speech`` (an ablation, never mixed into the voice sources by default).
   Voicebank breath and whisper banks are left out (noise-like: they would teach that noise is voice).
2. **Screening** (the rule; files that fail it are listed in ``rejected.tsv`` beside the manifest):
   the quietest 1 % of 32 ms frames must lie at least ``--min-range`` dB (default 30) below the loudest
   5 %. Between a singer's notes a clean recording falls to its noise floor; room noise, phone hiss or
   accompaniment bleeding into the microphone keeps it up, and the network would learn that such noise
   is voice. Clipped files (more than 0.1 % of samples at full scale) and files with under 1 s of
   singing (a voicebank syllable: 0.3 s) are dropped too.
3. **Conversion.** 16 kHz mono 16-bit wav under ``WORK/audio``; silences longer than 0.3 s shortened
   to 0.3 s (and the ends trimmed). Voicebanks (one sung syllable or string per file) are joined per
   pitch bank into phrases of at most 20 s, in a fixed shuffled order, 0.1 s apart.
4. **Split by singer.** Some singers of the new sources are held out (``HELD_OUT``: never trained on) as
   a second unseen-voice validation. Their voices are cut into clips of at most 10 s and mixed at 0 dB
   over accompaniments of ``mir1k/unseen`` (validation-only material already) as MIR-1K-style stereo
   files (left accompaniment, right voice) under ``WORK/heldout``, with ``heldout.txt`` listing them,
   so ``vocalsep evaluate --mir1k WORK/heldout --manifest WORK/heldout/heldout.txt`` scores them.
5. **Manifest** (tab-separated, committed; the audio never is): path under ``WORK/audio``, source,
   repository, file in the repository, singer (where known), kind, split, duration, original rate,
   licence.

Every step is deterministic; re-running converts only what is missing and rewrites the manifests.
"""
from __future__ import annotations

import argparse
import csv
import re
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import soxr

RATE = 16000
FRAME = 512  # 32 ms at 16 kHz
MAX_GAP_S = 0.3
PHRASE_S = 20.0
CLIP_S = 10.0


@dataclass(frozen=True)
class Source:
    name: str  # the manifest's source column
    repo: str  # OWNER/NAME on GitHub; the folder under --repos is NAME
    licence: str
    pick: Callable[[str], str | None]  # path in the repository -> "voice" / "speech" / None (not taken)
    singer: Callable[[str], str]  # path -> singer id ("" where the page does not say)
    syllables: bool = False  # a voicebank: short files joined into phrases per folder

    @property
    def folder(self) -> str:
        return self.repo.split("/", 1)[1]


_SYSTEMS = re.compile(r"RMSSinger|StyleSinger|DiffSinger|AlignSTS|FastSpeech|Vevo|MaskGCT", re.I)
_TECHNIQUES = r"(Control|Breathy|Mixed|Vibrato|Pharyngeal|Glissando|Falsetto|Mixed_Voice_and_Falsetto)"


def _gtsinger(path: str) -> str | None:
    name = Path(path).name
    if not path.startswith("assets/") or not name.endswith(".wav") or _SYSTEMS.search(name):
        return None
    stem = re.sub(r"-[A-Za-z0-9_-]{8}\.wav$", "", name)  # the page bundler's 8-character hash suffix
    if re.search(r"[_-]Speech$", stem, re.I):
        return "speech"
    if re.search(r"-(Ground_Truth|Reference)$", stem) or re.search(r"_GT$", stem):
        return "voice"
    # the corpus samples: one singer, one technique (or its control group) per file
    if re.match(rf"^[a-z]{{2}}\d\d_{_TECHNIQUES}$", stem, re.I) or re.match(
            rf"^[A-Z]{{2}}-[A-Za-z]+-\d-[A-Za-z_]+-{_TECHNIQUES}$", stem):
        return "voice"
    return None


def _gtsinger_singer(path: str) -> str:
    name = Path(path).name
    m = re.match(r"^([a-z]{2}\d\d)_", name, re.I) or re.match(r"^([A-Z]{2}-[A-Za-z]+-\d)-", name)
    return m.group(1).lower() if m else ""


def _m4singer(path: str) -> str | None:
    keep = ("m4singer/audio/SVS/GT/", "m4singer/audio/SVC/ref/", "m4singer/audio/SVC/addition/ref/",
            "m4singer/audio/samples/")
    return "voice" if path.startswith(keep) and path.endswith(".wav") else None


def _m4singer_singer(path: str) -> str:
    m = re.match(r"^((?:Alto|Soprano|Tenor|Bass)-\d)_", Path(path).name)
    return m.group(1).lower() if m else ""


def _fmsing(path: str) -> str | None:
    # Test_*/GT only: system/GT's files are named *_gen (generated) and are not taken
    return "voice" if re.match(r"^wav_for_demo/singing/Test_[a-z_]+/GT/[^/]+\.wav$", path) else None


def _fmsing_singer(path: str) -> str:
    return path.split("/")[2].lower()  # test_seen_man, test_unseen_woman, ...: a group, not one singer


def _comel(path: str) -> str | None:
    return "voice" if Path(path).name in ("GT.wav", "Reference.wav", "reference.wav") else None


def _comel_singer(path: str) -> str:
    parts = path.split("/")
    return parts[1] if parts[0] == "unseen" else ""


def _ssvd(path: str) -> str | None:
    return "voice" if path.endswith(".flac") and path.split("/")[0] in ("train&valid", "test") else None


def _voicebank(path: str) -> str | None:
    low = path.lower()
    if not low.endswith(".wav") or re.search(r"(^|/)(breaths?|whisper)(/|$)", low) or "/$read" in low:
        return None
    return "voice"


def _vocadito_mirdata(path: str) -> str | None:
    return "voice" if re.match(r"^tests/resources/mir_datasets/vocadito/Audio/vocadito_\d+\.wav$", path) else None


def _vocadito_bp(path: str) -> str | None:
    return "voice" if re.match(r"^tests/resources/vocadito_\d+\.wav$", path) else None


_VOCADITO_SINGERS = {"1": "S1", "10": "S8", "14": "S10"}  # vocadito_metadata.csv (mirdata's copy: 1)


def _vocadito_singer(path: str) -> str:
    n = re.search(r"vocadito_(\d+)", path).group(1)
    return "vocadito-" + _VOCADITO_SINGERS.get(n, n)


def _none(path: str) -> str:
    return ""


SOURCES = (
    Source("ssvd", "xk-wang/SSVD-v2.0", "none stated: research use only", _ssvd,
           lambda p: "ssvd-" + Path(p).stem),  # one app user's recording each; users are not named
    Source("gtsinger", "GTSinger/GTSinger.github.io", "CC BY-NC-SA 4.0", _gtsinger, _gtsinger_singer),
    Source("m4singer", "M4Singer/M4Singer.github.io", "none stated: research use only", _m4singer, _m4singer_singer),
    Source("fmsing", "FMSing/FMSing.github.io", "none stated: research use only", _fmsing, _fmsing_singer),
    Source("comelsinger", "Danny-NUS/CoMelSinger", "none stated: research use only", _comel, _comel_singer),
    Source("milk-en", "oxygen-dioxide/milk-en", "Milk voicebank terms: credit Xepheris, state changes "
           "(here: resampled, trimmed, joined); commercial use needs the author's approval", _voicebank,
           lambda p: "milk", syllables=True),
    Source("alys", "oxygen-dioxide/ALYS-DB-001-JA", "GPL-3.0", _voicebank, lambda p: "alys", syllables=True),
    Source("erithacus", "ErithacusProject/ErithacusVB", "CC BY 4.0", _voicebank, lambda p: "erithacus",
           syllables=True),
    Source("vocadito", "mir-dataset-loaders/mirdata", "CC BY 4.0 (vocadito)", _vocadito_mirdata, _vocadito_singer),
    Source("vocadito", "spotify/basic-pitch", "CC BY 4.0 (vocadito)", _vocadito_bp, _vocadito_singer),
)

# Singers never trained on: the second unseen-voice validation (beside mir1k/unseen).
HELD_OUT = {
    "gtsinger": lambda s: s[:2] in ("ru", "it"),  # every Russian and Italian singer (10)
    "fmsing": lambda s: s.startswith("test_unseen"),  # the page's own unseen singers
    "comelsinger": lambda s: s != "",  # the page's unseen f1, m1, m2
    "vocadito": lambda s: True,  # three more singers
    "ssvd": lambda s: zlib.crc32(s.encode()) % 10 == 0,  # one recording in ten (each by one app user)
}


def frame_db(x: np.ndarray) -> np.ndarray:
    n = len(x) // FRAME
    frames = x[:n * FRAME].reshape(n, FRAME).astype(np.float64)
    return 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)


def screen(x: np.ndarray, min_range: float) -> tuple[str, float]:
    """('' or why it is dropped, level range in dB) for a 16 kHz mono recording."""
    db = frame_db(x)
    if len(db) < 4:
        return "shorter than 0.1 s", 0.0
    spread = float(np.percentile(db, 95) - np.percentile(db, 1))
    if np.mean(np.abs(x) >= 0.999) > 1e-3:
        return "clipped (over 0.1% of samples at full scale)", spread
    if spread < min_range:
        return f"noise floor only {spread:.1f} dB below the voice (rule: {min_range:.0f} dB)", spread
    return "", spread


def tighten(x: np.ndarray, top_db: float = 40.0) -> np.ndarray:
    """The recording with its ends trimmed and every silence (``top_db`` below the peak frame) longer
    than ``MAX_GAP_S`` shortened to it."""
    db = frame_db(x)
    if not len(db):
        return x[:0]
    loud = db > db.max() - top_db
    gap = int(MAX_GAP_S * RATE)
    pieces, last_end = [], None
    idx = np.flatnonzero(loud)
    # runs of loud frames
    breaks = np.flatnonzero(np.diff(idx) > 1)
    starts = np.r_[idx[0], idx[breaks + 1]]
    ends = np.r_[idx[breaks], idx[-1]] + 1
    for s, e in zip(starts * FRAME, ends * FRAME):
        if last_end is not None:
            pieces.append(x[last_end:min(s, last_end + gap)])
        pieces.append(x[s:e])
        last_end = e
    return np.concatenate(pieces).astype(np.float32)


def read_mono(path: Path) -> tuple[np.ndarray, int]:
    audio, sr = sf.read(path, dtype="float32", always_2d=True)
    return soxr.resample(audio.mean(1), sr, RATE, quality="HQ").astype(np.float32), sr


def write_wav(dst: Path, x: np.ndarray, channels_last: bool = False) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".part")
    sf.write(tmp, x, RATE, subtype="PCM_16", format="WAV")
    tmp.replace(dst)


def _normalise(x: np.ndarray) -> np.ndarray:
    peak = float(np.abs(x).max()) if x.size else 0.0
    return x * (0.9 / peak) if peak > 0 else x


def candidates(repos: Path, src: Source) -> list[str]:
    root = repos / src.folder
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                   if p.is_file() and ".git" not in p.relative_to(root).parts)
    return [f for f in files if src.pick(f)]


def prepare_source(repos: Path, work: Path, src: Source, min_range: float) -> tuple[list[dict], list[dict]]:
    root = repos / src.folder
    rows, rejected, bank = [], [], {}
    for rel in candidates(repos, src):
        kind, singer = src.pick(rel), src.singer(rel)
        try:
            x, sr = read_mono(root / rel)
        except (RuntimeError, sf.LibsndfileError) as exc:  # a file that is a Git LFS pointer, or broken
            rejected.append({"source": src.name, "file": rel, "why": f"unreadable: {exc}".splitlines()[0]})
            continue
        why, spread = screen(x, min_range)
        y = tighten(x) if not why else x
        if not why and len(y) < (0.3 if src.syllables else 1.0) * RATE:
            why = "under 0.3 s of singing" if src.syllables else "under 1 s of singing"
        if why:
            rejected.append({"source": src.name, "file": rel, "why": why})
            continue
        meta = {"source": src.name, "repo": src.repo, "singer": singer, "kind": kind,
                "sample_rate": sr, "range_db": f"{spread:.1f}", "licence": src.licence}
        if src.syllables:
            bank.setdefault(str(Path(rel).parent), []).append((rel, y, meta))
            continue
        dst = Path(src.name) / (Path(rel).with_suffix("").as_posix().replace("/", "__") + ".wav")
        rows.append({"path": dst.as_posix(), "file": rel, "audio": y, **meta})
    for folder, items in sorted(bank.items()):  # voicebank: syllables joined into phrases per pitch bank
        order = np.random.default_rng(len(items)).permutation(len(items))
        gap = np.zeros(int(0.1 * RATE), np.float32)
        phrase, names, k = [], [], 0
        for n, i in enumerate(order):
            rel, y, meta = items[i]
            phrase += [y / max(float(np.sqrt(np.mean(y ** 2))), 1e-6) * 0.1, gap]
            names.append(Path(rel).name)
            if sum(len(p) for p in phrase) >= PHRASE_S * RATE or n == len(order) - 1:
                tag = folder.replace("/", "__") if folder != "." else "root"
                dst = Path(src.name) / f"{tag}__{k:03d}.wav"
                rows.append({"path": dst.as_posix(), "file": f"{folder}/{{{len(names)} files}}", "audio":
                             np.concatenate(phrase), **meta})
                phrase, names, k = [], [], k + 1
    for r in rows:
        r["split"] = "heldout" if HELD_OUT.get(src.name, lambda s: False)(r["singer"]) else "train"
    return rows, rejected


def heldout_mixtures(rows: list[dict], work: Path, mir1k: Path) -> list[str]:
    """The held-out voices cut into clips of at most ``CLIP_S`` and mixed at 0 dB over the
    accompaniments of ``mir1k/unseen``, as MIR-1K-style stereo files; returns their names."""
    accs = sorted((mir1k / "unseen").glob("*.wav"))
    if not accs:
        raise SystemExit(f"error: no clips under {mir1k / 'unseen'}; pass --mir1k DIR")
    out_dir, names = work / "heldout", []
    for r in rows:
        if r["split"] != "heldout" or r["kind"] != "voice":
            continue
        v = r["audio"]
        step = int(CLIP_S * RATE)
        for j in range(0, len(v), step):
            seg = v[j:j + step]
            if len(seg) < 3 * RATE:
                continue
            name = f"{r['source']}__{Path(r['path']).stem}__{j // step:02d}.wav"
            # the accompaniment follows from the clip's name alone, so a source added later changes no other clip
            acc, sr = sf.read(accs[zlib.crc32(name.encode()) % len(accs)], dtype="float32", always_2d=True)
            a = soxr.resample(acc[:, 0], sr, RATE) if sr != RATE else acc[:, 0]
            a = np.tile(a, int(np.ceil(len(seg) / len(a))))[:len(seg)]
            rv, ra = np.sqrt(np.mean(seg ** 2)) + 1e-8, np.sqrt(np.mean(a ** 2)) + 1e-8
            both = np.stack([a, seg * (ra / rv)], 1)  # 0 dB
            both *= 0.9 / max(float(np.abs(both.sum(1)).max()), 1e-8)
            write_wav(out_dir / name, both)
            names.append(name)
    (out_dir / "heldout.txt").write_text("".join(n + "\n" for n in names))
    return names


COLUMNS = ["path", "source", "repo", "file", "singer", "kind", "split", "duration_s", "sample_rate",
           "range_db", "licence"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repos", required=True, type=Path, help="folder of the cloned repositories")
    ap.add_argument("--work", default="exp/voices", type=Path)
    ap.add_argument("--manifest", default="data/voices/voices.tsv", type=Path)
    ap.add_argument("--mir1k", default="../shared/data/mir1k", type=Path)
    ap.add_argument("--min-range", default=30.0, type=float, help="dB from noise floor to voice (rule 2)")
    args = ap.parse_args(argv)
    rows, rejected = [], []
    for src in SOURCES:
        if not (args.repos / src.folder).is_dir():
            print(f"{src.repo}: not under {args.repos} (git clone https://github.com/{src.repo}); skipped")
            continue
        got, bad = prepare_source(args.repos, args.work, src, args.min_range)
        minutes = sum(len(r["audio"]) for r in got) / RATE / 60
        print(f"{src.repo}: {len(got)} files, {minutes:.1f} min kept; {len(bad)} dropped", flush=True)
        rows += got
        rejected += bad
    if not rows:
        print(f"error: no voice files found under {args.repos}", file=sys.stderr)
        return 1
    for r in rows:
        dst = args.work / "audio" / r["path"]
        if not dst.is_file():
            write_wav(dst, _normalise(r["audio"]))
        r["duration_s"] = f"{len(r['audio']) / RATE:.2f}"
    names = heldout_mixtures(rows, args.work, args.mir1k)
    args.manifest.parent.mkdir(parents=True, exist_ok=True)
    with open(args.manifest, "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS, delimiter="\t", lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    with open(args.manifest.with_name("rejected.tsv"), "w", newline="") as f:
        w = csv.DictWriter(f, ["source", "file", "why"], delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows(rejected)
    for split in ("train", "heldout"):
        for kind in ("voice", "speech"):
            sel = [r for r in rows if r["split"] == split and r["kind"] == kind]
            if sel:
                print(f"{split} {kind}: {len(sel)} files, {sum(float(r['duration_s']) for r in sel) / 60:.1f} min, "
                      f"{len({(r['source'], r['singer']) for r in sel if r['singer']})} named singers")
    print(f"dropped {len(rejected)} files (rules in {args.manifest.with_name('rejected.tsv')}); "
          f"{len(names)} held-out validation mixtures -> {args.work / 'heldout'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
