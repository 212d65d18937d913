"""Scoring separations: MIR-1K GNSDR/GSIR/GSAR with BSS Eval v3 (mir_eval, pinned below 0.9)."""
from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import save_audio
from .choices import ACCOMPANIMENT, STEMS, VOCALS
from .data import DSD100_SOURCES, DatasetError, dsd100_tracks, load_mir1k
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
        ref = [separator.front.analyse(np.ascontiguousarray(r[s:s + seg])[None])[1][0] for r in (voice16, acc16)]
        voice_dominant = (ref[0] > ref[1]) & loud
        if voice_dominant.sum() < 10 or loud.sum() < 10 or labels is None:
            continue  # no voice to find in this chunk, or nothing to split
        energy = [float((mel * (voice_dominant & (labels == k))).sum()) for k in range(2)]
        right += int(voice == int(np.argmax(energy)))
        total += 1
    return right / total if total else float("nan")


def _features(separator):
    from .features import FeatureConfig

    return separator.cfg if separator is not None else FeatureConfig()


# ---- one scoring loop over per-corpus track readers ------------------------------------------

@dataclass
class Track:
    """One item of a corpus: its mixture and true stems, (channels, samples) or (samples,) for mono."""

    name: str
    rate: int
    mixture: np.ndarray
    references: dict[str, np.ndarray]  # vocals, accompaniment
    native: object = None  # the corpus's own track object where its scorer needs it (musdb.Track)


class Corpus:
    """A dataset: how its tracks are read, where estimates live, and how they are scored and summed up.

    :func:`score_corpus` is the one loop over any corpus; a new dataset is a new subclass.
    """

    estimates_folder = ""  # estimates written while separating go to OUT/<this>/, laid out by estimate_path

    def tracks(self) -> Iterator[Track]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def estimate_path(self, folder: Path, track: Track, stem: str) -> Path:
        """Where ``track``'s estimate of ``stem`` lies in an estimates ``folder`` (``--estimates``)."""
        return folder / track.name / f"{stem}.wav"

    def score(self, track: Track, estimates: dict[str, np.ndarray], out: Path | None) -> object:
        raise NotImplementedError

    def summarize(self, scores: list, out: Path | None) -> dict:
        raise NotImplementedError

    def empty_result(self) -> dict:
        """What a run that only wrote estimates returns."""
        return {"tracks": {}, "summary": {}}

    def read_estimates(self, folder: Path, track: Track) -> dict[str, np.ndarray]:
        """Estimates written earlier, checked against the track's rate, channels and length (within
        0.1 s) and then fitted to its exact length; a mono corpus's estimates are mono files."""
        from .audio import load_audio

        mono = track.mixture.ndim == 1
        channels, n = (1, len(track.mixture)) if mono else track.mixture.shape
        est = {}
        for stem in STEMS:
            y, sr = load_audio(self.estimate_path(folder, track, stem))
            if sr != track.rate:
                raise DatasetError(f"{track.name}: estimate {stem} is at {sr} Hz, the track at {track.rate} Hz")
            y = _fit_length(check_estimate(f"{track.name}: estimate {stem}", y, channels, n, track.rate).T, n).T
            est[stem] = y[0] if mono else y
        return est


def score_corpus(corpus: Corpus, separator=None, out_dir: str | Path | None = None,
                 estimates_dir: str | Path | None = None, separate_only: bool = False, oracle: str | None = None,
                 progress=None) -> dict:
    """Estimate every track of ``corpus`` -- read from ``estimates_dir``, from an ideal mask
    (``oracle``, see :func:`~vocalsep.masking.oracle_estimates`), or from ``separator`` -- write the
    estimates under ``out_dir`` (when separating), score them and summarise (``separate_only``: stop
    after writing). ``progress(done, total)`` is called after each track."""
    out = Path(out_dir) if out_dir else None
    scores = []
    total = len(corpus)
    if not total:
        raise DatasetError(f"{type(corpus).__name__.replace('Corpus', '')}: no tracks to score; check the "
                           "dataset root, subset and manifest")
    for i, track in enumerate(corpus.tracks()):
        check_track(track)
        if estimates_dir is not None:
            est = corpus.read_estimates(Path(estimates_dir), track)
            for stem, y in est.items():
                if not np.isfinite(y).all():
                    raise DatasetError(f"{track.name}: estimate {stem} has NaN or infinite samples; it cannot be "
                                       "scored (write finite samples)")
        else:
            est = _estimate(track, separator, oracle)
            if out is not None:
                for stem, y in est.items():
                    path = corpus.estimate_path(out / corpus.estimates_folder, track, stem)
                    save_audio(path, y, track.rate, overwrite=True, subtype="FLOAT")
        if progress:
            progress(i + 1, total)
        if separate_only:
            continue
        scores.append(corpus.score(track, est, out))
    return corpus.empty_result() if separate_only else corpus.summarize(scores, out)


