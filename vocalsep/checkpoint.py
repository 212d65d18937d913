"""Self-describing torch model files (the bundled models' names and files are in :mod:`vocalsep.registry`).

A model file is a ``torch.save``d dict of tensors and plain values only, read back with
``torch.load(weights_only=True)``, so loading never runs code from the file. It records the
architecture and its arguments, the feature configuration, the stem names, the voice-cluster rule,
a training summary and the versions that wrote it; the weights are loaded with ``strict=True``.
"""
from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ._atomic import atomic_path
from .choices import STEMS
from .errors import MAX_MODEL_FILE_BYTES, VocalsepError
from .features import FeatureConfig
from .model_info import ModelInfo, info_problem
from .registry import ModelFileError, file_sha256, registry, resolve_model  # noqa: F401 -- re-exported
from .models import ARCHITECTURES, MODEL_CLASSES, check_model_args

FORMAT = "vocalsep.model"
FORMAT_VERSION = 1


@dataclass(kw_only=True)
class ModelBundle(ModelInfo):
    """A torch model file loaded: the network itself and what :class:`~vocalsep.model_info.ModelInfo` says."""

    model: nn.Module
    runtime = "torch"

    @property
    def heads(self) -> tuple[str, ...]:
        return tuple(getattr(self.model, "heads", ("embedding",)))

    def network(self, device: str | torch.device = "cpu", threads: int | None = None) -> "TorchNetwork":
        return TorchNetwork(self.model, device)


class TorchNetwork:
    """The torch runtime's network step: raw log-mel (numpy) in, the asked heads (numpy float32) out."""

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ModelFileError("device 'cuda' was asked for but no CUDA GPU is available; use 'cpu'")
        self.model = model.to(self.device).eval()

    @torch.inference_mode()
    def __call__(self, logmel, heads: tuple[str, ...], magnitude=None) -> dict:
        extra = {} if magnitude is None else {
            "magnitude": torch.from_numpy(np.ascontiguousarray(magnitude, np.float32)).to(self.device)}
        out = self.model(torch.from_numpy(logmel).to(self.device), heads=heads, **extra)
        return {k: v.float().cpu().numpy() for k, v in out.items()}


def atomic_torch_save(obj, path: str | Path) -> None:
    """``torch.save`` to a temp file in the target folder, then rename over ``path``."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


STORAGE = ("float32", "float16", "int8")


def _pack(v: torch.Tensor, storage: str):
    """One state-dict tensor as stored: matrices in int8 get a per-row float32 scale."""
    v = v.detach().cpu()
    if not v.is_floating_point() or storage == "float32":
        return v
    if storage == "float16" or v.dim() < 2:
        return v.half()
    rows = v.reshape(v.shape[0], -1)
    scale = rows.abs().amax(1, keepdim=True).clamp_min(1e-12) / 127
    return {"int8": (rows / scale).round().clamp(-127, 127).to(torch.int8), "scale": scale, "shape": list(v.shape)}


def _unpack(v) -> torch.Tensor:
    if isinstance(v, dict):
        return (v["int8"].float() * v["scale"]).reshape(v["shape"])
    return v.float() if v.is_floating_point() else v


def save_model(path: str | Path, bundle: ModelBundle, storage: str = "float32") -> Path:
    """Write a model file atomically. ``storage``: ``float32``; ``float16``; or ``int8`` (weight
    matrices quantised with one scale per row, vectors in float16) -- computation is float32 always."""
    from . import __version__

    if storage not in STORAGE:
        raise ValueError(f"unknown storage {storage!r}; choose one of {', '.join(STORAGE)}")
    state = {k: _pack(v, storage) for k, v in bundle.model.state_dict().items()}
    obj = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "vocalsep_version": __version__,
        "torch_version": str(torch.__version__),
        "arch": bundle.arch,
        "model_class": type(bundle.model).__name__,
        "model_kwargs": dict(bundle.model_kwargs),
        "features": bundle.features.to_dict(),
        "stems": list(bundle.stems),
        "voice_rule": bundle.voice_rule,
        "training": bundle.training,
        "separation": dict(bundle.separation),
        "storage_dtype": storage,
        "state_dict": state,
    }
    atomic_torch_save(obj, path)
    return Path(path)


def read_checkpoint(path: str | Path) -> dict:
    """``torch.load`` with ``weights_only=True``, turning every failure into :class:`ModelFileError`."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found" if not path.exists() else
                             f"{path}: not a model file (a folder or a special file)")
    if zipfile.is_zipfile(path):  # a deflated entry can expand far beyond the file's size: check first
        try:
            with zipfile.ZipFile(path) as z:
                size = sum(info.file_size for info in z.infolist())
        except (zipfile.BadZipFile, OSError, ValueError):
            raise ModelFileError(f"{path}: not a readable model file (corrupt or truncated, or another program's "
                                 "file); copy or download it again, or retrain it") from None
        if size > MAX_MODEL_FILE_BYTES:
            raise ModelFileError(f"{path}: refused to load: it unpacks to {size / 2**20:,.0f} MiB, above the limit "
                                 f"of {MAX_MODEL_FILE_BYTES >> 20} MiB for a model file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ModelFileError(f"{path}: refused to load: the file holds objects other than weights and plain "
                             "values, which could run code; use a model file written by vocalsep "
                             "(vocalsep train, or a bundled name from vocalsep models)") from None
    except Exception:  # noqa: BLE001 -- whatever a foreign or damaged file makes torch.load raise
        raise ModelFileError(f"{path}: not a readable model file (corrupt or truncated, "
                             "or another program's file); copy or download it again, or retrain it") from None


