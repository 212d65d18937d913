"""Stage 0 of the mixed recipe: the produced instrumental pool, fetched, screened and converted.

    python recipes/mixed/prepare_pool.py [--work exp/pool] [--screening DIR] [--manifest data/pool/accompaniment.tsv]

1. Fetches the Debian music packages (``apt-get download``) into ``WORK/debs`` and unpacks them into
   ``WORK/root`` (both skipped when already there).
2. Keeps a file as accompaniment only when the screening table rates it ``instrumental`` on all nine
   excerpts (``dense_screening.tsv``, ``verdict_9``). ``check`` files (choirs, pads, buried voices, or
   lead instruments that leak into the reference separator's vocal estimate) and ``voice`` files are
   left out: a voice labelled accompaniment teaches the network to remove voices, and these mixtures
   have no stems to give a weaker label either. Files shorter than 12 s were not screened and are left
   out too.
3. Converts each kept file to what training reads: 16 kHz mono 16-bit wav under ``WORK/audio``.
4. Writes the manifest (tab-separated, committed; the audio never is): path under ``WORK/audio``,
   package, path in the package, duration, original sample rate, licence.

Every step is idempotent: re-running converts only what is missing and rewrites the manifest.
"""
from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

PACKAGES = {  # package -> licence of its music (from its usr/share/doc/<package>/copyright)
    "wesnoth-1.16-music": "GPL-2+",
    "warzone2100-music": "GPL-2+",
    "planetblupi-music-ogg": "GPL-3+",
    "singularity-music": "CC-BY-SA-3.0",
    "hyperrogue-music": "GPL-2+",
    "fretsonfire-songs-muldjord": "CC-BY-SA-3.0",
    "fretsonfire-songs-sectoid": "Expat",
}
RATE = 16000


def licence(package: str, path: str, root: Path) -> str:
    """The licence of one file: its package's, refined where the copyright file or an album's own
    ``license.txt`` names another for it (hyperrogue's hr3-* tracks, warzone2100's albums)."""
    if package == "hyperrogue-music" and Path(path).name.startswith("hr3-"):
        return "CC-BY-SA-3.0"
    if package == "warzone2100-music" and "/albums/" in path:
        text = (root / Path(path).parent / "license.txt")
        if text.is_file():
            for line in text.read_text(errors="replace").splitlines():
                if line.strip().startswith("CC-"):
                    return line.split()[0]
    return PACKAGES[package]


def fetch(work: Path) -> Path:
    debs, root = work / "debs", work / "root"
    debs.mkdir(parents=True, exist_ok=True)
    missing = [p for p in PACKAGES if not list(debs.glob(f"{p}_*.deb"))]
    if missing:
        print(f"fetching {len(missing)} packages: {' '.join(missing)}", flush=True)
        subprocess.run(["apt-get", "download", *missing], cwd=debs, check=True)
    stamp = root / ".unpacked"
    if not stamp.is_file():
        for deb in sorted(debs.glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        stamp.touch()
    return root


def selected(screening: Path) -> list[dict]:
    """Rows of ``screening.tsv`` whose file stays instrumental on all nine screened excerpts."""
    with open(screening / "dense_screening.tsv") as f:
        dense = {(r["package"], r["path"]): r["verdict_9"] for r in csv.DictReader(f, delimiter="\t")}
    with open(screening / "screening.tsv") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [r for r in rows if r["package"] in PACKAGES and dense.get((r["package"], r["path"])) == "instrumental"]


def convert(src: Path, dst: Path) -> float:
    """``src`` -> 16 kHz mono 16-bit wav at ``dst`` (atomically); returns the duration in seconds."""
    audio, sr = sf.read(src, dtype="float32", always_2d=True)
    mono = soxr.resample(audio.mean(1), sr, RATE, quality="HQ")
    peak = float(np.abs(mono).max()) if mono.size else 0.0
    if peak > 1.0:
        mono = mono / peak
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".part")
    sf.write(tmp, mono, RATE, subtype="PCM_16", format="WAV")
    tmp.replace(dst)
    return len(mono) / RATE


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default="exp/pool", type=Path)
    ap.add_argument("--screening", default="../shared/data/instrumental-screening", type=Path)
    ap.add_argument("--manifest", default="data/pool/accompaniment.tsv", type=Path)
    args = ap.parse_args(argv)
    if not (args.screening / "dense_screening.tsv").is_file():
        print(f"error: no screening table in {args.screening}; pass --screening DIR", file=sys.stderr)
        return 1
    root = fetch(args.work)
    rows, out = selected(args.screening), []
    for i, r in enumerate(rows, 1):
        src = root / r["path"]
        rel = Path(r["package"]) / (Path(r["path"]).with_suffix("").as_posix().replace("/", "__") + ".wav")
        dst = args.work / "audio" / rel
        duration = sf.info(dst).duration if dst.is_file() else convert(src, dst)
        print(f"[{i}/{len(rows)}] {rel} {duration:.1f} s", flush=True)
        out.append({"path": rel.as_posix(), "package": r["package"], "source": r["path"],
                    "duration_s": f"{duration:.2f}", "sample_rate": r["sample_rate"],
                    "licence": licence(r["package"], r["path"], root)})
    args.manifest.parent.mkdir(parents=True, exist_ok=True)
    with open(args.manifest, "w", newline="") as f:
        w = csv.DictWriter(f, list(out[0]), delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows(out)
    minutes = sum(float(o["duration_s"]) for o in out) / 60
    print(f"kept {len(out)} files, {minutes:.1f} min -> {args.manifest} (audio under {args.work / 'audio'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
