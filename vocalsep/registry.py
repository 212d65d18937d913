"""The bundled models and how a name or a path becomes a loaded model on one runtime.

Every bundled model ships once, as its ONNX export with int8 weights (``vocalsep export``): ONNX
Runtime runs the file as it is (:mod:`vocalsep.onnx_model`), and the torch runtime rebuilds the
network from the file's own weights (:func:`vocalsep.export.import_onnx`), so the two cannot drift
apart. ``registry.json`` names each file with its sha256. Nothing here imports torch or ONNX Runtime.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
from importlib import resources
from pathlib import Path

from .choices import RUNTIMES
from .errors import VocalsepError


class ModelFileError(VocalsepError):
    """A model file is missing, corrupt, foreign, or fails its checksum."""


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def registry() -> dict:
    """The bundled-model registry: ``{"default": name, "models": {name: {...}}}``."""
    text = resources.files("vocalsep.pretrained").joinpath("registry.json").read_text()
    return json.loads(text)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module blocked in sys.modules, or a broken installation
        return False


def installed_runtimes() -> tuple[str, ...]:
    """The runtimes whose package is installed, fastest first (found without importing them)."""
    return tuple(rt for rt, module in (("onnx", "onnxruntime"), ("torch", "torch")) if _importable(module))


_PACKAGE = {"onnx": ("onnxruntime", "vocalsep (pip install --force-reinstall vocalsep)"),
            "torch": ("torch", "pip install 'vocalsep[torch]'")}


def _need(runtime: str, why: str) -> None:
    if runtime not in installed_runtimes():
        from .errors import MissingExtraError

        module, how = _PACKAGE[runtime]
        raise MissingExtraError(f"{why} needs {module}, which is not installed: {how}")


def choose_runtime(name_or_path: str | Path | None = None, runtime: str = "auto", device: str = "cpu") -> str:
    """The runtime a model will run on: ``runtime`` itself when given, else (``auto``) the fastest
    installed one that can run it -- ONNX Runtime for a bundled name or an ``.onnx`` file on the
    CPU, torch for a torch model file (``.pt``, what training writes) or a GPU."""
    if runtime not in RUNTIMES:
        raise VocalsepError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    is_onnx = name_or_path is None or str(name_or_path) in registry()["models"] or \
        str(name_or_path).lower().endswith(".onnx")
    if not is_onnx and runtime == "onnx":
        raise VocalsepError(f"{name_or_path}: a torch model file; export it first (vocalsep export "
                            f"{name_or_path} OUT.onnx) to run it on ONNX Runtime, or use --runtime torch")
    if device != "cpu" and runtime == "onnx":
        raise VocalsepError(f"--device {device} runs on torch; use --runtime torch (or auto) for the GPU")
    if runtime != "auto":
        chosen = runtime
    elif not is_onnx or device != "cpu":
        chosen = "torch"
    else:
        chosen = next(iter(installed_runtimes()), "onnx")  # neither installed: say what the default holds
    _need(chosen, f"the {chosen} runtime" + (f" on {device}" if device != "cpu" else "") if is_onnx else
          f"{name_or_path} (a torch model file)")
    if chosen == "torch" and is_onnx and not _importable("onnx"):
        from .errors import MissingExtraError

        raise MissingExtraError("running an ONNX model on the torch runtime needs the onnx package: "
                                "pip install 'vocalsep[torch]'")
    return chosen


def resolve_model(name_or_path: str | Path | None = None) -> tuple[Path, str | None]:
    """A registered name (or None for the default) -> (its bundled file, sha256); a path -> (path, None)."""
    reg = registry()
    name = reg["default"] if name_or_path is None else str(name_or_path)
    if name in reg["models"]:
        entry = reg["models"][name]
        path = Path(str(resources.files("vocalsep.pretrained").joinpath(entry["file"])))
        if not path.is_file():
            raise ModelFileError(f"bundled model {name!r} is missing from the installation ({path}); reinstall vocalsep")
        return path, entry["sha256"]
    path = Path(name)
    if not path.exists():
        raise ModelFileError(f"{name}: neither a bundled model ({', '.join(sorted(reg['models']))}) "
                             "nor an existing file")
    return path, None


def open_model(name_or_path: str | Path | None = None, runtime: str = "auto", device: str = "cpu",
               threads: int | None = None):
    """Load a bundled model by name (its checksum verified) or a model file, on ``runtime``
    (see :func:`choose_runtime`): a :class:`~vocalsep.onnx_model.OnnxModel` or a
    :class:`~vocalsep.checkpoint.ModelBundle`."""
    chosen = choose_runtime(name_or_path, runtime, device)
    path, sha = resolve_model(name_or_path)
    if chosen == "onnx":
        from .onnx_model import load_onnx

        return load_onnx(path, sha256=sha, threads=threads)
    from .checkpoint import load_model

    return load_model(path, sha256=sha)
