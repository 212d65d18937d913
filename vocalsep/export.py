"""Export a model file's network to ONNX, self-describing, so another runtime can separate with it.

The graph's interface:

* input ``logmel``: ``(batch, frames, bands)`` float32, the **raw** log-mel of the documented front end
  (the per-band normalisation is inside the graph): mono at ``features.sample_rate``, STFT with a
  periodic Hann window of ``n_fft`` samples and hop ``hop_length``, centred (zero-padded by
  ``n_fft // 2`` on both sides), magnitudes, a Slaney mel filterbank of ``n_mels`` bands from ``fmin``
  to ``fmax`` (librosa's ``filters.mel(htk=False, norm="slaney")``), then ``log(max(mel, log_floor))``.
* outputs, one per head of the network: ``mask`` ``(batch, frames, bands)`` in [0, 1], the voice's
  mask on the mel bands, and/or ``embedding`` ``(batch, frames, bands, D)`` unit-norm.
* batch and frame axes are dynamic.

Everything else a separation needs travels in the ONNX file's metadata (``metadata_props``), each value
JSON: ``vocalsep`` (the format version and the interface above in words), ``features`` (the front end's
settings), ``stems``, ``heads``, ``voice_rule`` (the stored voice and accompaniment centroids for
clustering embeddings, or null), ``separation`` (the model's defaults: post-filter per mask source,
silence threshold), ``arch`` and ``model_kwargs``, ``training`` (its summary) and ``licence``.
"""
from __future__ import annotations

import contextlib
import json
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .checkpoint import ModelBundle
from .errors import VocalsepError

FORMAT = 1  # the metadata layout; bumped when a key changes meaning
OPSET = 17


class ExportError(VocalsepError, RuntimeError):
    """A network cannot be exported, or its export does not reproduce it."""


class _Heads(torch.nn.Module):
    """The network with its heads as positional outputs (ONNX has no dict outputs)."""

    def __init__(self, model: torch.nn.Module, heads: tuple[str, ...]):
        super().__init__()
        self.model, self.heads = model, heads

    def forward(self, logmel):
        out = self.model(logmel, heads=self.heads)
        return tuple(out[h] for h in self.heads)


@contextlib.contextmanager
def _traceable():
    """Networks take their tracing-friendly path (the BLSTM runs both directions in one call)."""
    from .models import blstm

    old = blstm.PARALLEL_DIRECTIONS
    blstm.PARALLEL_DIRECTIONS = False
    try:
        yield
    finally:
        blstm.PARALLEL_DIRECTIONS = old


def metadata(bundle: ModelBundle, licence: str = "") -> dict[str, str]:
    """The ONNX file's metadata: every value a JSON text."""
    heads = tuple(bundle.model.heads)
    meta = {
        "vocalsep": {"format": FORMAT, "version": __version__,
                     "input": "logmel (batch, frames, bands): raw log-mel, normalisation inside the graph",
                     "outputs": list(heads)},
        "features": asdict(bundle.features),
        "stems": list(bundle.stems),
        "heads": list(heads),
        "voice_rule": bundle.voice_rule,
        "separation": bundle.separation,
        "arch": bundle.arch,
        "model_kwargs": bundle.model_kwargs,
        "training": {k: v for k, v in bundle.training.items() if k != "curriculum"},
        "licence": licence or bundle.meta.get("license", ""),
    }
    return {k: json.dumps(v, default=float) for k, v in meta.items()}


def export_onnx(bundle: ModelBundle, path: str | Path, *, licence: str = "", check: bool = True,
                frames: int = 64) -> Path:
    """Write ``bundle``'s network to ``path`` as ONNX (see the module's docstring for the interface);
    with ``check``, run the file with ONNX Runtime on a random input of two frame counts and refuse
    it unless every head matches the torch network within 1e-4. Returns ``path``."""
    from ._atomic import atomic_path

    path = Path(path)
    model = bundle.model.eval()
    heads = tuple(model.heads)
    wrapped = _Heads(model, heads).eval()
    example = torch.randn(2, frames, bundle.features.n_mels)
    axes = {"logmel": {0: "batch", 1: "frames"}}
    axes.update({h: {0: "batch", 1: "frames"} for h in heads})
    try:
        import onnx
    except ImportError:
        raise ExportError("exporting to ONNX needs the onnx package: pip install 'vocalsep[onnx]'") from None
    with atomic_path(path) as tmp, _traceable(), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shape checks the graph does not need
        try:
            torch.onnx.export(wrapped, (example,), tmp, input_names=["logmel"], output_names=list(heads),
                              dynamic_axes=axes, opset_version=OPSET, dynamo=False)
        except Exception as exc:  # noqa: BLE001 -- whatever the exporter raises for an unsupported operator
            raise ExportError(f"the {bundle.arch} network cannot be exported to ONNX "
                              f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from None
        proto = onnx.load(tmp)
        if "logmel" not in [i.name for i in proto.graph.input]:
            raise ExportError(f"the {bundle.arch} network cannot be exported to ONNX: its traced graph ignores its "
                              "input (the network leaves torch somewhere, e.g. through numpy)")
        for key, value in metadata(bundle, licence).items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.producer_name, proto.producer_version = "vocalsep", __version__
        onnx.save(proto, tmp)
        if check:
            try:
                worst = parity(wrapped, tmp, bundle.features.n_mels)
            except Exception as exc:  # noqa: BLE001 -- ONNX Runtime's errors for a graph it cannot run
                raise ExportError(f"the exported {bundle.arch} network does not run in ONNX Runtime "
                                  f"({' '.join(str(exc).split())[:200]})") from None
            if worst > 1e-4:
                raise ExportError(f"the exported {bundle.arch} network differs from the torch one by {worst:.2g} "
                                  "(more than 1e-4); not written")
    return path


def parity(wrapped: torch.nn.Module, onnx_path: str | Path, n_bands: int, seed: int = 0) -> float:
    """The largest absolute difference between the torch network and its ONNX file on random inputs of
    two frame counts and batch sizes (neither the traced one), over every head."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst = 0.0
    for batch, frames in ((1, 37), (3, 129)):
        x = rng.standard_normal((batch, frames, n_bands)).astype(np.float32) * 2 - 5
        with _traceable(), torch.no_grad():
            ref = [t.numpy() for t in wrapped(torch.from_numpy(x))]
        got = session.run(None, {"logmel": x})
        worst = max(worst, *(float(np.abs(a - b).max()) for a, b in zip(ref, got, strict=True)))
    return worst


def read_metadata(path: str | Path) -> dict:
    """The metadata of an exported file, each value decoded from JSON."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: json.loads(p.value) for p in proto.metadata_props}
