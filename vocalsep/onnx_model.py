"""The ONNX runtime: an exported model file (``vocalsep export``) run with ONNX Runtime, without torch.

:func:`load_onnx` reads the file's metadata (features, stems, heads, voice rule, separation defaults;
see :mod:`vocalsep.export`) through ONNX Runtime itself, checks it as a torch model file's header is
checked, and returns an :class:`OnnxModel`; its :meth:`~OnnxModel.network` is the network step of
:class:`~vocalsep.separator.Separator`. Everything before and after the network -- features,
clustering, masks, the chunked loop, file I/O -- is the same numpy code for both runtimes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import VocalsepError
from .features import FeatureConfig
from .model_info import ModelInfo, info_problem
from .registry import ModelFileError, file_sha256

FORMAT = 1  # the metadata layout vocalsep export writes; bumped when a key changes meaning
MAX_ONNX_BYTES = 1 << 30


def session_options(threads: int | None = None):
    """ONNX Runtime settings for separation: every graph optimisation, int8-stored weights folded to
    float32 at load, ``threads`` intra-op threads (None: ONNX Runtime's choice, one per physical core),
    sequential execution, warnings only."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = int(threads or 0)
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    # The int8-stored weights are constants behind DequantizeLinear: without this, ONNX Runtime keeps
    # them as quantised-graph nodes and dequantises on every call (about 20% slower); with it, they fold
    # into float32 weights at load, as a float32-stored file would give
    opts.add_session_config_entry("session.disable_quant_qdq", "1")
    return opts


@dataclass(kw_only=True)
class OnnxModel(ModelInfo):
    """An exported model: its metadata and an ONNX Runtime session of its graph."""

    path: Path
    outputs: tuple[str, ...]
    session: object = None
    threads: int | None = None
    runtime = "onnx"

    @property
    def heads(self) -> tuple[str, ...]:
        return self.outputs

    def network(self, device: str = "cpu", threads: int | None = None) -> "OnnxNetwork":
        if device != "cpu":
            raise VocalsepError(f"the ONNX runtime runs on the CPU; for --device {device} use --runtime torch")
        if self.session is None or threads != self.threads:
            self.session, self.threads = _session(self.path, threads), threads
        return OnnxNetwork(self.session)


class OnnxNetwork:
    """The ONNX runtime's network step: raw log-mel in, the asked heads out (numpy float32)."""

    def __init__(self, session):
        self.session = session
        bins = [i.shape[2] for i in session.get_inputs() if i.name == "magnitude"]
        self.bins = bins[0] if bins else None  # a refining graph's bins; it takes a magnitude whatever is asked

    def __call__(self, logmel: np.ndarray, heads: tuple[str, ...], magnitude: np.ndarray | None = None) -> dict:
        feeds = {"logmel": np.ascontiguousarray(logmel, np.float32)}
        if magnitude is not None:
            feeds["magnitude"] = np.ascontiguousarray(magnitude, np.float32)
        elif self.bins is not None:  # only the band mask asked for: the refiner's input is not used
            feeds["magnitude"] = np.zeros((*feeds["logmel"].shape[:2], self.bins), np.float32)
        out = self.session.run(list(heads), feeds)
        return dict(zip(heads, out, strict=True))


def _session(path: Path, threads: int | None):
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 -- whatever ONNX Runtime raises for a file it cannot read
        raise ModelFileError(f"{path}: not a readable ONNX model ({' '.join(str(exc).split())[:160]}); "
                             "export it again with vocalsep export") from None


def load_onnx(path: str | Path, sha256: str | None = None, threads: int | None = None) -> OnnxModel:
    """Open an ONNX file written by ``vocalsep export``; verify ``sha256`` when given."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found" if not path.exists() else
                             f"{path}: not a model file (a folder or a special file)")
    if path.stat().st_size > MAX_ONNX_BYTES:
        raise ModelFileError(f"{path}: refused to load: {path.stat().st_size >> 20} MiB, above the limit of "
                             f"{MAX_ONNX_BYTES >> 20} MiB for a model file")
    if sha256 is not None and file_sha256(path) != sha256:
        raise ModelFileError(f"{path}: checksum mismatch; the file is damaged or was replaced, reinstall vocalsep")
    session = _session(path, threads)
    info = check_metadata(session.get_modelmeta().custom_metadata_map, path)
    names = [o.name for o in session.get_outputs()]
    if info["heads"] != names:
        raise ModelFileError(f"{path}: its heads {info['heads']!r} do not match the graph's outputs {names}; export "
                             "the model again with vocalsep export")
    inputs = session.get_inputs()
    n_mels = info["features"].n_mels
    want = ["logmel"] + (["magnitude"] if "bin_mask" in names else [])
    if [i.name for i in inputs] != want or len(inputs[0].shape) != 3 or inputs[0].shape[2] != n_mels:
        raise ModelFileError(f"{path}: its inputs are not {' and '.join(want)} (batch, frames, {n_mels} ...); export "
                             "the model again with vocalsep export")
    heads = info.pop("heads")
    return OnnxModel(**info, path=path, outputs=tuple(heads), session=session, threads=threads)


def check_metadata(meta: dict[str, str], path) -> dict:
    """An export's metadata (``{key: JSON text}``) checked as a model file's header is, decoded into
    :class:`~vocalsep.model_info.ModelInfo`'s fields plus ``heads``."""
    def bad(msg: str) -> ModelFileError:
        return ModelFileError(f"{path}: {msg}; export the model again with vocalsep export")

    if "vocalsep" not in meta:
        raise ModelFileError(f"{path}: an ONNX file without vocalsep's metadata; export the model with "
                             "vocalsep export (its interface is in docs/usage.md)")
    try:
        info = {k: json.loads(v) for k, v in meta.items()}
    except ValueError:
        raise bad("its metadata is not JSON") from None
    fmt = info["vocalsep"].get("format") if isinstance(info["vocalsep"], dict) else None
    if not isinstance(fmt, int):
        raise bad("its vocalsep metadata has no format number")
    if fmt > FORMAT:
        raise ModelFileError(f"{path}: written by a newer vocalsep (ONNX format {fmt}); upgrade vocalsep")
    missing = [k for k in ("features", "stems", "heads") if k not in info]
    if missing:
        raise bad(f"its metadata lacks {', '.join(missing)}")
    try:
        features = FeatureConfig.from_dict(info["features"])
    except VocalsepError as exc:
        raise bad(str(exc)) from None
    separation = info.get("separation") or {}
    problem = info_problem(info["stems"], info.get("voice_rule"), separation)
    if problem:
        raise bad(problem)
    heads = info["heads"]
    if not (isinstance(heads, list) and heads and set(heads) <= {"embedding", "mask", "bin_mask"}
            and ("bin_mask" not in heads or "mask" in heads)):
        raise bad(f"its heads {heads!r} are not embedding and/or mask (with bin_mask where it refines the mask)")
    kwargs = info.get("model_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise bad("its model_kwargs are not a table")
    return dict(features=features, arch=str(info.get("arch", "")), model_kwargs=kwargs,
                voice_rule=info.get("voice_rule"), stems=tuple(info["stems"]), training=info.get("training") or {},
                meta={"vocalsep_version": info["vocalsep"].get("version"), "license": info.get("licence", "")},
                separation=separation, heads=heads)