def _estimate(track: Track, separator, oracle: str | None) -> dict[str, np.ndarray]:
    if not oracle:
        return separator.separate(track.mixture, track.rate)
    voice, acc = track.references[VOCALS], track.references[ACCOMPANIMENT]
    if voice.ndim == 1:  # mono corpus: the oracle works on (channels, samples)
        return {k: v[0] for k, v in oracle_estimates(oracle, voice[None], acc[None], track.rate,
                                                     _features(separator)).items()}
    return oracle_estimates(oracle, voice, acc, track.rate, _features(separator))


# ---- MIR-1K (BSS Eval v3 on whole clips, GNSDR) ----------------------------------------------

class Mir1kCorpus(Corpus):
    """MIR-1K clips (LEFT = accompaniment, RIGHT = voice), mono at the model's rate, mixed at 0 dB.

    Scores: BSS Eval v3 SDR/SIR/SAR per clip and NSDR = SDR(estimate) - SDR(mixture); with a k-means
    ``separator`` also how often its voice rule picks the right cluster."""

    def __init__(self, root: str | Path, manifest: str | Path | None = None, sample_rate: int = 16000,
                 separator=None, oracle: str | None = None):
        self.clips = load_mir1k(root, manifest, sample_rate, skip_bad=False)
        self.rate = sample_rate
        self.picker = (separator if separator is not None and not oracle and separator.mask_from == "clusters"
                       and separator.cluster.startswith("kmeans") else None)

    def __len__(self) -> int:
        return len(self.clips)

    def tracks(self) -> Iterator[Track]:
        for clip in self.clips:
            yield Track(clip.name, self.rate, clip.voice + clip.accompaniment,
                        {VOCALS: clip.voice, ACCOMPANIMENT: clip.accompaniment})

    def score(self, track: Track, estimates: dict[str, np.ndarray], out: Path | None) -> ClipScore:
        mix, voice, acc = track.mixture, track.references[VOCALS], track.references[ACCOMPANIMENT]
        refs = np.stack([voice, acc])
        sdr, sir, sar = bss_eval_v3(refs, np.stack([estimates[s] for s in STEMS]))
        sdr_mix, _, _ = bss_eval_v3(refs, np.stack([mix, mix]))
        pick = voice_pick_accuracy(self.picker, mix, voice, acc) if self.picker is not None else float("nan")
        s = ClipScore(track.name, len(mix) / track.rate, sdr.tolist(), sir.tolist(), sar.tolist(),
                      (sdr - sdr_mix).tolist(), pick)
        log.info("%s: vocals NSDR %.2f SIR %.2f SAR %.2f, voice pick %.2f", track.name, s.nsdr[0], sir[0], sar[0], pick)
        return s

    def empty_result(self) -> dict:
        return {"clips": [], "summary": {}}

    def summarize(self, scores: list[ClipScore], out: Path | None) -> dict:
        result = {"clips": [s.__dict__ for s in scores], "summary": summarize(scores)}
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / "scores.json").write_text(json.dumps(result, indent=2) + "\n")
        return result


def evaluate_mir1k(separator, root: str | Path, manifest: str | Path | None = None, out_dir: str | Path | None = None,
                   separate_only: bool = False, progress=None, oracle: str | None = None,
                   estimates_dir: str | Path | None = None) -> dict:
    """Separate MIR-1K clips (mixture = left + right at 0 dB) and score the voice and accompaniment.

    With ``oracle`` (one of :data:`~vocalsep.masking.ORACLES`) the estimates come from ideal masks instead of the
    model (the separator then only supplies the feature configuration, or the paper's if None); with
    ``estimates_dir`` they are read from ``estimates_dir/<clip>/{vocals,accompaniment}.wav`` (mono, at the
    model's rate, 16 kHz without a separator). Returns ``{"clips": [...], "summary": {...}}``: GNSDR/GSIR/GSAR as clip-length-weighted means,
    NSDR = SDR(estimate) - SDR(mixture); also written to ``out_dir/scores.json`` when given.
    """
    corpus = Mir1kCorpus(root, manifest, _features(separator).sample_rate, separator, oracle)
    return score_corpus(corpus, separator, out_dir, estimates_dir, separate_only, oracle, progress)


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