def load_model(path: str | Path, sha256: str | None = None) -> ModelBundle:
    """Load a model file written by :func:`save_model`, or an ONNX export (``.onnx``: the form the
    bundled models ship in) as a torch network; verify ``sha256`` when given."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        from .errors import require

        require("onnx", "running an ONNX model file on torch", "torch")
        from .export import import_onnx

        return import_onnx(path, sha256)
    if sha256 is not None:
        digest = file_sha256(path)
        if digest != sha256:
            raise ModelFileError(f"{path}: checksum mismatch (sha256 {digest[:12]}..., expected "
                                 f"{sha256[:12]}...); the file is damaged or was replaced, reinstall vocalsep")
    obj = read_checkpoint(path)
    cls, features = check_header(obj, path)
    try:
        model = cls(n_bands=features.n_mels, **obj["model_kwargs"])
        state = {k: _unpack(v) for k, v in obj["state_dict"].items()}
        model.load_state_dict(state, strict=True)
    except (TypeError, RuntimeError, KeyError, AttributeError) as exc:
        raise ModelFileError(f"{path}: weights do not match the recorded architecture: "
                             f"{str(exc).splitlines()[0][:200]}") from None
    model.eval()
    separation = dict(obj.get("separation") or {})
    training = obj.get("training") or {}
    if "silence_db" not in separation and "silence_db" in training:  # older files kept the threshold
        separation["silence_db"] = training["silence_db"]            # in their training summary
    meta = {k: obj.get(k) for k in ("vocalsep_version", "torch_version", "storage_dtype")}
    return ModelBundle(model=model, features=features, arch=obj.get("arch", ""),
                       model_kwargs=obj["model_kwargs"], voice_rule=obj.get("voice_rule"),
                       stems=tuple(obj.get("stems", STEMS)), training=training, meta=meta,
                       separation=separation)


_HEADER_TYPES = {"format_version": int, "arch": str, "model_class": str, "model_kwargs": dict, "features": dict,
                 "stems": list, "voice_rule": (dict, type(None)), "training": (dict, type(None)),
                 "separation": (dict, type(None)), "state_dict": dict}
_REQUIRED = ("format_version", "model_class", "model_kwargs", "features", "state_dict")


def check_header(obj, path) -> tuple[type, FeatureConfig]:
    """Check a model file's metadata against its schema (fields, types, ranges, sizes) before
    anything is built; returns the model class and the feature settings."""
    def bad(msg: str) -> ModelFileError:
        return ModelFileError(f"{path}: {msg}; the file is damaged or was not written by vocalsep")

    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a vocalsep model file (no '{FORMAT}' header)")
    missing = [k for k in _REQUIRED if k not in obj]
    if missing:
        raise bad(f"missing field(s) {', '.join(missing)}")
    for k, types in _HEADER_TYPES.items():
        if k in obj and (not isinstance(obj[k], types) or isinstance(obj[k], bool)):
            want = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
            raise bad(f"field {k} is {type(obj[k]).__name__}, expected {want}")
    if obj["format_version"] > FORMAT_VERSION:
        raise ModelFileError(f"{path}: written by a newer vocalsep (format {obj['format_version']}); upgrade vocalsep")
    if obj["format_version"] < 1:
        raise bad(f"format_version {obj['format_version']} is not a version")
    cls = MODEL_CLASSES.get(obj["model_class"])
    if cls is None:
        raise ModelFileError(f"{path}: unknown model class {obj['model_class']!r}; known: {sorted(MODEL_CLASSES)}")
    # the network is built from model_class and the full model_kwargs; arch is the registry name it was
    # configured by, so where the registry knows it, the two must agree
    if obj.get("arch") in ARCHITECTURES and ARCHITECTURES[obj["arch"]][0] is not cls:
        raise bad(f"arch {obj['arch']!r} is a {ARCHITECTURES[obj['arch']][0].__name__}, not a {obj['model_class']}")
    try:
        features = FeatureConfig.from_dict(obj["features"])
        check_model_args(cls, features.n_mels, obj["model_kwargs"])
    except (VocalsepError, TypeError) as exc:
        raise bad(str(exc)) from None
    problem = info_problem(obj.get("stems", list(STEMS)), obj.get("voice_rule"), obj.get("separation") or {})
    if problem:
        raise bad(problem)
    if not all(isinstance(k, str) and (isinstance(v, torch.Tensor) or isinstance(v, dict) and "int8" in v)
               for k, v in obj["state_dict"].items()):
        raise bad("state_dict must map names to tensors")
    return cls, features


