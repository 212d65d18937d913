"""Separator: waveform in, ``{"vocals", "accompaniment"}`` out, at the input's rate and shape."""
from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .apply import apply_chunked, iter_chunked
from .audio import AudioError, AudioOutput, check_output, fit_gain, open_audio
from .choices import ACCOMPANIMENT, CLIP_MODES, CLUSTER_METHODS, HIGH_BANDS, MASK_SOURCES, MASKS, RECONSTRUCTIONS, VOCALS
from .cluster import assign, fit_centroids, pick_voice_cluster, source_masks, voice_direction, voice_masks
from .errors import MAX_CHANNELS, MAX_INPUT_PEAK, MAX_SOURCES, VocalsepError, check_number, check_sample_rate
from .features import loud_bins, magnitude
from .frontend import FrontEnd
from .masking import apply_band_masks, mel_reconstruct
from .model_info import ModelInfo
from .outputs import DEFAULT_TEMPLATE, output_paths

log = logging.getLogger(__name__)


class SeparationError(VocalsepError, ValueError):
    """The input cannot be separated as given (shape, values, sample rate)."""


SHIFT_SPAN = 32  # frames: the bundled U-Nets' time stride (2 ** depth), over which ``shifts`` spread


class Separator:
    """Separates singing voice from accompaniment with a deep clustering or mask-inference model.

    Args:
        bundle: a loaded model (see :meth:`from_pretrained` and :meth:`from_file`): an exported ONNX file
            run by ONNX Runtime, or a torch model file run by torch. Only the network step differs;
            features, clustering, masks and the chunked loop are the same code for both.
        device: where the network runs (``"cpu"``, ``"cuda"``: torch only); audio stays on the CPU.
        threads: the ONNX runtime's intra-op threads (None: one per physical core; torch uses its own
            setting, ``torch.set_num_threads``), and the threads that apply the masks (inverse STFT and
            all; None: one per CPU). The output does not depend on it.
        reconstruct: ``"full"`` (default: the voice mask is applied to the input's own STFT at its
            own rate on every channel, so nothing above 8 kHz is lost and vocals + accompaniment
            equal the input) or ``"mel"`` (the MIREX 2016 path: masked mel spectrogram, inverse mel
            filterbank, mixture phase, inverse STFT at 16 kHz, resampled back; mono content).
        cluster: ``"kmeans"`` (k-means++, k=2, the paper's), ``"kmeans-sklearn"`` (the same with
            scikit-learn, the reference), ``"meanshift"`` (number of clusters found from the data) or
            ``"prototype"`` (nearest stored centroid).
        mask_from: where the voice mask comes from: ``"clusters"`` (the embeddings), ``"head"`` (the
            network's mask-inference output) or ``"auto"`` (the head when the model has one).
        mask: ``"binary"`` (the paper's) or ``"soft"`` (the head's sigmoid output, or soft k-means
            memberships ``softmax(softness * v . c)`` over the centroids for clusters); ``"auto"``:
            soft from a mask head, binary from clusters (the best of each on validation).
        postfilter: refine the voice mask on the full-band STFT with :func:`~vocalsep.masking.wiener_postfilter`;
            None: as the model file's ``separation`` defaults say for this mask source (on when they
            say nothing) with ``reconstruct="full"`` and two sources, off otherwise.
        high_band: how bins above the model's top band (above 8 kHz) are masked with
            ``reconstruct="full"``: ``"octave"`` (default) the mean mask of the model's top octave
            (4-8 kHz), so sibilants and breaths follow the voice; ``"top"`` the top band alone.
        sources: 2 for vocals/accompaniment; N > 2 clusters into N sources (Hershey et al.) and
            returns ``source1`` .. ``sourceN``, ordered by how voice-like their centroid is.
        shifts: run the network on this many copies of each chunk's features, delayed by evenly spaced
            numbers of frames within :data:`SHIFT_SPAN`, and average their masks (mask head only; as
            Demucs's ``shifts``). 1 (default) runs it once; 4 scored about 0.05 dB higher on the unseen
            singers and the songs (default model) for four times the network's time.
        segment_frames: model frames per chunk (500 in the paper); ``overlap``: cross-fade fraction.
        seed, n_init: k-means++ random seed and number of restarts (fixed for reproducibility).
        fit_points: fit clusters on at most this many loud bins per chunk, drawn at random (None:
            all of them); every bin is then assigned to its nearest centroid. 4000 bins and one
            restart score the same as all bins and two restarts on validation, at a fraction of the cost.
        batch: chunks run through the network at once (faster on CPU; memory grows with it only).
        progress: optional ``progress(done_chunks, total_chunks)`` callback, called after each batch.
    """

    def __init__(self, bundle: ModelInfo, device: str = "cpu", reconstruct: str = "full",
                 cluster: str = "kmeans", segment_frames: int = 500, overlap: float = 0.25, seed: int = 0,
                 n_init: int = 1, fit_points: int | None = 4000, batch: int = 8,
                 progress: Callable[[int, int], None] | None = None, mask_from: str = "auto",
                 mask: str = "auto", softness: float = 10.0, sources: int = 2, postfilter: bool | None = None,
                 high_band: str = HIGH_BANDS[0], threads: int | None = None, shifts: int = 1,
                 refine: bool | None = None):
        for name, value, allowed in (("reconstruction", reconstruct, RECONSTRUCTIONS), ("high-band rule", high_band, HIGH_BANDS),
                                     ("clustering method", cluster, CLUSTER_METHODS), ("mask", mask, MASKS),
                                     ("mask source", mask_from, MASK_SOURCES)):
            if value not in allowed:
                raise SeparationError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")
        if segment_frames < 2:
            raise SeparationError(f"segment_frames must be at least 2, got {segment_frames}")
        if batch < 1:
            raise SeparationError(f"batch must be at least 1, got {batch}")
        check_number(sources, "sources", lo=2, hi=MAX_SOURCES, integer=True, error=SeparationError)
        check_number(softness, "softness", lo=0, lo_open=True, error=SeparationError)
        check_number(overlap, "overlap", lo=0, hi=0.5, error=SeparationError)
        if not isinstance(bundle, ModelInfo):
            raise SeparationError(f"bundle must be a loaded model (Separator.from_pretrained, from_file), got "
                                  f"{type(bundle).__name__}")
        if threads is not None:
            check_number(threads, "threads", lo=1, hi=1024, integer=True, error=SeparationError)
        heads = bundle.heads
        if mask_from == "auto":
            mask_from = "head" if "mask" in heads and sources == 2 else "clusters"
        if mask == "auto":
            mask = "soft" if mask_from == "head" else "binary"
        if mask_from == "head" and "mask" not in heads:
            raise SeparationError("this model has no mask-inference head; take the mask from the clusters (--mask-from clusters)")
        if mask_from == "clusters" and "embedding" not in heads:
            raise SeparationError("this model predicts a mask and has no embeddings to cluster: take the mask from its "
                                  "head (--mask-from head, 2 sources), or choose a deep clustering model for clusters "
                                  "or more sources (e.g. --model mir1k-chimera)")
        check_number(shifts, "shifts", lo=1, hi=SHIFT_SPAN, integer=True, error=SeparationError)
        if shifts > 1 and mask_from != "head":
            raise SeparationError("shifts average the mask head's output; clustered masks take shifts=1 "
                                  "(or --mask-from head with a model that has a mask head)")
        if sources > 2 and (mask_from == "head" or reconstruct == "mel"):
            raise SeparationError("more than 2 sources needs clustering of the embeddings (--mask-from clusters) and the "
                                  "full-band reconstruction (--reconstruct full)")
        if postfilter is None:  # the model's own choice for this mask source where its file records one
            postfilter = reconstruct == "full" and sources == 2 and bundle.postfilter_default(mask_from)
        if postfilter and (reconstruct != "full" or sources > 2):
            raise SeparationError("the post-filter works on the full-band two-stem output (--reconstruct full, 2 "
                                  "sources); turn it off with --no-postfilter")
        plain = mask_from == "head" and reconstruct == "full" and sources == 2
        if refine is None:  # a model with a bin refiner uses it wherever its band mask is applied on the bins
            refine = "bin_mask" in heads and plain
        if refine and "bin_mask" not in heads:
            raise SeparationError("this model has no bin refiner; separate without --refine")
        if refine and not plain:
            raise SeparationError("the bin refiner works on the mask head's two-stem full-band output (--mask-from "
                                  "head, --reconstruct full, 2 sources); turn it off with --no-refine")
        if mask_from == "clusters" and sources == 2:
            voice_direction(bundle.voice_rule)  # fail now, not on the first chunk
        if mask_from == "clusters" and cluster in ("kmeans-sklearn", "meanshift"):
            from .errors import require

            require("sklearn", f"--cluster {cluster}", "cluster")
        self.bundle = bundle
        self.cfg = bundle.features
        self.device = str(device)
        self.network = bundle.network(self.device, threads)
        self.mask_threads = threads or os.cpu_count() or 1
        self.runtime = bundle.runtime
        self.reconstruct, self.cluster, self.mask_from, self.mask = reconstruct, cluster, mask_from, mask
        self.softness, self.sources, self.postfilter = float(softness), sources, bool(postfilter)
        self.high_band = high_band
        self.segment_frames, self.overlap = segment_frames, overlap
        self.shifts, self.refine = shifts, bool(refine)
        self.seed, self.n_init, self.fit_points, self.batch, self.progress = seed, n_init, fit_points, batch, progress
        self.front = FrontEnd(self.cfg)
        if mask_from == "clusters" and cluster in ("kmeans-sklearn", "meanshift"):
            # scikit-learn takes ~1 s to import: overlap it with the first chunks
            threading.Thread(target=importlib.import_module, args=("sklearn.cluster",), daemon=True).start()
        self.silence_db = bundle.silence_db

    # ---- construction -----------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name: str | None = None, runtime: str = "auto", **kwargs) -> "Separator":
        """A bundled model by name (default: the package's default model; its sha256 is checked),
        or, when ``name`` is not a bundled model, a model file path (``.onnx``: an export; else a torch
        model file). ``runtime``: ``"onnx"``, ``"torch"`` or ``"auto"`` (ONNX Runtime when it is
        installed and the device is the CPU, else torch)."""
        from .registry import open_model

        return cls(open_model(name, runtime, kwargs.get("device", "cpu"), kwargs.get("threads")), **kwargs)

    @classmethod
    def from_file(cls, path: str | Path, runtime: str = "auto", **kwargs) -> "Separator":
        """A model file: an ONNX export (``vocalsep export``) or a torch model file (``vocalsep train``)."""
        return cls.from_pretrained(str(path), runtime, **kwargs)

    @property
    def stems(self) -> tuple[str, ...]:
        if self.sources > 2:
            return tuple(f"source{i + 1}" for i in range(self.sources))
        return tuple(self.bundle.stems)

    # ---- public API -------------------------------------------------------------------------
    def separate(self, audio, sample_rate: int) -> dict:
        """Separate ``audio`` of shape (samples,) or (channels, samples), numpy array or tensor.

        Returns ``{"vocals": ..., "accompaniment": ...}`` (or ``source1`` .. ``sourceN``) with the
        input's shape, sample rate, type and dtype (a numpy array, or a tensor on the input's device);
        integer input is read as full-scale PCM and the stems come back in the same integer scale.
        """
        torch = sys.modules.get("torch")  # a tensor can only be passed where torch is already imported
        as_tensor = torch is not None and isinstance(audio, torch.Tensor)
        x, scale = self._as_array(audio)
        mono = x.ndim == 1
        x2 = x[None] if mono else x
        sample_rate = self._check_rate(sample_rate)
        out = apply_chunked(self._chunk_fn(sample_rate), x2, self.segment_length(sample_rate),
                            self.overlap, self.progress, self.batch)
        result = {}
        for name in self.stems:
            y = out[name][0] if mono else out[name]
            _check_output(y)
            if scale is not None:  # integer input: the stems in the input's integer scale
                lo, hi, mid, half = scale
                y = np.clip(np.round(y.astype(np.float64) * half + mid), lo, hi)
            if as_tensor:
                result[name] = torch.from_numpy(np.ascontiguousarray(y)).to(dtype=audio.dtype, device=audio.device)
            else:
                result[name] = y.astype(np.asarray(audio).dtype, copy=False)
        return result

    def separate_stream(self, read: Callable[[int, int], np.ndarray], length: int, sample_rate: int):
        """Streaming form of :meth:`separate`: yields ``(start, {stem: (channels, n)})`` blocks in order.

        ``read(start, stop)`` returns the input's (channels, stop - start) samples, zero-padded past
        the end; memory stays at a few chunks whatever ``length`` is.
        """
        sample_rate = self._check_rate(sample_rate)
        yield from iter_chunked(self._chunk_fn(sample_rate, check=True), read, length,
                                self.segment_length(sample_rate), self.overlap, self.progress, self.batch)

    def separate_file(self, src: str | Path, outputs: dict[str, str | Path] | None = None, *, overwrite: bool = False,
                      subtype: str | None = None, clip: str = "rescale", bitrate: int = 320, mp3_quality: int = 7,
                      start: float = 0.0,
                      duration: float | None = None, out_dir: str | Path = "separated",
                      template: str = DEFAULT_TEMPLATE, fmt: str = "wav", root: str | Path | None = None) -> dict[str, Path]:
        """Separate an audio file into one file per stem; returns stem -> written path.

        ``outputs`` (stem -> path, format from the suffix) may name a subset of the stems; without it
        every stem goes to ``out_dir`` by ``template`` as the command line does
        (``separated/<track>/<stem>.wav``). ``start`` and ``duration`` (seconds) separate a part of the
        file. ``subtype``: wav/flac sample format (default 16-bit PCM, 32-bit float for float input);
        integer output that would clip is scaled by one gain for all stems so they keep summing to the
        input (``clip="rescale"``) or clamped (``"clamp"``); ``bitrate``: mp3 kbit/s; ``mp3_quality``: LAME's algorithm quality (0 best, 9 fastest).
        ``root`` (``out_dir`` when the paths come from ``template``): the folder the outputs must stay
        in; no link below it is followed, and the files are written and committed through folder
        descriptors, so a folder swapped for a link during the run cannot send them elsewhere.

        Reading, separation and writing are streamed chunk by chunk, so memory does not grow with
        the file's length. Outputs are written atomically; existing ones are refused unless
        ``overwrite``. Raises :class:`~vocalsep.audio.AudioError` naming ``src`` on any failure.
        """
        if outputs is None:
            outputs = output_paths(src, out_dir, self.stems, template=template, ext=fmt)
            root = out_dir
        if not isinstance(src, (str, os.PathLike)):
            raise SeparationError(f"src must be a path (str or os.PathLike), got {type(src).__name__}")
        if not isinstance(outputs, dict):
            raise SeparationError(f"outputs must be a dict of stem -> path, got {type(outputs).__name__}")
        unknown = set(outputs) - set(self.stems)
        if unknown or not outputs:
            raise SeparationError(f"outputs must name some of the stems {', '.join(self.stems)}; got {sorted(map(str, outputs))}")
        bad = [stem for stem, p in outputs.items() if not isinstance(p, (str, os.PathLike))]
        if bad:
            raise SeparationError(f"outputs[{bad[0]!r}] must be a path (str or os.PathLike), got {type(outputs[bad[0]]).__name__}")
        outputs = {stem: Path(p) for stem, p in outputs.items()}
        if len({os.path.abspath(p) for p in outputs.values()}) != len(outputs):
            raise SeparationError("two stems have the same output path; give each stem its own file")
        for stem, p in outputs.items():  # compared by file identity: a link or another spelling of the input counts
            if p.exists() and Path(src).exists() and os.path.samefile(p, src):
                raise AudioError(f"{src}: the {stem} output {p} is the input file itself; refused even with "
                                 "--force (choose another --filename or output folder)")
        check_number(start, "start", lo=0, error=SeparationError)
        if duration is not None:
            check_number(duration, "duration", lo=0, lo_open=True, error=SeparationError)
        check_number(bitrate, "bitrate (mp3 kbit/s)", lo=32, hi=320, integer=True, error=SeparationError)
        check_number(mp3_quality, "mp3_quality", lo=0, hi=9, integer=True, error=SeparationError)
        if clip not in CLIP_MODES:
            raise SeparationError(f"clip must be one of {', '.join(CLIP_MODES)}, got {clip!r}")
        created = _missing_folders(outputs.values())  # removed again if this file fails
        existing = [str(p) for p in outputs.values() if Path(p).exists()]
        if existing and not overwrite:
            raise AudioError(f"{src}: output {existing[0]} already exists; use --force to replace it, or another "
                             "output folder")
        with open_audio(src) as reader:
            sr = reader.sample_rate
            if start * sr >= reader.frames - 0.5:  # compared as floats: a huge start is past the end, not an overflow
                raise AudioError(f"{src}: --start {start:g} s is past its end ({reader.frames / sr:.2f} s)")
            first = int(round(start * sr))
            rest = reader.frames - first
            length = rest if duration is None or duration * sr >= rest else max(1, int(round(duration * sr)))
            float_in = reader.subtype in ("FLOAT", "DOUBLE")  # float wav input keeps float wav output
            kinds = {stem: "FLOAT" if subtype is None and float_in and Path(p).suffix.lower() == ".wav" else subtype
                     for stem, p in outputs.items()}
            for stem, p in outputs.items():  # every output's format limits, before any work or temp file
                check_output(p, sr, reader.channels, kinds[stem], bitrate, mp3_quality)

            def read(a: int, b: int) -> np.ndarray:
                block = reader.read(first + a, first + min(b, length))
                return np.pad(block, ((0, 0), (0, b - a - block.shape[1]))) if block.shape[1] < b - a else block

            writers: dict[str, AudioOutput] = {}
            done: dict[str, Path] = {}
            try:
                for stem in outputs:
                    writers[stem] = AudioOutput(outputs[stem], sr, reader.channels, overwrite=overwrite,
                                                subtype=kinds[stem], bitrate=bitrate, mp3_quality=mp3_quality,
                                                root=root)
                for _, block in self.separate_stream(read, length, sr):
                    for stem, out in writers.items():
                        _check_output(block[stem])  # nothing non-finite is ever renamed into place
                        out.write(block[stem])
                gain, note = fit_gain(writers.values(), clip)
                if note:
                    log.warning("%s: %s", src, note)
                for stem, out in writers.items():
                    done[stem] = out.commit(gain)
                return done
            except SeparationError as exc:
                raise AudioError(f"{src}: {exc}") from None
            finally:
                for stem, out in writers.items():
                    if stem not in done:  # failed or interrupted: nothing of this stem is left behind
                        out.discard()
                if not done:  # and no track folder that holds nothing
                    for folder in created:
                        try:
                            folder.rmdir()
                        except OSError:
                            pass

    def segment_length(self, sample_rate: int) -> int:
        """Chunk length in input samples: ``segment_frames`` model frames."""
        seconds = self.cfg.samples_for_frames(self.segment_frames) / self.cfg.sample_rate
        return max(2, int(round(seconds * sample_rate)))

    # ---- internals --------------------------------------------------------------------------
    @staticmethod
    def _check_rate(sample_rate) -> int:
        if isinstance(sample_rate, np.integer):
            sample_rate = int(sample_rate)
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int):
            raise SeparationError(f"sample_rate must be an integer, got {sample_rate!r}")
        return check_sample_rate(sample_rate, "audio", SeparationError)

    @staticmethod
    def _as_array(audio) -> tuple[np.ndarray, tuple | None]:
        """float32 (channels or none, samples), and for integer input (min, max, mid, half range)."""
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(audio, torch.Tensor):
            if audio.is_meta:
                raise SeparationError("audio is a meta tensor, which holds no samples; pass a tensor with data")
            if audio.layout != torch.strided:
                raise SeparationError(f"audio is a {audio.layout} tensor; pass audio.to_dense()")
            x = audio.detach().cpu()
            x = x.float().numpy() if x.is_floating_point() and x.dtype != torch.float64 else x.numpy()
        else:
            x = np.asarray(audio)
        scale = None
        if x.dtype.kind in "iu":
            info = np.iinfo(x.dtype)
            scale = (info.min, info.max, (info.max + info.min + 1) / 2, (info.max - info.min + 1) / 2)
            x = (x.astype(np.float64) - scale[2]) / scale[3]
        elif x.dtype.kind != "f":
            raise SeparationError(f"audio must hold numbers, got dtype {x.dtype}")
        if x.ndim not in (1, 2):
            raise SeparationError(f"audio must be (samples,) or (channels, samples), got shape {x.shape}")
        if x.ndim == 2 and x.shape[0] == 0:
            raise SeparationError(f"audio of shape {x.shape} has no channels")
        if x.shape[-1] == 0:
            raise SeparationError(f"audio of shape {x.shape} has no samples")
        if x.ndim == 2 and (x.shape[0] > x.shape[1] or x.shape[0] > MAX_CHANNELS):
            raise SeparationError(f"audio of shape {x.shape} is ambiguous: vocalsep takes (channels, samples) with "
                                  f"at most {MAX_CHANNELS} channels; if it is (samples, channels), pass audio.T")
        if x.shape[-1] == 0:
            raise SeparationError("audio has no samples")
        _check_finite(x)
        _check_level(x)
        return np.ascontiguousarray(x, np.float32), scale

    def _chunk_fn(self, sample_rate: int, check: bool = False):
        track: dict = {}  # one recording's cluster order, carried from chunk to chunk (sources > 2)

        def fn(chunks: np.ndarray) -> dict[str, np.ndarray]:
            if check:
                _check_finite(chunks)
                _check_level(chunks)
            return self.separate_chunks(chunks, sample_rate, track)
        return fn

    def infer(self, mono16: np.ndarray, heads: tuple[str, ...] | None = None):
        """(batch, samples) mono at the model rate -> the network's heads (``embedding`` (batch, frames,
        bands, D) and/or ``mask`` (batch, frames, bands); by default those this separator uses), mel
        magnitudes (batch, frames, bands) and the complex STFT (batch, frames, bins), all numpy; with the
        bin refiner also ``bin_mask`` (batch, frames, bins)."""
        spec, mel = self.front.analyse(np.atleast_2d(mono16))
        wanted = tuple(heads or ((("mask", "bin_mask") if self.refine else ("mask",)) if self.mask_from == "head"
                                 else ("embedding",)))
        logmel = self.front.log_mel(mel)
        inputs = [logmel] + ([magnitude(spec)] if "bin_mask" in wanted else [])
        if self.shifts == 1 or "embedding" in wanted:
            return self.network(inputs[0], wanted, *inputs[1:]), mel, spec
        total: dict = {}
        for k in range(self.shifts):  # delay by d frames (the first frame repeated), then drop them again
            d = k * SHIFT_SPAN // self.shifts
            x = [v if d == 0 else np.concatenate([np.repeat(v[:, :1], d, axis=1), v], axis=1) for v in inputs]
            out = self.network(np.ascontiguousarray(x[0]), wanted, *map(np.ascontiguousarray, x[1:]))
            for h in wanted:
                total[h] = out[h][:, d:] + total.get(h, 0.0)
        return {h: v / self.shifts for h, v in total.items()}, mel, spec

    def embed(self, mono16: np.ndarray):
        """Like :meth:`infer`, the embeddings only: (embeddings, mel, spec)."""
        heads, mel, spec = self.infer(mono16, heads=("embedding",))
        return heads["embedding"], mel, spec

    def voice_clusters(self, mono16: np.ndarray):
        """This separator's k-means step on one chunk at the model's rate, exposed for diagnostics:
        (mel (frames, bands), loud bins, per-bin cluster label or None, index of the cluster the voice
        rule picks or None); None labels when the chunk has nothing to split."""
        emb, mel, _ = self.embed(mono16)
        emb, mel = emb[0], mel[0]
        loud = loud_bins(mel[None], self.silence_db)[0]
        cents = fit_centroids(emb[None], loud[None], "kmeans", 2, self.seed, self.n_init, self.fit_points)[0]
        if cents is None:
            return mel, loud, None, None
        labels = assign(emb, cents).argmax(-1)
        return mel, loud, labels, pick_voice_cluster(cents, voice_direction(self.bundle.voice_rule))

    def masks(self, heads: dict, mel: np.ndarray, track: dict | None = None) -> np.ndarray:
        """Masks on the model grid: (batch, frames, bands) for the voice, or (batch, sources, frames,
        bands) when ``sources`` > 2 (``track``: see :func:`~vocalsep.cluster.source_masks`)."""
        if self.mask_from == "head":
            m = heads["mask"]
            return m if self.mask == "soft" else (m > 0.5).astype(np.float32)
        loud = loud_bins(mel, self.silence_db)
        emb = heads["embedding"]
        if self.sources > 2:
            return source_masks(emb, loud, self.sources, self.bundle.voice_rule, self.seed, self.n_init,
                                self.fit_points, track)
        soft = self.softness if self.mask == "soft" else None
        return voice_masks(emb, loud, self.bundle.voice_rule, self.cluster, self.seed, self.n_init, self.fit_points, soft)

    def separate_chunks(self, chunks: np.ndarray, sample_rate: int, track: dict | None = None) -> dict[str, np.ndarray]:
        """Separate a batch of chunks, (batch, channels, samples) float32 -> ``{stem: same shape}``.

        The network and the clustering run once for the whole batch. ``track`` carries the source
        order from one batch of a recording to the next when ``sources`` > 2.
        """
        c = self.cfg
        k, channels, n = chunks.shape
        mono16 = self.front.to_model_rate(chunks, sample_rate)
        heads, mel, spec16 = self.infer(mono16)
        masks = self.masks(heads, mel, track)
        if self.sources > 2:  # every source but the last masked; the last is what remains
            out = {f"source{i + 1}": apply_band_masks(chunks, masks[:, i], sample_rate, c, high_band=self.high_band,
                                                      threads=self.mask_threads)
                   for i in range(self.sources - 1)}
            out[f"source{self.sources}"] = chunks - sum(out.values())
            return out
        if self.reconstruct == "mel":
            voc = np.stack([mel_reconstruct(mel[i], spec16[i], masks[i], mono16.shape[1], sample_rate, n, c)
                            for i in range(k)])
            acc = np.stack([mel_reconstruct(mel[i], spec16[i], 1.0 - masks[i], mono16.shape[1], sample_rate, n, c)
                            for i in range(k)])
            return {VOCALS: np.repeat(voc[:, None], channels, 1), ACCOMPANIMENT: np.repeat(acc[:, None], channels, 1)}
        bin_masks = None
        if self.refine:
            bin_masks = heads["bin_mask"] if self.mask == "soft" else (heads["bin_mask"] > 0.5).astype(np.float32)
        vocals = apply_band_masks(chunks, masks, sample_rate, c, self.postfilter, self.high_band, self.mask_threads,
                                  bin_masks=bin_masks)
        return {VOCALS: vocals, ACCOMPANIMENT: chunks - vocals}


def _check_output(y: np.ndarray) -> None:
    if not np.isfinite(y).all():
        raise SeparationError("the separation produced NaN or infinite samples (a damaged model file?); "
                              "nothing was written")


def _missing_folders(paths) -> list[Path]:
    """The folders above ``paths`` that do not exist yet, deepest first."""
    out = []
    for p in paths:
        d = Path(p).parent
        while not d.exists() and d not in out and d != d.parent:
            out.append(d)
            d = d.parent
    return sorted(out, key=lambda d: len(d.parts), reverse=True)


def _check_level(x: np.ndarray) -> None:
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak > MAX_INPUT_PEAK:
        raise SeparationError(f"the audio's samples reach {peak:.3g}, far beyond full scale (float audio is "
                              "expected within about +-1); scale it down, e.g. divide it by its peak")


def _check_finite(x: np.ndarray) -> None:
    if not np.isfinite(x).all():
        raise SeparationError("audio contains NaN or infinite samples; clean or re-export the file")