class MusdbCorpus(Corpus):
    """MUSDB18 tracks through the ``musdb`` package (stem files or ``is_wav``), stereo at 44.1 kHz;
    scored by museval (BSS Eval v4, 1 s windows), JSON per track in museval's layout."""

    estimates_folder = "estimates"

    def __init__(self, root: str | Path, subset: str = "test", split: str | None = None, is_wav: bool = False):
        try:
            import musdb
            import museval  # scoring needs it: fail before separating anything
        except Exception as exc:  # stempeg refuses to import without ffmpeg
            raise DatasetError(f"MUSDB18 evaluation needs musdb, museval and ffmpeg ({exc}); "
                               "install them with `pip install -e .[eval]` and `apt-get install ffmpeg`") from None
        root = Path(root)
        if not (root / subset).is_dir() and not is_wav:
            raise DatasetError(f"MUSDB18 root {root} has no {subset}/ folder; expected {root}/{subset}/<track>.stem.mp4 "
                               f"(or --is-wav with {root}/{subset}/<track>/{{mixture,vocals,...}}.wav)")
        try:
            self.mus = musdb.DB(root=str(root), subsets=subset, split=split, is_wav=is_wav)
        except Exception:  # noqa: BLE001 -- stempeg/ffprobe fail on a file that is not a stem file
            raise DatasetError(f"{_unreadable_stem(root / subset)}: not a readable MUSDB18 track; it must be a stem "
                               "file with five streams (mixture, drums, bass, other, vocals), or use --is-wav for "
                               "the wav layout") from None
        if not self.mus.tracks:
            raise DatasetError(f"no MUSDB18 tracks found under {root}/{subset}")
        self.subset, self.museval = subset, museval

    def __len__(self) -> int:
        return len(self.mus.tracks)

    def tracks(self) -> Iterator[Track]:
        for t in self.mus.tracks:
            try:
                mix, refs = t.audio.T.astype(np.float32), {s: t.targets[s].audio.T for s in STEMS}
            except Exception as exc:  # noqa: BLE001 -- whatever stempeg/ffmpeg raise for a file they cannot decode
                raise DatasetError(f"{t.path}: not a readable MUSDB18 track ({type(exc).__name__}); it must be a "
                                   "stem file with five streams (mixture, drums, bass, other, vocals), or use "
                                   "--is-wav for the wav layout") from None
            yield Track(t.name, int(t.rate), mix, refs, native=t)

    def estimate_path(self, folder: Path, track: Track, stem: str) -> Path:
        return folder / self.subset / track.name / f"{stem}.wav"

    def score(self, track: Track, estimates: dict[str, np.ndarray], out: Path | None) -> tuple[str, dict]:
        n = track.mixture.shape[1]
        store = self.museval.eval_mus_track(track.native, {s: _fit_length(estimates[s].T, n) for s in STEMS},
                                       output_dir=str(out))
        medians = _track_medians(store)
        log.info("%s: vocals SDR %.2f, accompaniment SDR %.2f", track.name, medians[VOCALS]["SDR"],
                 medians[ACCOMPANIMENT]["SDR"])
        return track.name, medians

    def summarize(self, scores: list, out: Path | None) -> dict:
        return _write_summary(dict(scores), self.subset, out)


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
    return score_corpus(MusdbCorpus(root, subset, split, is_wav), separator, out_dir, estimates_dir, separate_only, oracle, progress)


def _write_summary(per_track: dict, subset: str, out: Path) -> dict:
    """Aggregate per-track medians over tracks (median and mean) and write ``out/summary.json``."""
    result = {"tracks": per_track, "summary": {
        "median": _aggregate(per_track, np.nanmedian), "mean": _aggregate(per_track, np.nanmean),
        "tracks": len(per_track), "subset": subset}}
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _unreadable_stem(folder: Path) -> Path:
    """The first stem file under ``folder`` that ffprobe cannot read (the folder when all can)."""
    import subprocess

    for f in sorted(folder.glob("*.stem.mp4")):
        probe = subprocess.run(["ffprobe", "-v", "error", "-show_streams", str(f)], capture_output=True)
        if probe.returncode != 0 or probe.stdout.count(b"[STREAM]") < 5:
            return f
    return folder


def check_track(track: Track) -> None:
    """A track is scored only when its mixture and every reference stem are there, finite, and of the
    mixture's shape: anything else would give a score that means nothing (or NaN)."""
    if not np.isfinite(track.mixture).all():
        raise DatasetError(f"{track.name}: the mixture has NaN or infinite samples; it cannot be scored")
    for stem in STEMS:
        ref = track.references.get(stem)
        if ref is None:
            raise DatasetError(f"{track.name}: no {stem} reference; every track needs {' and '.join(STEMS)}")
        if ref.shape != track.mixture.shape:
            raise DatasetError(f"{track.name}: the {stem} reference has shape {ref.shape}, the mixture "
                               f"{track.mixture.shape}; references must match the mixture's channels and length")
        if not np.isfinite(ref).all():
            raise DatasetError(f"{track.name}: the {stem} reference has NaN or infinite samples; it cannot be scored")


