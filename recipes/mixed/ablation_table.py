"""Print README's generalisation table from the JSON files of ``recipes/mixed/validate.py --json``.

    python recipes/mixed/ablation_table.py "label=exp/val/a.json" "label 2=exp/val/b.json" ...

One row per file: voice GNSDR / GSIR / GSAR on the unseen MIR-1K singers, vocals / accompaniment
SDR on each produced validation song, the mean vocals SDR over the songs and, where the file has
them, the voice GNSDR on the held-out singers of the voice sources (``--heldout``: adds that column).
"""
from __future__ import annotations

import json
import sys

SONGS = ("waveform-playlist", "Falcon 69", "80s Rock")


def row(label: str, res: dict, heldout: bool = False) -> str:
    cells = [label]
    u = res.get("unseen")
    cells.append(f"{u['GNSDR']:.2f} / {u['GSIR']:.2f} / {u['GSAR']:.2f}" if u else "-")
    songs = res.get("songs", {})
    for s in SONGS:
        r = songs.get(s)
        cells.append(f"{r['vocals']:.2f} / {r['accompaniment']:.2f}" if r else "-")
    voc = [songs[s]["vocals"] for s in SONGS if s in songs]
    cells.append(f"{sum(voc) / len(voc):.2f}" if len(voc) == len(SONGS) else "-")
    if heldout:
        h = res.get("heldout")
        cells.append(f"{h['GNSDR']:.2f}" if h else "-")
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    heldout = "--heldout" in argv
    argv = [a for a in argv if a != "--heldout"]
    print("| model | unseen singers: voice GNSDR / GSIR / GSAR | waveform-playlist: vocals / acc. SDR | "
          "Falcon 69 | 80s Rock | songs: mean vocals SDR |" + (" held-out voices: GNSDR |" if heldout else ""))
    print("|---|---|---|---|---|---|" + ("---|" if heldout else ""))
    for item in argv:
        label, path = item.rsplit("=", 1)
        with open(path) as f:
            print(row(label, json.load(f), heldout))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
