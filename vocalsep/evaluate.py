"""Scoring separations: MIR-1K GNSDR/GSIR/GSAR with BSS Eval v3 (mir_eval, pinned below 0.9)."""
from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .audio import save_audio
from .choices import ACCOMPANIMENT, STEMS, VOCALS
from .data import DatasetError, load_mir1k
from .masking import oracle_estimates

log = logging.getLogger(__name__)


def bss_eval_v3(references: np.ndarray, estimates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SDR, SIR, SAR per source (BSS Eval v3, no permutation). Arrays are (sources, samples)."""
    from mir_eval.separation import bss_eval_sources

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mir_eval's deprecation notice for bss_eval_sources
        sdr, sir, sar, _ = bss_eval_sources(references, estimates, compute_permutation=False)
    return sdr, sir, sar


@dataclass
class ClipScore:
    name: str
    seconds: float
    sdr: list[float]  # vocals, accompaniment
    sir: list[float]
    sar: list[float]
    nsdr: list[float]
    voice_pick: float  # fraction of chunks whose voice cluster the rule picked correctly


def voice_pick_accuracy(separator, mix16: np.ndarray, voice16: np.ndarray, acc16: np.ndarray) -> float:
    """How often the voice rule picks the right k-means cluster, over the clip's model chunks.

    The right cluster is the one holding more voice-dominated energy (ideal binary mask on the mel
    bands, loud bins only). Only meaningful for ``cluster="kmeans"``.
    """
    seg = separator.cfg.samples_for_frames(separator.segment_frames)
    right, total = 0, 0
    for s in range(0, len(mix16), seg):
        mel, loud, labels, voice = separator.voice_clusters(mix16[s:s + seg])
        ref = [separator.front.analyse(torch.from_numpy(np.ascontiguousarray(r[s:s + seg]))[None])[1][0]
               for r in (voice16, acc16)]
        voice_dominant = (ref[0] > ref[1]) & loud
        if voice_dominant.sum() < 10 or loud.sum() < 10 or labels is None:
            continue  # no voice to find in this chunk, or nothing to split
        energy = [(mel * (voice_dominant & (labels == k))).sum().item() for k in range(2)]
        right += int(voice == int(np.argmax(energy)))
        total += 1
    return right / total if total else float("nan")


def _features(separator):
    from .features import FeatureConfig

    return separator.cfg if separator is not None else FeatureConfig()


def evaluate_mir1k(separator, root: str | Path, manifest: str | Path | None = None, out_dir: str | Path | None = None,
                   separate_only: bool = False, progress=None, oracle: str | None = None) -> dict:
    """Separate MIR-1K clips (mixture = left + right at 0 dB) and score the voice and accompaniment.

    With ``oracle`` (one of :data:`~vocalsep.masking.ORACLES`) the estimates come from ideal masks instead of the
    model (the separator then only supplies the feature configuration, or the paper's if None).
    Returns ``{"clips": [...], "summary": {...}}``: GNSDR/GSIR/GSAR as clip-length-weighted means,
    NSDR = SDR(estimate) - SDR(mixture); also written to ``out_dir/scores.json`` when given.
    """
    cfg = _features(separator)
    sr = cfg.sample_rate
    clips = load_mir1k(root, manifest, sr, skip_bad=False)
    out = Path(out_dir) if out_dir else None
    scores: list[ClipScore] = []
    for i, clip in enumerate(clips):
        mix = clip.voice + clip.accompaniment
        if oracle:
            est = {k: v[0] for k, v in oracle_estimates(oracle, clip.voice[None], clip.accompaniment[None], sr, cfg).items()}
        else:
            est = separator.separate(mix, sr)
        if out is not None:
            for stem, y in est.items():
                save_audio(out / clip.name / f"{stem}.wav", y, sr, overwrite=True, subtype="FLOAT")
        if progress:
            progress(i + 1, len(clips))
        if separate_only:
            continue
        refs = np.stack([clip.voice, clip.accompaniment])
        sdr, sir, sar = bss_eval_v3(refs, np.stack([est[s] for s in STEMS]))
        sdr_mix, _, _ = bss_eval_v3(refs, np.stack([mix, mix]))
        pick = (voice_pick_accuracy(separator, mix, clip.voice, clip.accompaniment)
                if not oracle and separator.mask_from == "clusters" and separator.cluster.startswith("kmeans")
                else float("nan"))
        scores.append(ClipScore(clip.name, len(mix) / sr, sdr.tolist(), sir.tolist(), sar.tolist(),
                                (sdr - sdr_mix).tolist(), pick))
        log.info("%s: vocals NSDR %.2f SIR %.2f SAR %.2f, voice pick %.2f", clip.name, scores[-1].nsdr[0], sir[0], sar[0], pick)
    if separate_only:
        return {"clips": [], "summary": {}}
    result = {"clips": [s.__dict__ for s in scores], "summary": summarize(scores)}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "scores.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def summarize(scores: list[ClipScore]) -> dict:
    w = np.array([s.seconds for s in scores])
    def gmean(attr, idx):
        return float(np.sum(w * np.array([getattr(s, attr)[idx] for s in scores])) / w.sum())
    summary = {}
    for idx, stem in enumerate(STEMS):
        summary[stem] = {"GNSDR": gmean("nsdr", idx), "GSIR": gmean("sir", idx), "GSAR": gmean("sar", idx),
                         "GSDR": gmean("sdr", idx)}
    picks = [s.voice_pick for s in scores if not np.isnan(s.voice_pick)]
    summary["voice_pick_accuracy"] = float(np.mean(picks)) if picks else None
    summary["clips"] = len(scores)
    summary["seconds"] = float(w.sum())
    return summary


def format_summary(summary: dict) -> str:
    lines = [f"{summary['clips']} clips, {summary['seconds'] / 60:.1f} min; BSS Eval v3, clip-length-weighted means (dB)",
             f"{'':14s}{'GNSDR':>8s}{'GSIR':>8s}{'GSAR':>8s}"]
    for stem in STEMS:
        s = summary[stem]
        lines.append(f"{stem:14s}{s['GNSDR']:8.2f}{s['GSIR']:8.2f}{s['GSAR']:8.2f}")
    if summary.get("voice_pick_accuracy") is not None:
        lines.append(f"voice cluster picked right in {100 * summary['voice_pick_accuracy']:.1f}% of chunks")
    return "\n".join(lines)


# ---- MUSDB18 (museval, BSS Eval v4) ---------------------------------------------------------

MUSDB_METRICS = ("SDR", "SIR", "SAR", "ISR")


def evaluate_musdb(separator, root: str | Path, out_dir: str | Path, subset: str = "test", split: str | None = None,
                   is_wav: bool = False, estimates_dir: str | Path | None = None, progress=None,
                   separate_only: bool = False, oracle: str | None = None) -> dict:
    """Separate (or read estimates of) every MUSDB18 track and score it with museval.

    Writes ``out_dir/<subset>/<Track Name>.json`` (museval's format, 1 s windows), and, when
    separating, the estimates under ``out_dir/estimates/<subset>/<Track Name>/``. Both ``vocals`` and
    ``accompaniment`` are always scored. Returns per-track medians over frames and their
    aggregates over tracks (median -- the leaderboard's -- and mean). ``separate_only`` writes the
    estimates and stops there; ``oracle`` (see :func:`oracle_estimates`) scores an ideal mask instead.
    """
    from .data import DatasetError

    try:
        import museval
        import musdb
    except Exception as exc:  # stempeg refuses to import without ffmpeg
        raise DatasetError(f"MUSDB18 evaluation needs musdb, museval and ffmpeg ({exc}); "
                           "install them with `pip install -e .[eval]` and `apt-get install ffmpeg`") from None
    root = Path(root)
    if not (root / subset).is_dir() and not is_wav:
        raise DatasetError(f"MUSDB18 root {root} has no {subset}/ folder; expected {root}/{subset}/<track>.stem.mp4 "
                           f"(or --is-wav with {root}/{subset}/<track>/{{mixture,vocals,...}}.wav)")
    mus = musdb.DB(root=str(root), subsets=subset, split=split, is_wav=is_wav)
    if not mus.tracks:
        raise DatasetError(f"no MUSDB18 tracks found under {root}/{subset}")
    out = Path(out_dir)
    per_track = {}
    for i, track in enumerate(mus.tracks):
        if estimates_dir is not None:
            from .audio import load_audio

            est = {}
            for stem in STEMS:
                y, sr = load_audio(Path(estimates_dir) / subset / track.name / f"{stem}.wav")
                if sr != track.rate:
                    raise DatasetError(f"{track.name}: estimate {stem} is at {sr} Hz, the track at {track.rate} Hz")
                est[stem] = check_estimate(f"{track.name}: estimate {stem}", y, track.audio.shape[1], track.audio.shape[0],
                                           int(track.rate))
        else:
            if oracle:
                est = oracle_estimates(oracle, track.targets[VOCALS].audio.T, track.targets[ACCOMPANIMENT].audio.T,
                                       int(track.rate), _features(separator))
            else:
                est = separator.separate(track.audio.T.astype(np.float32), int(track.rate))
            for stem, y in est.items():
                save_audio(out / "estimates" / subset / track.name / f"{stem}.wav", y, int(track.rate),
                           overwrite=True, subtype="FLOAT")
        if separate_only:
            continue
        n = track.audio.shape[0]
        estimates = {stem: _fit_length(est[stem].T, n) for stem in STEMS}
        store = museval.eval_mus_track(track, estimates, output_dir=str(out))
        per_track[track.name] = _track_medians(store)
        log.info("%s: vocals SDR %.2f, accompaniment SDR %.2f", track.name,
                 per_track[track.name][VOCALS]["SDR"], per_track[track.name][ACCOMPANIMENT]["SDR"])
        if progress:
            progress(i + 1, len(mus.tracks))
    if separate_only:
        return {"tracks": {}, "summary": {}}
    return _write_summary(per_track, subset, out)


def _write_summary(per_track: dict, subset: str, out: Path) -> dict:
    """Aggregate per-track medians over tracks (median and mean) and write ``out/summary.json``."""
    result = {"tracks": per_track, "summary": {
        "median": _aggregate(per_track, np.nanmedian), "mean": _aggregate(per_track, np.nanmean),
        "tracks": len(per_track), "subset": subset}}
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def check_estimate(what: str, y: np.ndarray, channels: int, n: int, sample_rate: int) -> np.ndarray:
    """An estimate read from disk, (channels, samples), must have the track's channels and its length
    within 0.1 s (decoders may add or drop a few samples); otherwise it is not scored."""
    if y.shape[0] != channels:
        raise DatasetError(f"{what} has {y.shape[0]} channel(s), the track {channels}; write it with the track's channels")
    if abs(y.shape[1] - n) > max(1, sample_rate // 10):
        raise DatasetError(f"{what} is {y.shape[1] / sample_rate:.2f} s long, the track {n / sample_rate:.2f} s; "
                           "an estimate must cover the whole track")
    return y


def _fit_length(y: np.ndarray, n: int) -> np.ndarray:
    """(samples, channels) padded or cut to ``n`` samples."""
    if len(y) >= n:
        return y[:n]
    return np.pad(y, ((0, n - len(y)), (0, 0)))


def _track_medians(store) -> dict:
    """Median over 1 s frames of each metric of each target (NaN frames, e.g. silent ones, skipped)."""
    out = {}
    for target in store.scores["targets"]:
        frames = target["frames"]
        out[target["name"]] = {m: float(np.nanmedian([np.nan if f["metrics"][m] is None else f["metrics"][m]
                                                      for f in frames])) if frames else float("nan")
                               for m in MUSDB_METRICS}
    return out


def _aggregate(per_track: dict, fn) -> dict:
    stems = STEMS
    return {s: {m: float(fn([t[s][m] for t in per_track.values()])) for m in MUSDB_METRICS} for s in stems}


def format_musdb(summary: dict, method: str = "museval v4, 1 s windows") -> str:
    lines = [f"{summary['tracks']} tracks ({summary['subset']}); {method}, median over frames, "
             "then over tracks (leaderboard) and mean over tracks (dB)",
             f"{'':24s}" + "".join(f"{m:>8s}" for m in MUSDB_METRICS)]
    for agg in ("median", "mean"):
        for stem in STEMS:
            row = summary[agg][stem]
            lines.append(f"{stem + ' (' + agg + ')':24s}" + "".join(f"{row[m]:8.2f}" for m in MUSDB_METRICS))
    return "\n".join(lines)


# ---- DSD100 (BSS Eval v3 framewise, as SiSEC 2016) -----------------------------------------

def evaluate_dsd100(separator, root: str | Path, out_dir: str | Path, subset: str = "Test",
                    estimates_dir: str | Path | None = None, win_s: float = 30.0, hop_s: float = 15.0,
                    separate_only: bool = False, oracle: str | None = None) -> dict:
    """Separate (or read estimates of) DSD100 tracks and score them with museval in BSS Eval v3
    mode on 30 s windows with a 15 s hop, as SiSEC 2016 did. JSON per track in museval's format
    under ``out_dir/<subset>/``; same aggregates as :func:`evaluate_musdb`."""
    import museval

    from .audio import load_audio
    from .data import DatasetError, dsd100_tracks

    out = Path(out_dir)
    per_track = {}
    for track in dsd100_tracks(root, subset):
        name = track.name
        mix_path = Path(root) / "Mixtures" / subset.split("-")[0] / name / "mixture.wav"
        mix, sr = load_audio(mix_path)
        src = {s: load_audio(track / f"{s}.wav")[0] for s in ("vocals", "bass", "drums", "other")}
        n = mix.shape[1]
        refs = np.stack([_fit_length(src["vocals"].T, n),
                         _fit_length((src["bass"] + src["drums"] + src["other"]).T, n)])
        if estimates_dir is not None:
            est = {}
            for s in STEMS:
                y, rate = load_audio(Path(estimates_dir) / subset / name / f"{s}.wav")
                if rate != sr:
                    raise DatasetError(f"{name}: estimate {s} is at {rate} Hz, the track at {sr} Hz")
                est[s] = check_estimate(f"{name}: estimate {s}", y, mix.shape[0], n, sr)
        else:
            est = (oracle_estimates(oracle, refs[0].T, refs[1].T, sr, _features(separator)) if oracle
                   else separator.separate(mix, sr))
            for stem, y in est.items():
                save_audio(out / "estimates" / subset / name / f"{stem}.wav", y, sr, overwrite=True, subtype="FLOAT")
        if separate_only:
            continue
        ests = np.stack([_fit_length(est[s].T, n) for s in STEMS])
        if refs.shape != ests.shape:
            raise DatasetError(f"{name}: references {refs.shape} and estimates {ests.shape} differ in shape")
        sdr, isr, sir, sar = museval.evaluate(refs, ests, win=int(win_s * sr), hop=int(hop_s * sr), mode="v3")
        store = museval.TrackStore(track_name=name, win=win_s, hop=hop_s)
        for i, stem in enumerate(STEMS):
            store.add_target(stem, {"SDR": sdr[i].tolist(), "SIR": sir[i].tolist(), "ISR": isr[i].tolist(),
                                    "SAR": sar[i].tolist()})
        (out / subset).mkdir(parents=True, exist_ok=True)
        (out / subset / f"{name}.json").write_text(store.json)
        per_track[name] = _track_medians(store)
        log.info("%s: vocals SDR %.2f", name, per_track[name][VOCALS]["SDR"])
    if separate_only:
        return {"tracks": {}, "summary": {}}
    return _write_summary(per_track, subset, out)