def check_reference(what: str, y: np.ndarray, rate: int, channels: int, n: int, mix_rate: int) -> np.ndarray:
    """A reference source read from disk, (channels, samples): the mixture's rate and channels, its
    length within 0.1 s, finite samples; otherwise the track is not scored."""
    if rate != mix_rate:
        raise DatasetError(f"{what} is at {rate} Hz, the mixture at {mix_rate} Hz; resample the sources to the "
                           "mixture's rate")
    if y.shape[0] != channels:
        raise DatasetError(f"{what} has {y.shape[0]} channel(s), the mixture {channels}; give every source the "
                           "mixture's channels")
    if abs(y.shape[1] - n) > max(1, mix_rate // 10):
        raise DatasetError(f"{what} is {y.shape[1] / rate:.2f} s long, the mixture {n / mix_rate:.2f} s; every "
                           "source must cover the mixture")
    if not np.isfinite(y).all():
        raise DatasetError(f"{what} has NaN or infinite samples; it cannot be scored")
    return y


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

class Dsd100Corpus(Corpus):
    """DSD100 (``Mixtures/`` and ``Sources/{Dev,Test}/<track>/``), scored as SiSEC 2016 did: BSS Eval v3
    on ``win_s`` windows with a ``hop_s`` hop, JSON per track in museval's format."""

    estimates_folder = "estimates"

    def __init__(self, root: str | Path, subset: str = "Test", win_s: float = 30.0, hop_s: float = 15.0):
        self.root, self.subset, self.win_s, self.hop_s = Path(root), subset, win_s, hop_s
        self.folders = dsd100_tracks(root, subset)

    def __len__(self) -> int:
        return len(self.folders)

    def tracks(self) -> Iterator[Track]:
        from .audio import load_audio

        for folder in self.folders:
            mix, sr = load_audio(self.root / "Mixtures" / self.subset.split("-")[0] / folder.name / "mixture.wav")
            n, src = mix.shape[1], {}
            for s in DSD100_SOURCES:
                path = folder / f"{s}.wav"
                if not path.is_file():
                    raise DatasetError(f"{path}: missing; every DSD100 track needs {', '.join(DSD100_SOURCES)}")
                y, rate = load_audio(path)
                # each source to the mixture's length first: they may differ from it, and from each
                # other, by up to the tolerance check_reference allows
                src[s] = _fit_length(check_reference(str(path), y, rate, mix.shape[0], n, sr).T, n).T
            refs = {VOCALS: src["vocals"], ACCOMPANIMENT: sum(src[s] for s in DSD100_SOURCES[1:])}
            yield Track(folder.name, sr, mix, refs)

    def estimate_path(self, folder: Path, track: Track, stem: str) -> Path:
        return folder / self.subset / track.name / f"{stem}.wav"

    def score(self, track: Track, estimates: dict[str, np.ndarray], out: Path | None) -> tuple[str, dict]:
        import museval

        n, sr = track.mixture.shape[1], track.rate
        refs = np.stack([track.references[s].T for s in STEMS])
        ests = np.stack([_fit_length(estimates[s].T, n) for s in STEMS])
        if refs.shape != ests.shape:
            raise DatasetError(f"{track.name}: references {refs.shape} and estimates {ests.shape} differ in shape")
        sdr, isr, sir, sar = museval.evaluate(refs, ests, win=int(self.win_s * sr), hop=int(self.hop_s * sr), mode="v3")
        store = museval.TrackStore(track_name=track.name, win=self.win_s, hop=self.hop_s)
        for i, stem in enumerate(STEMS):
            store.add_target(stem, {"SDR": sdr[i].tolist(), "SIR": sir[i].tolist(), "ISR": isr[i].tolist(),
                                    "SAR": sar[i].tolist()})
        (out / self.subset).mkdir(parents=True, exist_ok=True)
        (out / self.subset / f"{track.name}.json").write_text(store.json)
        medians = _track_medians(store)
        log.info("%s: vocals SDR %.2f", track.name, medians[VOCALS]["SDR"])
        return track.name, medians

    def summarize(self, scores: list, out: Path | None) -> dict:
        return _write_summary(dict(scores), self.subset, out)


def evaluate_dsd100(separator, root: str | Path, out_dir: str | Path, subset: str = "Test",
                    estimates_dir: str | Path | None = None, win_s: float = 30.0, hop_s: float = 15.0,
                    separate_only: bool = False, oracle: str | None = None) -> dict:
    """Separate (or read estimates of) DSD100 tracks and score them with museval in BSS Eval v3
    mode on 30 s windows with a 15 s hop, as SiSEC 2016 did. JSON per track in museval's format
    under ``out_dir/<subset>/``; same aggregates as :func:`evaluate_musdb`."""
    return score_corpus(Dsd100Corpus(root, subset, win_s, hop_s), separator, out_dir, estimates_dir, separate_only,
                        oracle)
