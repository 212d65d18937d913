"""Export a model file's network to ONNX, self-describing, so another runtime can separate with it.

The graph's interface:

* input ``logmel``: ``(batch, frames, bands)`` float32, the **raw** log-mel of the documented front end
  (the per-band normalisation is inside the graph): mono at ``features.sample_rate``, STFT with a
  periodic Hann window of ``n_fft`` samples and hop ``hop_length``, centred (zero-padded by
  ``n_fft // 2`` on both sides), magnitudes, a Slaney mel filterbank of ``n_mels`` bands from ``fmin``
  to ``fmax`` (librosa's ``filters.mel(htk=False, norm="slaney")``), then ``log(max(mel, log_floor))``.
* input ``magnitude``, only for a network that refines its mask on the bins (head ``bin_mask``):
  ``(batch, frames, n_fft // 2 + 1)`` float32, the same STFT's magnitudes, frame for frame.
* outputs, one per head of the network: ``mask`` ``(batch, frames, bands)`` in [0, 1], the voice's
  mask on the mel bands, and/or ``embedding`` ``(batch, frames, bands, D)`` unit-norm, and
  ``bin_mask`` ``(batch, frames, n_fft // 2 + 1)`` in [0, 1], the voice's mask on the STFT's bins.
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
from .onnx_model import FORMAT

OPSET = 17
REFINED = "bin_mask"  # the head of a network that refines its mask on the bins; it takes ``magnitude`` too


class ExportError(VocalsepError, RuntimeError):
    """A network cannot be exported, or its export does not reproduce it."""


class _Heads(torch.nn.Module):
    """The network with its heads as positional outputs (ONNX has no dict outputs)."""

    def __init__(self, model: torch.nn.Module, heads: tuple[str, ...]):
        super().__init__()
        self.model, self.heads = model, heads

    def forward(self, logmel, magnitude=None):
        extra = {} if magnitude is None else {"magnitude": magnitude}
        out = self.model(logmel, heads=self.heads, **extra)
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
        "training": bundle.training,
        "licence": licence or bundle.meta.get("license", ""),
    }
    return {k: json.dumps(v, default=float) for k, v in meta.items()}


def export_onnx(bundle: ModelBundle, path: str | Path, *, licence: str = "", check: bool = True,
                frames: int = 64, stored: dict | None = None) -> Path:
    """Write ``bundle``'s network to ``path`` as ONNX (see the module's docstring for the interface);
    with ``check``, run the file with ONNX Runtime on a random input of two frame counts and refuse
    it unless every head matches the torch network within 1e-4. ``stored``: the model file's own
    ``state_dict`` entries; where they hold int8 weights (``storage="int8"``), every graph weight
    that is exactly such a weight is written as int8 with its scales and a ``DequantizeLinear`` (the
    same float32 values, a quarter of the size). Returns ``path``."""
    from ._atomic import atomic_path

    path = Path(path)
    model = bundle.model.eval()
    heads = tuple(model.heads)
    wrapped = _Heads(model, heads).eval()
    example = torch.randn(2, frames, bundle.features.n_mels)
    inputs = ["logmel"] + (["magnitude"] if REFINED in heads else [])
    args = (example, torch.rand(2, frames, bundle.features.n_bins)) if REFINED in heads else (example,)
    axes = {name: {0: "batch", 1: "frames"} for name in inputs}
    axes.update({h: {0: "batch", 1: "frames"} for h in heads})
    try:
        import onnx
    except ImportError:
        raise ExportError("exporting to ONNX needs the onnx package: pip install 'vocalsep[train]'") from None
    with atomic_path(path) as tmp, _traceable(), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shape checks the graph does not need
        try:
            # no constant folding and no eval-mode fusion: the graph keeps the stored weights as they are
            # (batch norm and weight products are folded by ONNX Runtime when it loads the file)
            torch.onnx.export(wrapped, args, tmp, input_names=inputs, output_names=list(heads),
                              dynamic_axes=axes, opset_version=OPSET, dynamo=False,
                              training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
        except Exception as exc:  # noqa: BLE001 -- whatever the exporter raises for an unsupported operator
            raise ExportError(f"the {bundle.arch} network cannot be exported to ONNX "
                              f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from None
        proto = onnx.load(tmp)
        if [i.name for i in proto.graph.input] != inputs:
            raise ExportError(f"the {bundle.arch} network cannot be exported to ONNX: its traced graph ignores its "
                              "input (the network leaves torch somewhere, e.g. through numpy)")
        meta = metadata(bundle, licence)
        meta["weights"] = json.dumps(_weight_names(proto, model))
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.producer_name, proto.producer_version = "vocalsep", __version__
        if stored:
            store_int8(proto, [v for v in stored.values() if isinstance(v, dict) and "int8" in v])
        onnx.save(proto, tmp)
        if check:
            try:
                worst = parity(wrapped, tmp, bundle.features.n_mels, bins=bundle.features.n_bins)
            except Exception as exc:  # noqa: BLE001 -- ONNX Runtime's errors for a graph it cannot run
                raise ExportError(f"the exported {bundle.arch} network does not run in ONNX Runtime "
                                  f"({' '.join(str(exc).split())[:200]})") from None
            if worst > 1e-4:
                raise ExportError(f"the exported {bundle.arch} network differs from the torch one by {worst:.2g} "
                                  "(more than 1e-4); not written")
    return path


def _weight_names(proto, model: torch.nn.Module) -> dict[str, str]:
    """The graph initialiser holding each of the network's weights whose name is not its own
    (``model.<name>``): the exporter keeps one copy of weights with equal values. Found by value."""
    from onnx import numpy_helper

    inits = {i.name: i for i in proto.graph.initializer}
    out = {}
    for key, value in model.state_dict().items():
        if f"model.{key}" in inits or key.endswith("num_batches_tracked"):
            continue
        v = value.detach().cpu().numpy()
        for name, init in inits.items():
            a = numpy_helper.to_array(init)
            if a.shape == v.shape and a.dtype == v.dtype and np.array_equal(a, v):
                out[key] = name
                break
    return out


def _row_scales(packed: list[dict]) -> dict[bytes, np.float32]:
    """For every row of the stored int8 weights: the float32 bytes of its largest magnitude
    (``127 * scale``) -> its scale."""
    out = {}
    for v in packed:
        scale = v["scale"].numpy().reshape(-1).astype(np.float32)
        for top, s in zip((np.float32(127) * scale).astype(np.float32), scale, strict=True):
            out[top.tobytes()] = s
    return out


def _as_int8(a: np.ndarray, scales: dict) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """``a`` as int8 rows and one stored scale per row, ``q * scale == a`` bit for bit (rows along the
    leading axes, or the columns of a matrix the exporter transposed), or None."""
    views = [(a.reshape(int(np.prod(a.shape[:k])), -1), False) for k in range(1, a.ndim)]
    if a.ndim == 2:
        views.append((a.T, True))
    for rows, transposed in views:
        s = [scales.get(t.tobytes()) for t in np.abs(rows).max(1).astype(np.float32)]
        if any(x is None for x in s):
            continue
        s = np.asarray(s, np.float32)
        q = np.round(rows / s[:, None])
        if np.abs(q).max() > 127:
            continue
        q = q.astype(np.int8)
        if np.array_equal(q.astype(np.float32) * s[:, None], rows):
            return q, s, transposed
    return None


def store_int8(proto, packed: list[dict]) -> int:
    """Replace each float32 weight of the graph that is exactly an int8-stored weight of the model
    file by its int8 rows, their scales and ``DequantizeLinear`` (then ``Reshape`` or ``Transpose``
    back): ONNX Runtime computes ``q * scale`` in float32, the same bits torch loads. Returns the
    bytes saved."""
    from onnx import helper, numpy_helper

    scales = _row_scales(packed)
    nodes, keep, saved = [], [], 0
    for init in proto.graph.initializer:
        a = numpy_helper.to_array(init)
        found = _as_int8(a, scales) if a.dtype == np.float32 and a.ndim >= 2 and a.size >= 256 else None
        if found is None:
            keep.append(init)
            continue
        q, s, transposed = found
        name = init.name
        keep += [numpy_helper.from_array(q, f"{name}/int8"), numpy_helper.from_array(s, f"{name}/scale")]
        nodes.append(helper.make_node("DequantizeLinear", [f"{name}/int8", f"{name}/scale"], [f"{name}/rows"], axis=0))
        if transposed:
            nodes.append(helper.make_node("Transpose", [f"{name}/rows"], [name], perm=[1, 0]))
        else:
            keep.append(numpy_helper.from_array(np.array(a.shape, np.int64), f"{name}/shape"))
            nodes.append(helper.make_node("Reshape", [f"{name}/rows", f"{name}/shape"], [name]))
        saved += a.nbytes - q.nbytes - s.nbytes
    graph_nodes = list(proto.graph.node)
    del proto.graph.initializer[:], proto.graph.node[:]
    proto.graph.initializer.extend(keep)
    proto.graph.node.extend(nodes + graph_nodes)
    return saved


def parity(wrapped: torch.nn.Module, onnx_path: str | Path, n_bands: int, seed: int = 0, bins: int = 0) -> float:
    """The largest absolute difference between the torch network and its ONNX file on random inputs of
    two frame counts and batch sizes (neither the traced one), over every head; a refining network
    also gets a random magnitude on ``bins`` bins."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst = 0.0
    for batch, frames in ((1, 37), (3, 129)):
        x = rng.standard_normal((batch, frames, n_bands)).astype(np.float32) * 2 - 5
        feeds = {"logmel": x}
        if REFINED in wrapped.heads:
            feeds["magnitude"] = rng.exponential(1.0, (batch, frames, bins)).astype(np.float32)
        with _traceable(), torch.no_grad():
            ref = [t.numpy() for t in wrapped(*(torch.from_numpy(v) for v in feeds.values()))]
        got = session.run(None, feeds)
        worst = max(worst, *(float(np.abs(a - b).max()) for a, b in zip(ref, got, strict=True)))
    return worst


