"""Pages to look at and listen to: one self-contained HTML file per run, no server, no network.

* :func:`split_report`: for every separated file, audio players for the input and each stem,
  spectrograms of the input and the stems on one log-frequency axis (full band), the voice mask over
  time (the share of each time-frequency bin the vocals took), and the run's settings.
* :func:`evaluation_report`: museval's per-track figures for an evaluation folder: box plots of
  SDR/SIR/SAR per target across tracks, SDR over time (1 s frames) for every track, and the median
  table; a second folder (an oracle, or another model) is drawn beside the first when given.

Figures are PNG embedded as base64; the players refer to the audio files beside the page by
relative path. Spectrograms are computed block by block from the files, pooled to a fixed number
of columns, so memory stays bounded for any length.
"""
from __future__ import annotations

import base64
import html
import io
import json
import os
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np

from ._atomic import atomic_path
from .audio import open_audio
from .choices import ACCOMPANIMENT, VOCALS
from .errors import VocalsepError

COLUMNS = 1200  # time columns of a spectrogram image, whatever the file's length
N_FFT = 2048
MIME = {".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg", ".ogg": "audio/ogg",
        ".m4a": "audio/mp4", ".mp4": "audio/mp4", ".aac": "audio/aac", ".opus": "audio/ogg"}


