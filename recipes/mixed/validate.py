"""Score a model on the generalisation validation sets: singers and songs it never trained on.

    python recipes/mixed/validate.py [--model NAME|PATH] [--postfilter|--no-postfilter]
                                     [--sets unseen songs heldout] [--heldout DIR] [--json FILE]
                                     [--high-band-bound] [--stereo-rules] [--no-refine]
                                     [--shifts N] [--segment-frames N] [--mask-sharpness A]

* ``unseen``: MIR-1K clips of two singers outside the training split (``data/mir1k/unseen.txt``:
  khair, yifen; 109 clips), voice GNSDR / GSIR / GSAR, BSS Eval v3, 0 dB mixtures (left + right).
* ``songs``: produced music, museval v4 (1 s windows, median over frames) vocals and accompaniment SDR
  on the four-stem 30 s song of ``songs/waveform-playlist-30s`` (mixture = sum of stems scaled to a
  peak of 0.99), and the two MUSDB18 previews of ``musdb18-sample`` (mixture = sum of the stems, as the
  Falcon 69 mixture stream is limited), each at its own rate and in stereo. Beside each, the vocal
  estimate's level and SNR above 8 kHz (the band the model does not see); ``--high-band-bound`` adds
  the vocals SDR with that band replaced by the true vocals', the most a ``--high-band`` rule can give.
  ``--stereo-rules`` adds the vocals / accompaniment SDR of two rules that use the songs' stereo image
  on the same vocal estimate (:func:`centre_rule`, :func:`spatial_wiener`), for measuring them.
* ``heldout``: the singers of the voice sources that training never loads (``prepare_voices.py``'s
  ``HELD_OUT``: GTSinger's Russian and Italian singers, FMSing's and CoMelSinger's unseen singers,
  vocadito, a tenth of SSVD), mixed at 0 dB over ``mir1k/unseen`` accompaniments as MIR-1K-style
  clips under ``--heldout`` (default ``exp/voices/heldout``); scored like ``unseen``. Part of the
  default sets when that folder exists.

Validation only: these sets choose models, checkpoints and settings; nothing here is trained on.
Data are read from ``--data`` (default ``../shared/data``). Needs the eval extras and ffmpeg.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

SONG_STEMS = ("Vocals30", "Guitar30", "PianoSynth30", "BassDrums30")


def produced_songs(data: Path):
    """(name, vocals, accompaniment, sample rate) of each produced validation song; arrays (samples, 2)."""
    import stempeg

    from vocalsep.audio import load_audio

    folder = data / "songs" / "waveform-playlist-30s"
    parts = [load_audio(folder / f"{s}.mp3") for s in SONG_STEMS]
    n = min(p[0].shape[1] for p in parts)
    vocals, acc = parts[0][0][:, :n].T, sum(p[0][:, :n] for p in parts[1:]).T
    scale = 0.99 / max(float(np.abs(vocals + acc).max()), 1e-9)
    yield "waveform-playlist", vocals * scale, acc * scale, parts[0][1]
    for sub, name in (("test", "The Easton Ellises - Falcon 69"), ("train", "Music Delta - 80s Rock")):
        stems, sr = stempeg.read_stems(str(data / "musdb18-sample" / sub / f"{name}.stem.mp4"), dtype=np.float32)
        yield name.split(" - ")[1], stems[4], stems[1] + stems[2] + stems[3], int(sr)


def high_band_scores(ref: np.ndarray, est: np.ndarray, sr: int, cutoff: float = 8000.0) -> tuple[float, float]:
    """The vocal estimate above ``cutoff`` against the true vocals there: its level relative to theirs
    (dB; 0 is right, very negative means the voice's sibilants and breaths went to the accompaniment)
    and its SNR, 10 log10(|s|^2 / |s - s_hat|^2) (dB). Arrays (samples, channels)."""
    f, r, e = _band_spectra(ref, est, sr, cutoff)
    r, e = r[f], e[f]
    p_ref, p_err = np.sum(np.abs(r) ** 2), np.sum(np.abs(r - e) ** 2)
    return float(10 * np.log10(np.sum(np.abs(e) ** 2) / p_ref)), float(10 * np.log10(p_ref / p_err))


def with_true_high_band(ref: np.ndarray, est: np.ndarray, sr: int, cutoff: float = 8000.0) -> np.ndarray:
    """``est`` with its band above ``cutoff`` replaced by ``ref``'s: the best any rule for that band
    (``--high-band``) could do with this model's mask below it. Arrays (samples, channels)."""
    f, r, spec = _band_spectra(ref, est, sr, cutoff)
    spec[f] = r[f]
    return np.fft.irfft(spec, len(ref), axis=0).astype(np.float32)


def _band_spectra(ref: np.ndarray, est: np.ndarray, sr: int, cutoff: float):
    """(bins above ``cutoff``, spectrum of ``ref``, spectrum of ``est`` cut to ``ref``'s length)."""
    f = np.fft.rfftfreq(len(ref), 1.0 / sr) > cutoff
    return f, np.fft.rfft(ref, axis=0), np.fft.rfft(est[:len(ref)], axis=0)


def sharpened(mask: np.ndarray, a: float) -> np.ndarray:
    """The mask with its logit scaled by ``a``: ``sigmoid(a * logit(m))`` (a > 1 sharper, < 1 softer, 1 as is)."""
    if a == 1.0:
        return mask
    m = np.clip(np.asarray(mask, np.float64), 1e-7, 1 - 1e-7)
    return (1.0 / (1.0 + np.exp(-a * np.log(m / (1 - m))))).astype(np.float32)


def centre_rule(est: np.ndarray) -> np.ndarray:
    """The vocal estimate's mid (mean of its channels) on every channel: a voice mixed at the centre
    has no side, so the side of the mixture all goes to the accompaniment. Arrays (samples, channels)."""
    return np.repeat(est.mean(1, keepdims=True), est.shape[1], 1)


def spatial_wiener(mix: np.ndarray, est: np.ndarray, sr: int, eps: float = 1e-10) -> np.ndarray:
    """A two-source multichannel Wiener filter that keeps the estimate's spectral gains and adds the
    songs' stereo image. Arrays (samples, channels).

    The mask ``m`` (per STFT bin, the same on every channel) is read back from ``est`` against
    ``mix``; each source's spatial covariance ``R_j(f)`` is the mixture's ``x x^H`` weighted by
    ``m^2`` (vocals) or ``(1 - m)^2`` (accompaniment) over the song, normalised by the weighted power;
    the vocals are ``m p R_v (m p R_v + (1 - m) p R_a)^-1 x`` with ``p`` the mixture's power. With one
    channel (or sources of one image) it returns ``est``'s mask again; with a centred voice over a
    wide accompaniment it takes from the vocals what its image says is not theirs.
    """
    from vocalsep.features import istft, stft

    n_fft = 2 ** round(np.log2(0.064 * sr))
    hop = n_fft // 4
    x, v = stft(mix.T.astype(np.float32), n_fft, hop), stft(est.T.astype(np.float32), n_fft, hop)  # (c, t, f)
    power = (np.abs(x) ** 2).mean(0)
    m = np.clip(np.sqrt((np.abs(v) ** 2).mean(0) / np.maximum(power, eps)), 0.0, 1.0)
    xx = np.einsum("itf,jtf->tfij", x, x.conj())
    cov = []
    for g in (m, 1.0 - m):
        w = g ** 2
        r = np.einsum("tf,tfij->fij", w, xx) / np.maximum((w * power).sum(0), eps)[:, None, None]
        cov.append((g * power)[..., None, None] * r[None])
    c = x.shape[0]
    gain = cov[0] @ np.linalg.inv(cov[0] + cov[1] + eps * np.eye(c))
    y = np.einsum("tfij,jtf->itf", gain, x)
    return istft(y, n_fft, hop, length=len(mix)).T


def score_unseen(separator, data: Path, manifest: str | Path, estimates_dir: Path | None = None,
                 root: Path | None = None, label: str = "mir1k/unseen") -> dict:
    """Voice GNSDR / GSIR / GSAR (BSS Eval v3, clip-length-weighted) on MIR-1K-style clips (mono 16 kHz,
    mixture = left + right) under ``root`` (default ``data/mir1k``): ``vocalsep evaluate --mir1k``'s
    scoring, of ``separator`` or of the estimates in ``estimates_dir/<clip>/``."""
    from vocalsep.evaluate import evaluate_mir1k

    s = evaluate_mir1k(separator, root or data / "mir1k", manifest, estimates_dir=estimates_dir)["summary"]["vocals"]
    print(f"  {label:18s} voice GNSDR {s['GNSDR']:6.2f}  GSIR {s['GSIR']:6.2f}  GSAR {s['GSAR']:6.2f}", flush=True)
    return {k: s[k] for k in ("GNSDR", "GSIR", "GSAR")}


def songs_corpus(data: Path, high_band_bound: bool = False, stereo_rules: bool = False):
    """The produced validation songs as a :class:`vocalsep.evaluate.Corpus`: museval v4 vocals and
    accompaniment SDR (median over 1 s frames) and the vocal estimate above 8 kHz, per song; with
    ``high_band_bound`` also the vocals SDR the estimate would have with the true vocals above 8 kHz
    (and the accompaniment the rest of the mixture); with ``stereo_rules`` the vocals and
    accompaniment SDR of :func:`centre_rule` and :func:`spatial_wiener` applied to the estimate."""
    from vocalsep.evaluate import Corpus, Track

    class ProducedSongs(Corpus):
        def __init__(self):
            self.songs = list(produced_songs(data))

        def __len__(self):
            return len(self.songs)

        def tracks(self):
            for name, vocals, acc, sr in self.songs:
                yield Track(name, sr, (vocals + acc).T.astype(np.float32), {"vocals": vocals.T, "accompaniment": acc.T})

        def score(self, track, est, out):
            import museval

            vocals, acc, sr = track.references["vocals"].T, track.references["accompaniment"].T, track.rate

            def sdr(v_est, a_est=None):  # museval v4 median vocals / accompaniment SDR; a_est: the rest of the mixture
                a_est = vocals + acc - v_est if a_est is None else a_est
                d = museval.evaluate(np.stack([vocals, acc]), np.stack([v_est, a_est]), win=sr, hop=sr)[0]
                return float(np.nanmedian(d[0])), float(np.nanmedian(d[1]))

            hf_level, hf_sdr = high_band_scores(vocals, est["vocals"].T, sr)
            s = dict(zip(("vocals", "accompaniment"), sdr(est["vocals"].T, est["accompaniment"].T)),
                     vocals_hf_level=hf_level, vocals_hf_snr=hf_sdr)
            extra = ""
            if high_band_bound:
                s["vocals_true_hf"] = sdr(with_true_high_band(vocals, est["vocals"].T, sr))[0]
                extra = f", vocals SDR with the true band {s['vocals_true_hf']:6.2f}"
            if stereo_rules:
                for rule, v in (("centre", centre_rule(est["vocals"].T)),
                                ("spatial", spatial_wiener(vocals + acc, est["vocals"].T, sr))):
                    s[f"{rule}_vocals"], s[f"{rule}_accompaniment"] = sdr(v)
                    extra += f", {rule} rule {s[f'{rule}_vocals']:6.2f} / {s[f'{rule}_accompaniment']:6.2f}"
            print(f"  {track.name:18s} vocals SDR {s['vocals']:6.2f}  accompaniment SDR {s['accompaniment']:6.2f}"
                  f"  vocals above 8 kHz: level {hf_level:+6.1f} dB, SNR {hf_sdr:6.2f} dB{extra}", flush=True)
            return track.name, s

        def summarize(self, scores, out):
            return dict(scores)

    return ProducedSongs()


def score_songs(separator, data: Path, estimates_dir: Path | None = None, high_band_bound: bool = False,
                stereo_rules: bool = False) -> dict:
    """Per song: museval v4 vocals / accompaniment SDR and the vocal estimate's level and SNR above 8 kHz,
    of ``separator`` or of the estimates in ``estimates_dir/<song>/`` (``high_band_bound``,
    ``stereo_rules``: see :func:`songs_corpus`)."""
    from vocalsep.evaluate import score_corpus

    return score_corpus(songs_corpus(data, high_band_bound, stereo_rules), separator, estimates_dir=estimates_dir)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="bundled model name or model file (default: the bundled default)")
    ap.add_argument("--postfilter", default=None, action=argparse.BooleanOptionalAction)
    ap.add_argument("--high-band", default=None, help="rule for the bins above the model's band (see --help of split)")
    ap.add_argument("--sets", nargs="+", default=None, choices=["unseen", "songs", "heldout"],
                    help="default: unseen songs, and heldout when its folder exists")
    ap.add_argument("--data", default="../shared/data", type=Path)
    ap.add_argument("--manifest", default="data/mir1k/unseen.txt")
    ap.add_argument("--heldout", default="exp/voices/heldout", type=Path,
                    help="the held-out voices' clips (recipes/mixed/prepare_voices.py)")
    ap.add_argument("--json", default=None, type=Path, help="also write the scores here")
    ap.add_argument("--runtime", default="auto", choices=["auto", "onnx", "torch"], help="what runs the network")
    ap.add_argument("--shifts", default=1, type=int, help="average the mask over this many time-shifted runs")
    ap.add_argument("--refine", default=None, action=argparse.BooleanOptionalAction,
                    help="the model's bin refiner (default: on where the model has one)")
    ap.add_argument("--segment-frames", default=500, type=int,
                    help="model frames per chunk of the apply loop (500: 4 s at 16 kHz, hop 128)")
    ap.add_argument("--high-band-bound", action="store_true",
                    help="songs: also the vocals SDR with the true vocals above 8 kHz (what any --high-band rule could reach)")
    ap.add_argument("--mask-sharpness", default=1.0, type=float,
                    help="scale the voice mask's logit by this (below 1 softer, above 1 sharper)")
    ap.add_argument("--stereo-rules", action="store_true",
                    help="songs: also the SDRs of the centre rule and the spatial Wiener filter on the same estimate")
    args = ap.parse_args(argv)
    manifest = args.heldout / "heldout.txt"
    if args.sets is None:
        args.sets = ["unseen", "songs"] + (["heldout"] if manifest.is_file() else [])
    elif "heldout" in args.sets and not manifest.is_file():
        print(f"error: no {manifest}; run recipes/mixed/prepare_voices.py first", file=sys.stderr)
        return 1

    from vocalsep import Separator

    kwargs = {"postfilter": args.postfilter, "shifts": args.shifts, "segment_frames": args.segment_frames,
              "refine": args.refine}
    if args.high_band:
        kwargs["high_band"] = args.high_band
    sep = Separator.from_pretrained(args.model, args.runtime, **kwargs)
    if args.mask_sharpness != 1.0:
        masks = sep.masks
        sep.masks = lambda *a, **kw: sharpened(masks(*a, **kw), args.mask_sharpness)
    result = {"model": args.model or "default", "runtime": sep.runtime, "postfilter": sep.postfilter, "shifts": sep.shifts,
              "segment_frames": sep.segment_frames, "refine": sep.refine, "mask_sharpness": args.mask_sharpness}
    print(f"model {result['model']}", flush=True)
    if "unseen" in args.sets:
        result["unseen"] = score_unseen(sep, args.data, args.manifest)
    if "songs" in args.sets:
        result["songs"] = score_songs(sep, args.data, high_band_bound=args.high_band_bound,
                                     stereo_rules=args.stereo_rules)
    if "heldout" in args.sets:
        result["heldout"] = score_unseen(sep, args.data, manifest, root=args.heldout, label="held-out voices")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