def stored_weights(path: str | Path) -> dict:
    """A model file's weights as stored: a torch model file's ``state_dict`` entries, or an export's
    int8 weights in the same form (``{"int8", "scale", "shape"}``), so re-exporting keeps them int8."""
    if not str(path).lower().endswith(".onnx"):
        from .checkpoint import read_checkpoint

        return read_checkpoint(path)["state_dict"]
    import onnx
    from onnx import numpy_helper

    inits = {i.name: i for i in onnx.load(str(path)).graph.initializer}
    return {name[:-5]: {"int8": torch.from_numpy(numpy_helper.to_array(init).copy()),
                        "scale": torch.from_numpy(numpy_helper.to_array(inits[name[:-5] + "/scale"]).copy())[:, None],
                        "shape": []}
            for name, init in inits.items() if name.endswith("/int8")}


def import_onnx(path: str | Path, sha256: str | None = None) -> ModelBundle:
    """The torch network of an export (``vocalsep export``): built from the file's ``arch`` and
    ``model_kwargs`` with the file's own weights (``model.<name>`` initialisers, int8 ones as
    ``q * scale``, the same float32 values ONNX Runtime computes with). This is how the torch runtime
    runs the bundled models, which ship once, as ONNX."""
    import onnx
    from onnx import numpy_helper

    from .checkpoint import ModelFileError
    from .models import ARCHITECTURES, check_model_args
    from .onnx_model import check_metadata
    from .registry import file_sha256

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found" if not path.exists() else
                             f"{path}: not a model file (a folder or a special file)")
    if sha256 is not None and file_sha256(path) != sha256:
        raise ModelFileError(f"{path}: checksum mismatch; the file is damaged or was replaced, reinstall vocalsep")
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 -- whatever onnx raises for a file it cannot parse
        raise ModelFileError(f"{path}: not a readable ONNX model ({' '.join(str(exc).split())[:160]})") from None
    info = check_metadata({p.key: p.value for p in proto.metadata_props}, path)
    heads = info.pop("heads")
    arch, kwargs, n_mels = info["arch"], info["model_kwargs"], info["features"].n_mels
    if arch not in ARCHITECTURES:
        raise ModelFileError(f"{path}: unknown architecture {arch!r}; known: {sorted(ARCHITECTURES)}")
    cls = ARCHITECTURES[arch][0]
    try:
        check_model_args(cls, n_mels, kwargs)
        model = cls(n_bands=n_mels, **kwargs)
    except (VocalsepError, TypeError) as exc:
        raise ModelFileError(f"{path}: {exc}; export the model again with vocalsep export") from None
    inits = {i.name: i for i in proto.graph.initializer}
    try:
        aliases = json.loads(next((p.value for p in proto.metadata_props if p.key == "weights"), "{}"))
    except ValueError:
        aliases = {}

    def weight(key: str, like: torch.Tensor) -> torch.Tensor:
        name = aliases.get(key, f"model.{key}") if isinstance(aliases, dict) else f"model.{key}"
        if name in inits:
            return torch.from_numpy(numpy_helper.to_array(inits[name]).copy())
        if f"{name}/int8" in inits:
            q = torch.from_numpy(numpy_helper.to_array(inits[f"{name}/int8"]).copy())
            scale = torch.from_numpy(numpy_helper.to_array(inits[f"{name}/scale"]).copy())[:, None]
            w = q.float() * scale
            return w.reshape(like.shape) if f"{name}/shape" in inits else w.T.reshape(like.shape)
        if key.endswith("num_batches_tracked"):  # a training counter the graph has no use for
            return torch.zeros_like(like)
        raise ModelFileError(f"{path}: the {arch} network's weight {key} is not in the file; export it again "
                             "with vocalsep export")

    try:
        model.load_state_dict({k: weight(k, v) for k, v in model.state_dict().items()}, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"{path}: weights do not match the recorded architecture: "
                             f"{str(exc).splitlines()[0][:200]}") from None
    if tuple(model.heads) != tuple(heads):
        raise ModelFileError(f"{path}: its heads {heads} are not its network's {list(model.heads)}")
    info["meta"]["storage_dtype"] = "int8" if any(n.endswith("/int8") for n in inits) else "float32"
    return ModelBundle(model=model.eval(), **info)


def read_metadata(path: str | Path) -> dict:
    """The metadata of an exported file, each value decoded from JSON."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: json.loads(p.value) for p in proto.metadata_props}