class ReportError(VocalsepError):
    """A report page cannot be made."""


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ReportError("report pages need matplotlib: pip install 'vocalsep[report]' (or pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def spectrogram(path: str | Path, start: float = 0.0, duration: float | None = None,
                columns: int = COLUMNS) -> tuple[np.ndarray, np.ndarray, float]:
    """Power spectrogram of a file's mono mix, (bins, columns), pooled over time by averaging; returns
    (power, bin frequencies in Hz, seconds covered). Read block by block: memory stays bounded."""
    with open_audio(path) as r:
        sr = r.sample_rate
        first = int(round(start * sr))
        n = r.frames - first if duration is None else min(r.frames - first, int(round(duration * sr)))
        n = max(n, 1)
        hop = N_FFT // 2
        frames = max(1, (n - N_FFT) // hop + 1)
        per_col = max(1, -(-frames // columns))
        cols = -(-frames // per_col)
        out = np.zeros((N_FFT // 2 + 1, cols), np.float64)
        window = np.hanning(N_FFT).astype(np.float32)
        block_frames = per_col * max(1, 256 // per_col)  # whole columns per read
        f = 0
        while f < frames:
            k = min(block_frames, frames - f)
            x = r.read(first + f * hop, first + (f + k - 1) * hop + N_FFT).mean(0)
            idx = np.arange(k)[:, None] * hop + np.arange(N_FFT)[None]
            p = np.abs(np.fft.rfft(x[idx] * window, axis=1)) ** 2  # (k, bins)
            np.add.at(out.T, (f + np.arange(k)) // per_col, p)  # pool frames into their columns
            f += k
        counts = np.bincount(np.arange(frames) // per_col, minlength=cols)
        out /= np.maximum(counts, 1)[None]
    return out, np.fft.rfftfreq(N_FFT, 1 / sr), n / sr


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def file_figure(src: str | Path, stems: dict[str, Path], start: float = 0.0, duration: float | None = None) -> str:
    """One figure for one separated file: input and stem spectrograms on one log-frequency axis, and
    the voice mask |V|^2 / (|V|^2 + |A|^2) over time. Returns it as base64 PNG."""
    plt = _pyplot()
    specs = {"input": spectrogram(src, start, duration)}
    for stem, path in stems.items():
        specs[stem] = spectrogram(path)
    rows = list(specs)
    voc, acc = specs.get(VOCALS), specs.get(ACCOMPANIMENT)
    if voc is not None and acc is not None and voc[0].shape == acc[0].shape:
        specs["voice mask"] = (voc[0] / np.maximum(voc[0] + acc[0], 1e-20), voc[1], voc[2])
        rows.append("voice mask")
    fig, axes = plt.subplots(len(rows), 1, figsize=(11, 2.1 * len(rows)), sharex=True, sharey=True, squeeze=False)
    ref = max(float(s[0].max()) for k, s in specs.items() if k != "voice mask") or 1.0
    for ax, name in zip(axes[:, 0], rows):
        power, freqs, seconds = specs[name]
        keep = freqs >= 20
        t = np.linspace(0, seconds, power.shape[1] + 1)
        if name == "voice mask":
            im = ax.pcolormesh(t, _edges(freqs[keep]), power[keep], vmin=0, vmax=1, cmap="viridis", shading="flat")
        else:
            db = 10 * np.log10(np.maximum(power[keep], 1e-20) / ref)
            im = ax.pcolormesh(t, _edges(freqs[keep]), db, vmin=-90, vmax=0, cmap="magma", shading="flat")
        ax.set_yscale("log")
        ax.set_ylim(20, freqs[-1])
        ax.set_ylabel("Hz")
        ax.set_title(name, loc="left", fontsize=10)
        fig.colorbar(im, ax=ax, pad=0.01, label="" if name == "voice mask" else "dB")
    axes[-1, 0].set_xlabel("seconds")
    data = _png(fig)
    plt.close(fig)
    return data


def _edges(f: np.ndarray) -> np.ndarray:
    """Cell edges between the bin centres (log-spaced axis)."""
    mid = np.sqrt(f[1:] * f[:-1])
    return np.concatenate([[f[0] ** 2 / mid[0]], mid, [f[-1] ** 2 / mid[-1]]])


def _player(page_dir: Path, path: Path, label: str) -> str:
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(page_dir))
    mime = MIME.get(path.suffix.lower(), "audio/wav")
    return (f'<figure class="player"><figcaption>{html.escape(label)}</figcaption>'
            f'<audio controls preload="metadata" src="{html.escape(quote(Path(rel).as_posix()))}" type="{mime}"></audio></figure>')


STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ccc}
.players{display:flex;flex-wrap:wrap;gap:1em}.player{margin:0}figcaption{font-size:.85em;color:#555}
img{max-width:100%}table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}
.error{color:#a00}"""


# After loading, the page records in <body data-check="..."> whether every image decoded and every
# player found its audio: what bench/render_report.py reads from headless Chromium.
SELF_CHECK = """<script>
window.addEventListener('load', function () {
  var imgs = Array.from(document.images), auds = Array.from(document.querySelectorAll('audio'));
  var bad = [], pending = auds.length;
  imgs.forEach(function (i) { if (!i.complete || i.naturalWidth === 0) bad.push('image ' + i.alt); });
  function done() { document.body.dataset.check = bad.length ? 'missing: ' + bad.join('; ') :
                    'ok: ' + imgs.length + ' images, ' + auds.length + ' players'; }
  function fin() { if (--pending === 0) done(); }
  if (!pending) done();
  auds.forEach(function (a) {
    if (a.readyState >= 1) { fin(); return; }
    a.addEventListener('loadedmetadata', fin, {once: true});
    a.addEventListener('error', function () { bad.push('player ' + a.getAttribute('src')); fin(); }, {once: true});
  });
});
</script>"""


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n{body}\n{SELF_CHECK}\n</body></html>\n')


def _settings_table(settings: dict) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in settings.items())
    return f'<table class="settings">{rows}</table>'


def write_page(path: Path, text: str, overwrite: bool = False) -> Path:
    """Write atomically; an existing page is kept unless ``overwrite`` (the new one gets a numbered name)."""
    path = Path(path)
    if path.exists() and not overwrite:
        stem, i = path.stem, 2
        while path.exists():
            path = path.with_name(f"{stem}-{i}{path.suffix}")
            i += 1
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return path


def split_report(page: str | Path, items: list[dict], settings: dict, overwrite: bool = False) -> Path:
    """The page of one ``vocalsep split`` run. ``items``: per input file ``{"src", "stems": {stem: path},
    "start", "duration"}``, or ``{"src", "error"}`` for a file that failed."""
    page = Path(page)
    parts = [f"<p>{len(items)} file(s), {time.strftime('%Y-%m-%d %H:%M')}</p>", "<h2>Settings</h2>", _settings_table(settings)]
    for item in items:
        src = Path(item["src"])
        parts.append(f'<section class="track"><h2>{html.escape(src.name)}</h2>')
        if item.get("error"):
            parts.append(f'<p class="error">{html.escape(item["error"])}</p></section>')
            continue
        players = [_player(page.parent, src, "input")] + [_player(page.parent, Path(p), stem)
                                                           for stem, p in item["stems"].items()]
        parts.append('<div class="players">' + "".join(players) + "</div>")
        img = file_figure(src, item["stems"], item.get("start", 0.0), item.get("duration"))
        parts.append(f'<img class="spectrogram" alt="spectrograms of {html.escape(src.name)}" '
                     f'src="data:image/png;base64,{img}">')
        parts.append("</section>")
    return write_page(page, _page("vocalsep separation report", "\n".join(parts)), overwrite)


# ---- evaluation -----------------------------------------------------------------------------

METRICS = ("SDR", "SIR", "SAR")


def read_museval_folder(folder: str | Path) -> dict[str, dict[str, dict[str, list[float]]]]:
    """track -> target -> metric -> per-frame values, from museval's per-track JSON files under ``folder``."""
    tracks = {}
    for f in sorted(Path(folder).rglob("*.json")):
        try:
            data = json.loads(f.read_text())
        except (ValueError, OSError):
            continue
        if not isinstance(data, dict) or "targets" not in data:
            continue
        per = {}
        for target in data["targets"]:
            per[target["name"]] = {m: [float(fr["metrics"][m]) for fr in target["frames"]
                                       if fr["metrics"].get(m) is not None] for m in METRICS}
        tracks[f.stem] = per
    return tracks


def evaluation_report(page: str | Path, folder: str | Path, label: str = "model", compare: str | Path | None = None,
                      compare_label: str = "oracle", overwrite: bool = False) -> Path:
    """Results page for an evaluation folder (``vocalsep evaluate --musdb/--dsd100 -o FOLDER``);
    ``compare``: a second such folder (an oracle run, or another model) drawn beside it."""
    plt = _pyplot()
    runs = {label: read_museval_folder(folder)}
    if compare is not None:
        runs[compare_label] = read_museval_folder(compare)
    if not runs[label]:
        raise ReportError(f"no museval track files under {folder}; run `vocalsep evaluate --musdb ROOT -o {folder}` first")
    targets = sorted({t for tr in runs[label].values() for t in tr})
    # box plots: one panel per metric, boxes per target (and run)
    fig, axes = plt.subplots(1, len(METRICS), figsize=(12, 3.8), squeeze=False)
    for ax, m in zip(axes[0], METRICS):
        data, names = [], []
        for target in targets:
            for run, tracks in runs.items():
                data.append([float(np.nanmedian(tr[target][m])) for tr in tracks.values() if tr.get(target, {}).get(m)])
                names.append(f"{target}\n{run}" if len(runs) > 1 else target)
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(range(1, len(names) + 1), names, fontsize=8, rotation=30, ha="right")
        ax.set_title(f"{m} (dB), median over frames, per track", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    boxes = _png(fig)
    plt.close(fig)
    # SDR over time per track
    sections = []
    for track in runs[label]:
        fig, ax = plt.subplots(figsize=(11, 2.6))
        for run, tracks in runs.items():
            for k, target in enumerate(targets):
                sdr = tracks.get(track, {}).get(target, {}).get("SDR", [])
                if sdr:
                    ax.plot(np.arange(len(sdr)), sdr, label=f"{target} ({run})" if len(runs) > 1 else target,
                            color=f"C{k}", linestyle="-" if run == label else "--")
        ax.set_xlabel("frame (1 s)")
        ax.set_ylabel("SDR (dB)")
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(alpha=0.3)
        img = _png(fig)
        plt.close(fig)
        sections.append(f'<section class="track"><h2>{html.escape(track)}</h2><img class="sdr-time" '
                        f'alt="SDR over time, {html.escape(track)}" src="data:image/png;base64,{img}"></section>')
    header = "".join(f"<th>{html.escape(f'{t} {m}')}</th>" for t in targets for m in METRICS)
    rows = []
    for run, tracks in runs.items():
        cells = "".join(f"<td>{np.nanmedian([np.nanmedian(tr[t][m]) for tr in tracks.values() if tr.get(t, {}).get(m)] or [np.nan]):.2f}</td>"
                        for t in targets for m in METRICS)
        rows.append(f"<tr><th>{html.escape(run)}</th>{cells}</tr>")
    table = f'<table class="summary"><tr><th></th>{header}</tr>{"".join(rows)}</table>'
    body = (f"<p>{len(runs[label])} track(s); median over tracks of the per-track median over 1 s frames "
            f"(museval).</p>{table}<h2>Across tracks</h2><img class=\"boxplot\" alt=\"box plots\" "
            f"src=\"data:image/png;base64,{boxes}\">" + "\n".join(sections))
    return write_page(Path(page), _page("vocalsep evaluation report", body), overwrite)
